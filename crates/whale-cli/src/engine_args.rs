//! Options of the engine behind `whale chat` and `whale serve`: batching limits and the
//! prefix cache (RAM and, with `--cache-dir`, disk).

use crate::model_args::ModelArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use whale_engine::prefix_cache::fingerprint_files;
use whale_engine::{DiskConfig, EngineConfig, PrefixCacheConfig};

#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// Keep prefix-cache blocks on disk here too (they survive restarts).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Size cap of the disk tier, in GiB.
    #[arg(long, default_value_t = 10.0)]
    pub cache_disk_gb: f64,
    /// Size cap of the in-memory prefix cache, in MiB (0 disables prefix caching).
    #[arg(long, default_value_t = 512)]
    pub cache_ram_mb: usize,
    /// Most sequences decoded together.
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,
    /// Most requests waiting for a slot before new ones are refused.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// Most prompt tokens prefilled per step (long prompts are split so others keep decoding).
    #[arg(long, default_value_t = 256)]
    pub prefill_chunk: usize,
    /// Do not decode greedy requests speculatively with the model's MTP module.
    #[arg(long)]
    pub no_speculative: bool,
    /// Most tokens per sequence, prompt and answer together [default: the model's context,
    /// lowered if its KV cache for --max-batch sequences would not fit in memory].
    #[arg(long)]
    pub ctx_size: Option<usize>,
}

impl EngineArgs {
    pub fn config(&self, model: &ModelArgs) -> Result<EngineConfig> {
        if !(self.cache_disk_gb > 0.0 && self.cache_disk_gb.is_finite()) {
            bail!("--cache-disk-gb must be a positive number of GiB, got {}", self.cache_disk_gb);
        }
        if self.ctx_size == Some(0) {
            bail!("--ctx-size must be at least 1 token");
        }
        let prefix_cache = if self.cache_ram_mb == 0 && self.cache_dir.is_none() {
            None
        } else {
            Some(PrefixCacheConfig {
                ram_bytes: self.cache_ram_mb << 20,
                disk: self
                    .cache_dir
                    .as_ref()
                    .map(|dir| DiskConfig { dir: dir.clone(), max_bytes: (self.cache_disk_gb * (1u64 << 30) as f64) as u64 }),
                fingerprint: fingerprint(&model.model, &model.dtype)?,
            })
        };
        Ok(EngineConfig {
            max_batch: self.max_batch,
            max_queue: self.max_queue,
            prefill_chunk: self.prefill_chunk,
            prefix_cache,
            speculative: !self.no_speculative,
            max_context: self.ctx_size,
        })
    }
}

/// The model's identity for the prefix cache: its files' contents and the compute dtype.
pub fn fingerprint(model: &Path, dtype: &str) -> Result<String> {
    let files: Vec<PathBuf> = if model.is_dir() {
        let mut f = vec![model.join(whale_model::loader::CONFIG_FILE)];
        f.extend(whale_core::weights::checkpoint_files(model)?);
        f
    } else {
        vec![model.to_path_buf()]
    };
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    fingerprint_files(&refs, dtype).with_context(|| format!("reading {} to fingerprint it for the prefix cache", model.display()))
}
