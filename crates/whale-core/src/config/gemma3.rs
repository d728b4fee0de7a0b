//! Gemma 3 text config (HF `Gemma3TextConfig`, `model_type` `gemma3_text`): grouped-query
//! attention with q/k norms, layers alternating between a sliding window and global
//! attention, each kind with its own RoPE base, GeGLU MLP, and four norms per block.

use super::rope_scaling::RopeScaling;
use crate::{Result, WhaleError};

#[derive(Debug, Clone)]
pub struct Gemma3Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    /// RoPE base of the global layers.
    pub rope_theta: f64,
    /// RoPE base of the sliding-window layers.
    pub rope_local_base_freq: f64,
    /// RoPE scaling of the global layers (the local ones are never scaled).
    pub rope_scaling: Option<RopeScaling>,
    /// Keys a sliding layer sees, its own position included.
    pub sliding_window: usize,
    /// Every `sliding_window_pattern`-th layer is global, the others slide (6 in Gemma 3).
    pub sliding_window_pattern: usize,
    /// Attention scores are scaled by `query_pre_attn_scalar^-1/2` (not `head_dim^-1/2`).
    pub query_pre_attn_scalar: f64,
    pub max_position_embeddings: usize,
    pub final_logit_softcapping: Option<f64>,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

impl Gemma3Config {
    /// Whether layer `i` attends within the sliding window.
    pub fn is_sliding(&self, i: usize) -> bool {
        (i + 1) % self.sliding_window_pattern != 0
    }

    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("sliding_window", self.sliding_window),
            ("sliding_window_pattern", self.sliding_window_pattern),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(WhaleError::invalid_config(field, "must be positive, found 0"));
            }
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            return Err(WhaleError::invalid_config(
                "num_key_value_heads",
                format!("{} does not divide num_attention_heads {}", self.num_key_value_heads, self.num_attention_heads),
            ));
        }
        if self.head_dim % 2 != 0 {
            return Err(WhaleError::invalid_config("head_dim", format!("RoPE needs an even head_dim, found {}", self.head_dim)));
        }
        if !(self.query_pre_attn_scalar > 0.0) {
            return Err(WhaleError::invalid_config("query_pre_attn_scalar", format!("must be positive, found {}", self.query_pre_attn_scalar)));
        }
        Ok(())
    }
}
