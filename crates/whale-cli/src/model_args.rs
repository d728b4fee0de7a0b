//! Options every model-running command shares: which model, which dtype, how many threads.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use clap::Args;
use std::path::PathBuf;
use whale_model::{load_model, CausalLm};

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// HF model folder (config.json + *.safetensors) or a .gguf file [default: whale-r1-tiny, the built-in model].
    #[arg(long, default_value = crate::builtin::NAME, hide_default_value = true, value_parser = crate::builtin::model_path)]
    pub model: PathBuf,
    /// Compute dtype: f32, f16 or bf16 (weights are converted on load).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// CPU threads (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// `cpu`, or `cuda` / `cuda:N` (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl ModelArgs {
    pub fn dtype(&self) -> Result<DType> {
        Ok(match self.dtype.as_str() {
            "f32" => DType::F32,
            "f16" => DType::F16,
            "bf16" => DType::BF16,
            other => bail!("--dtype {other:?} is not supported; use f32, f16 or bf16"),
        })
    }

    pub fn device(&self) -> Result<Device> {
        match self.device.as_str() {
            "cpu" => Ok(Device::Cpu),
            d if d == "cuda" || d.starts_with("cuda:") => {
                let ordinal: usize = match d.strip_prefix("cuda:") {
                    Some(n) => n.parse().with_context(|| format!("--device {d:?}: {n:?} is not a GPU number"))?,
                    None => 0,
                };
                if !cfg!(feature = "cuda") {
                    bail!("--device {d}: this whale was built without CUDA; rebuild with `cargo build --features cuda`");
                }
                Device::new_cuda(ordinal).with_context(|| format!("opening CUDA device {ordinal}"))
            }
            other => bail!("--device {other:?} is not supported; use cpu, cuda or cuda:N"),
        }
    }

    /// Applies the thread count and loads the model on the CPU.
    pub fn load(&self) -> Result<Box<dyn CausalLm>> {
        if let Some(n) = self.threads {
            set_threads(n)?;
        }
        let dtype = self.dtype()?;
        crate::memory::check_weights(&self.model, dtype, crate::memory::available())?;
        load_model(&self.model, dtype, &self.device()?).with_context(|| format!("loading model {}", self.model.display()))
    }
}

/// `-t/--threads N` for every CPU kernel.
pub fn set_threads(n: usize) -> Result<()> {
    if n == 0 {
        bail!("--threads must be at least 1");
    }
    // candle's CPU kernels size their thread pools from this variable on first use.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    // The quantized kernels (GGUF block types) have their own pool.
    whale_quant::set_num_threads(n);
    Ok(())
}

/// Parses `1,2,3` into token ids.
pub fn parse_ids(s: &str, flag: &str) -> Result<Vec<u32>> {
    let ids: Result<Vec<u32>> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().with_context(|| format!("{flag}: {p:?} is not a token id (expected e.g. 1,2,3)")))
        .collect();
    let ids = ids?;
    if ids.is_empty() {
        bail!("{flag} is empty: give at least one token id, e.g. {flag} 1,2,3");
    }
    Ok(ids)
}
