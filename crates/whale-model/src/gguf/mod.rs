//! Running GGUF files (llama.cpp's format) through Whale's own model code.
//!
//! The file's `general.architecture` picks a name table (`names.rs`) and a config reader
//! (`config.rs`); a [`GgufCheckpoint`] (`tensors.rs`) serves the file's tensors under HF
//! names to [`Weights`], undoing the converter's quirks, so `LlamaModel`/`DeepSeekModel`
//! load a GGUF exactly as they load an HF folder. Quantized matrices stay quantized
//! (`whale_nn::Linear`'s quantized variant); see `tensors.rs` for what is dequantized.

mod config;
pub mod convert;
mod dequant;
pub mod export;
pub mod mixture;
pub mod names;
pub mod permute;
mod tensors;

pub use config::{config_from_gguf, gemma3_config_from_gguf};
pub use convert::{Conversion, PlannedTensor};
pub use mixture::FileType;
pub use names::{table, ArchTable, GgufName, HfName};
pub use tensors::GgufCheckpoint;

use crate::{CausalLm, DeepSeekModel, Gemma3Model, LlamaModel};
use candle_core::{DType, Device};
use std::path::Path;
use std::sync::Arc;
use whale_core::config::{LlamaFlavor, ModelConfig};
use whale_core::gguf::GgufFile;
use whale_core::{Result, WhaleError, Weights};

/// Whether `path` names a GGUF file (by extension).
pub fn is_gguf_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")) || starts_with_gguf_magic(path)
}

/// A GGUF file under another name (llama.cpp does not require the extension either).
fn starts_with_gguf_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    path.is_file() && std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"GGUF"
}

/// The config of a GGUF model: an HF-style [`ModelConfig`], or Gemma 3's own.
#[derive(Debug, Clone)]
pub enum GgufConfig {
    Hf(ModelConfig),
    Gemma3(whale_core::config::Gemma3Config),
}

/// Opens a GGUF file: its config and its weights under HF names.
pub fn open_gguf(path: &Path, dtype: DType, device: &Device) -> Result<(GgufConfig, Weights)> {
    let file = GgufFile::open(path)?;
    let arch = file.get_str("general.architecture")?.to_string();
    let table = names::table(&arch).ok_or_else(|| WhaleError::BadFile {
        path: path.to_path_buf(),
        message: format!(
            "general.architecture is {arch:?}; Whale runs GGUF architectures {}",
            names::TABLES.iter().map(|t| t.arch).collect::<Vec<_>>().join(", ")
        ),
    })?;
    if arch == "gemma3" {
        let cfg = gemma3_config_from_gguf(&file)?;
        let ckpt = GgufCheckpoint::new(file, table, None, None).with_norms_plus_one();
        return Ok((GgufConfig::Gemma3(cfg), Weights::from_gguf(Arc::new(ckpt), dtype, device)));
    }
    let cfg = config_from_gguf(&file)?;
    let (permuted_qk, mla) = match &cfg {
        ModelConfig::Llama(c) if c.flavor == LlamaFlavor::Llama => {
            (Some((c.num_attention_heads, c.num_key_value_heads)), None)
        }
        ModelConfig::Llama(_) => (None, None),
        ModelConfig::DeepSeek(c) => (None, Some((c.num_attention_heads, c.qk_nope_head_dim, c.v_head_dim))),
    };
    let ckpt = GgufCheckpoint::new(file, table, permuted_qk, mla);
    Ok((GgufConfig::Hf(cfg), Weights::from_gguf(Arc::new(ckpt), dtype, device)))
}

/// Loads a GGUF model, computing in `dtype` on `device`.
pub fn load_gguf(path: &Path, dtype: DType, device: &Device) -> Result<Box<dyn CausalLm>> {
    let (cfg, weights) = open_gguf(path, dtype, device)?;
    Ok(match cfg {
        GgufConfig::Hf(ModelConfig::DeepSeek(c)) => Box::new(DeepSeekModel::new(&c, &weights)?),
        GgufConfig::Hf(ModelConfig::Llama(c)) => Box::new(LlamaModel::new(&c, &weights)?),
        GgufConfig::Gemma3(c) => Box::new(Gemma3Model::new(&c, &weights)?),
    })
}
