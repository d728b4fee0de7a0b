//! Typed model configs that mirror HF `config.json` field names.
//!
//! `ModelConfig::from_file` reads `model_type`, picks the family, deserializes the fields
//! and validates them; every problem names the field, what was expected and what was found.

mod deepseek;
mod gemma3;
mod llama;
mod rope_scaling;

pub use deepseek::{DeepSeekConfig, DeepSeekVersion, ScoringFunc, TopkMethod};
pub use gemma3::Gemma3Config;
pub use llama::{LlamaConfig, LlamaFlavor};
pub use rope_scaling::RopeScaling;

use crate::{Result, WhaleError};
use serde::de::DeserializeOwned;
use std::path::Path;

/// The model families Whale implements, by HF `model_type`.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["deepseek_v2", "deepseek_v3", "llama", "qwen2"];

#[derive(Debug, Clone)]
pub enum ModelConfig {
    DeepSeek(DeepSeekConfig),
    Llama(LlamaConfig),
}

impl ModelConfig {
    /// Reads and validates a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| WhaleError::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| WhaleError::ConfigParse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let model_type = value
            .get("model_type")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .or_else(|| model_type_from_architectures(&value))
            .ok_or_else(|| WhaleError::ConfigParse {
                path: path.to_path_buf(),
                message: "missing field `model_type` (and no known `architectures` entry)".into(),
            })?;
        let cfg = match model_type.as_str() {
            "deepseek_v2" => ModelConfig::DeepSeek(DeepSeekConfig::from_value(value, DeepSeekVersion::V2, path)?),
            "deepseek_v3" => ModelConfig::DeepSeek(DeepSeekConfig::from_value(value, DeepSeekVersion::V3, path)?),
            "llama" => ModelConfig::Llama(LlamaConfig::from_value(value, LlamaFlavor::Llama, path)?),
            "qwen2" => ModelConfig::Llama(LlamaConfig::from_value(value, LlamaFlavor::Qwen2, path)?),
            other => {
                return Err(WhaleError::UnknownModelType {
                    path: path.to_path_buf(),
                    found: other.to_string(),
                    supported: SUPPORTED_MODEL_TYPES.join(", "),
                })
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::DeepSeek(c) => c.validate(),
            ModelConfig::Llama(c) => c.validate(),
        }
    }

    pub fn model_type(&self) -> &'static str {
        match self {
            ModelConfig::DeepSeek(c) => match c.version {
                DeepSeekVersion::V2 => "deepseek_v2",
                DeepSeekVersion::V3 => "deepseek_v3",
            },
            ModelConfig::Llama(c) => match c.flavor {
                LlamaFlavor::Llama => "llama",
                LlamaFlavor::Qwen2 => "qwen2",
            },
        }
    }
}

fn model_type_from_architectures(value: &serde_json::Value) -> Option<String> {
    let archs = value.get("architectures")?.as_array()?;
    archs.iter().filter_map(|a| a.as_str()).find_map(|a| {
        let model_type = match a {
            "DeepseekV2ForCausalLM" => "deepseek_v2",
            "DeepseekV3ForCausalLM" => "deepseek_v3",
            "LlamaForCausalLM" => "llama",
            "Qwen2ForCausalLM" => "qwen2",
            _ => return None,
        };
        Some(model_type.to_owned())
    })
}

/// Deserializes a family's raw config from the parsed JSON, naming the file on failure
/// (serde's message names the missing or mistyped field).
pub(crate) fn deserialize<T: DeserializeOwned>(value: serde_json::Value, path: &Path) -> Result<T> {
    serde_json::from_value(value).map_err(|e| WhaleError::ConfigParse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// `eos_token_id` is an integer or a list of integers in HF configs.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    #[default]
    None,
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::None => vec![],
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

pub(crate) fn require(cond: bool, field: &str, reason: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(WhaleError::invalid_config(field, reason()))
    }
}

pub(crate) fn positive(value: usize, field: &str) -> Result<()> {
    require(value > 0, field, || format!("must be > 0, found {value}"))
}
