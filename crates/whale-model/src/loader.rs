//! Opening a model folder: read `config.json`, pick the family by `model_type`, load the
//! safetensors. A `.gguf` file loads through [`crate::gguf`].

use crate::{CausalLm, DeepSeekModel, LlamaModel};
use candle_core::{DType, Device};
use std::path::Path;
use whale_core::config::ModelConfig;
use whale_core::{Result, WhaleError, Weights};

pub const CONFIG_FILE: &str = "config.json";

/// Loads any supported HF model folder, computing in `dtype` on `device`.
pub fn load_model(dir: &Path, dtype: DType, device: &Device) -> Result<Box<dyn CausalLm>> {
    let config_path = dir.join(CONFIG_FILE);
    if dir.is_file() && crate::gguf::is_gguf_path(dir) {
        return crate::gguf::load_gguf(dir, dtype, device);
    }
    if !config_path.exists() {
        let why = if dir.is_file() && dir.extension().is_some_and(|e| e == "safetensors") {
            let folder = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            format!("is a weights file; --model expects the folder that holds it with its config.json ({})", folder.display())
        } else if dir.is_file() {
            "is neither a GGUF file (it does not start with \"GGUF\") nor a folder; --model expects an HF model folder \
             (config.json + *.safetensors) or a .gguf file"
                .to_string()
        } else if !dir.exists() {
            "does not exist".to_string()
        } else {
            format!("has no {CONFIG_FILE}; --model expects an HF model folder (config.json + *.safetensors)")
        };
        return Err(WhaleError::BadFile { path: dir.to_path_buf(), message: why });
    }
    let cfg = ModelConfig::from_file(&config_path)?;
    let weights = Weights::from_dir(dir, dtype, device)?;
    Ok(match cfg {
        ModelConfig::DeepSeek(c) => Box::new(DeepSeekModel::new(&c, &weights)?),
        ModelConfig::Llama(c) => Box::new(LlamaModel::new(&c, &weights)?),
    })
}
