//! Llama / Qwen2 config (`model_type` `llama`, `qwen2`): the dense families of the
//! R1-Distill models. Qwen2 is Llama with biases on the q/k/v projections.

use super::rope_scaling::{RawRopeScaling, RopeScaling};
use super::{deserialize, positive, require, TokenIds};
use crate::Result;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlamaFlavor {
    Llama,
    Qwen2,
}

#[derive(Debug, Clone)]
pub struct LlamaConfig {
    pub flavor: LlamaFlavor,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v (always for Qwen2; `attention_bias` for Llama, which also biases o_proj).
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub mlp_bias: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub initializer_range: f64,
}

#[derive(Debug, Deserialize)]
struct Raw {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<RawRopeScaling>,
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    hidden_act: Option<String>,
    #[serde(default)]
    use_sliding_window: bool,
    sliding_window: Option<usize>,
    bos_token_id: Option<u32>,
    #[serde(default)]
    eos_token_id: TokenIds,
    initializer_range: Option<f64>,
}

impl LlamaConfig {
    pub(crate) fn from_value(value: serde_json::Value, flavor: LlamaFlavor, path: &Path) -> Result<Self> {
        let raw: Raw = deserialize(value, path)?;
        if let Some(act) = &raw.hidden_act {
            require(act == "silu", "hidden_act", || format!("only \"silu\" is supported, found {act:?}"))?;
        }
        if raw.use_sliding_window {
            // Qwen2 sliding-window attention is off in every Qwen2/R1-Distill release; refusing is
            // better than silently attending to the full context.
            return Err(crate::WhaleError::invalid_config(
                "use_sliding_window",
                format!("sliding-window attention (window {:?}) is not supported", raw.sliding_window),
            ));
        }
        positive(raw.num_attention_heads, "num_attention_heads")?;
        let rope_scaling = match raw.rope_scaling {
            Some(r) => r.resolve(raw.max_position_embeddings)?,
            None => None,
        };
        Ok(Self {
            flavor,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            num_key_value_heads: raw.num_key_value_heads.unwrap_or(raw.num_attention_heads),
            head_dim: raw.head_dim.unwrap_or(raw.hidden_size / raw.num_attention_heads),
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta: raw.rope_theta.unwrap_or(10000.0),
            rope_scaling,
            max_position_embeddings: raw.max_position_embeddings,
            tie_word_embeddings: raw.tie_word_embeddings,
            qkv_bias: flavor == LlamaFlavor::Qwen2 || raw.attention_bias,
            o_bias: flavor == LlamaFlavor::Llama && raw.attention_bias,
            mlp_bias: raw.mlp_bias,
            bos_token_id: raw.bos_token_id,
            eos_token_ids: raw.eos_token_id.to_vec(),
            initializer_range: raw.initializer_range.unwrap_or(0.02),
        })
    }

    pub fn validate(&self) -> Result<()> {
        for (v, f) in [
            (self.vocab_size, "vocab_size"),
            (self.hidden_size, "hidden_size"),
            (self.intermediate_size, "intermediate_size"),
            (self.num_hidden_layers, "num_hidden_layers"),
            (self.num_key_value_heads, "num_key_value_heads"),
            (self.head_dim, "head_dim"),
            (self.max_position_embeddings, "max_position_embeddings"),
        ] {
            positive(v, f)?;
        }
        let (h, kv) = (self.num_attention_heads, self.num_key_value_heads);
        require(h % kv == 0, "num_key_value_heads", || {
            format!("must divide num_attention_heads ({h}), found {kv}")
        })?;
        require(self.head_dim.is_multiple_of(2), "head_dim", || format!("must be even (rotated in pairs), found {}", self.head_dim))?;
        require(self.rms_norm_eps > 0.0, "rms_norm_eps", || format!("must be > 0, found {}", self.rms_norm_eps))?;
        require(self.rope_theta > 0.0, "rope_theta", || format!("must be > 0, found {}", self.rope_theta))?;
        Ok(())
    }
}
