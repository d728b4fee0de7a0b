//! DeepSeek-V2 / V2-Lite / V3 / R1 config (`model_type` `deepseek_v2`, `deepseek_v3`).
//!
//! One config type covers the family; the version only changes defaults that the HF
//! configs leave out (V2: softmax router with greedy top-k; V3: sigmoid router with the
//! auxiliary-loss-free correction bias, `noaux_tc`).

use super::rope_scaling::{RawRopeScaling, RopeScaling};
use super::{deserialize, positive, require, TokenIds};
use crate::{Result, WhaleError};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeepSeekVersion {
    V2,
    V3,
}

/// How router logits become scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoringFunc {
    Softmax,
    Sigmoid,
}

/// How experts are selected from the scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopkMethod {
    /// Plain top-k over all experts (V2-Lite).
    Greedy,
    /// Keep the `topk_group` groups with the highest max score, then top-k (V2-236B).
    GroupLimitedGreedy,
    /// Selection score = score + `e_score_correction_bias`; group score = sum of the top-2
    /// selection scores; keep `topk_group` groups, then top-k (V3).
    NoauxTc,
}

#[derive(Debug, Clone)]
pub struct DeepSeekConfig {
    pub version: DeepSeekVersion,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub moe_intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// `None` = plain `q_proj` (V2-Lite); `Some(r)` = low-rank `q_a_proj`/`q_b_proj`.
    pub q_lora_rank: Option<usize>,
    pub kv_lora_rank: usize,
    pub qk_nope_head_dim: usize,
    pub qk_rope_head_dim: usize,
    pub v_head_dim: usize,
    /// `None` = a dense model (no MoE layers at all).
    pub n_routed_experts: Option<usize>,
    pub n_shared_experts: usize,
    pub num_experts_per_tok: usize,
    pub n_group: usize,
    pub topk_group: usize,
    pub scoring_func: ScoringFunc,
    pub topk_method: TopkMethod,
    pub norm_topk_prob: bool,
    pub routed_scaling_factor: f64,
    pub first_k_dense_replace: usize,
    pub moe_layer_freq: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub attention_bias: bool,
    pub num_nextn_predict_layers: usize,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub initializer_range: f64,
}

#[derive(Debug, Deserialize)]
struct Raw {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    moe_intermediate_size: Option<usize>,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    q_lora_rank: Option<usize>,
    kv_lora_rank: usize,
    qk_nope_head_dim: usize,
    qk_rope_head_dim: usize,
    v_head_dim: usize,
    n_routed_experts: Option<usize>,
    n_shared_experts: Option<usize>,
    num_experts_per_tok: Option<usize>,
    n_group: Option<usize>,
    topk_group: Option<usize>,
    scoring_func: Option<String>,
    topk_method: Option<String>,
    #[serde(default)]
    norm_topk_prob: bool,
    routed_scaling_factor: Option<f64>,
    #[serde(default)]
    first_k_dense_replace: usize,
    moe_layer_freq: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<RawRopeScaling>,
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    num_nextn_predict_layers: usize,
    hidden_act: Option<String>,
    rope_interleave: Option<bool>,
    bos_token_id: Option<u32>,
    #[serde(default)]
    eos_token_id: TokenIds,
    initializer_range: Option<f64>,
}

impl DeepSeekConfig {
    pub(crate) fn from_value(value: serde_json::Value, version: DeepSeekVersion, path: &Path) -> Result<Self> {
        let raw: Raw = deserialize(value, path)?;
        if let Some(act) = &raw.hidden_act {
            require(act == "silu", "hidden_act", || format!("only \"silu\" is supported, found {act:?}"))?;
        }
        if raw.rope_interleave == Some(false) {
            // Released DeepSeek checkpoints rotate interleaved pairs; the flag exists in HF's
            // config class but a `false` value would mean a model nobody has trained.
            return Err(WhaleError::invalid_config(
                "rope_interleave",
                "DeepSeek models rotate interleaved pairs; `false` is not supported",
            ));
        }
        let scoring_func = match raw.scoring_func.as_deref() {
            None => match version {
                DeepSeekVersion::V2 => ScoringFunc::Softmax,
                DeepSeekVersion::V3 => ScoringFunc::Sigmoid,
            },
            Some("softmax") => ScoringFunc::Softmax,
            Some("sigmoid") => ScoringFunc::Sigmoid,
            Some(other) => {
                return Err(WhaleError::invalid_config(
                    "scoring_func",
                    format!("expected \"softmax\" or \"sigmoid\", found {other:?}"),
                ))
            }
        };
        let topk_method = match raw.topk_method.as_deref() {
            None => match version {
                DeepSeekVersion::V2 => TopkMethod::Greedy,
                DeepSeekVersion::V3 => TopkMethod::NoauxTc,
            },
            Some("greedy") => TopkMethod::Greedy,
            Some("group_limited_greedy") => TopkMethod::GroupLimitedGreedy,
            Some("noaux_tc") => TopkMethod::NoauxTc,
            Some(other) => {
                return Err(WhaleError::invalid_config(
                    "topk_method",
                    format!("expected \"greedy\", \"group_limited_greedy\" or \"noaux_tc\", found {other:?}"),
                ))
            }
        };
        let max_position_embeddings = raw.max_position_embeddings;
        let rope_scaling = match raw.rope_scaling {
            Some(r) => r.resolve(max_position_embeddings)?,
            None => None,
        };
        // q_lora_rank 0 is how some converters write "none".
        let q_lora_rank = raw.q_lora_rank.filter(|&r| r > 0);
        Ok(Self {
            version,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            moe_intermediate_size: raw.moe_intermediate_size.unwrap_or(raw.intermediate_size),
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            q_lora_rank,
            kv_lora_rank: raw.kv_lora_rank,
            qk_nope_head_dim: raw.qk_nope_head_dim,
            qk_rope_head_dim: raw.qk_rope_head_dim,
            v_head_dim: raw.v_head_dim,
            n_routed_experts: raw.n_routed_experts.filter(|&n| n > 0),
            n_shared_experts: raw.n_shared_experts.unwrap_or(0),
            num_experts_per_tok: raw.num_experts_per_tok.unwrap_or(0),
            n_group: raw.n_group.unwrap_or(1),
            topk_group: raw.topk_group.unwrap_or(1),
            scoring_func,
            topk_method,
            norm_topk_prob: raw.norm_topk_prob,
            routed_scaling_factor: raw.routed_scaling_factor.unwrap_or(1.0),
            first_k_dense_replace: raw.first_k_dense_replace,
            moe_layer_freq: raw.moe_layer_freq.unwrap_or(1),
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
            rope_theta: raw.rope_theta.unwrap_or(10000.0),
            rope_scaling,
            max_position_embeddings,
            tie_word_embeddings: raw.tie_word_embeddings,
            attention_bias: raw.attention_bias,
            num_nextn_predict_layers: raw.num_nextn_predict_layers,
            bos_token_id: raw.bos_token_id,
            eos_token_ids: raw.eos_token_id.to_vec(),
            initializer_range: raw.initializer_range.unwrap_or(0.006),
        })
    }

    pub fn validate(&self) -> Result<()> {
        for (v, f) in [
            (self.vocab_size, "vocab_size"),
            (self.hidden_size, "hidden_size"),
            (self.intermediate_size, "intermediate_size"),
            (self.num_hidden_layers, "num_hidden_layers"),
            (self.num_attention_heads, "num_attention_heads"),
            (self.kv_lora_rank, "kv_lora_rank"),
            (self.qk_nope_head_dim, "qk_nope_head_dim"),
            (self.qk_rope_head_dim, "qk_rope_head_dim"),
            (self.v_head_dim, "v_head_dim"),
            (self.max_position_embeddings, "max_position_embeddings"),
            (self.moe_layer_freq, "moe_layer_freq"),
        ] {
            positive(v, f)?;
        }
        let rope = self.qk_rope_head_dim;
        require(rope.is_multiple_of(2), "qk_rope_head_dim", || format!("must be even (rotated in pairs), found {rope}"))?;
        require(self.rms_norm_eps > 0.0, "rms_norm_eps", || format!("must be > 0, found {}", self.rms_norm_eps))?;
        require(self.rope_theta > 0.0, "rope_theta", || format!("must be > 0, found {}", self.rope_theta))?;
        require(self.first_k_dense_replace <= self.num_hidden_layers, "first_k_dense_replace", || {
            format!("must be <= num_hidden_layers ({}), found {}", self.num_hidden_layers, self.first_k_dense_replace)
        })?;
        if let Some(n_experts) = self.n_routed_experts {
            positive(self.moe_intermediate_size, "moe_intermediate_size")?;
            let k = self.num_experts_per_tok;
            require(k >= 1 && k <= n_experts, "num_experts_per_tok", || {
                format!("must be in 1..={n_experts} (n_routed_experts), found {k}")
            })?;
            require(self.n_group >= 1 && n_experts % self.n_group == 0, "n_group", || {
                format!("must divide n_routed_experts ({n_experts}), found {}", self.n_group)
            })?;
            require(self.topk_group >= 1 && self.topk_group <= self.n_group, "topk_group", || {
                format!("must be in 1..={} (n_group), found {}", self.n_group, self.topk_group)
            })?;
            let per_group = n_experts / self.n_group;
            if self.group_limited() {
                require(k <= self.topk_group * per_group, "num_experts_per_tok", || {
                    format!(
                        "{k} experts cannot be chosen from {} kept groups of {per_group}",
                        self.topk_group
                    )
                })?;
            }
            if self.topk_method == TopkMethod::NoauxTc && self.n_group > 1 {
                require(per_group >= 2, "n_group", || {
                    format!("noaux_tc scores a group by its top-2 experts; {per_group} expert(s) per group")
                })?;
            }
            require(self.routed_scaling_factor.is_finite() && self.routed_scaling_factor > 0.0, "routed_scaling_factor", || {
                format!("must be > 0, found {}", self.routed_scaling_factor)
            })?;
        }
        Ok(())
    }

    /// Whether the router restricts experts to the best `topk_group` groups.
    pub fn group_limited(&self) -> bool {
        self.n_group > 1 && self.topk_method != TopkMethod::Greedy
    }

    pub fn qk_head_dim(&self) -> usize {
        self.qk_nope_head_dim + self.qk_rope_head_dim
    }

    /// Whether decoder layer `i` uses the MoE feed-forward (HF's rule).
    pub fn is_moe_layer(&self, i: usize) -> bool {
        self.n_routed_experts.is_some() && i >= self.first_k_dense_replace && i.is_multiple_of(self.moe_layer_freq)
    }

    /// Values the MLA latent cache holds per token per layer: the normalized latent `c_kv`
    /// and the roped shared key `k_pe`.
    pub fn latent_cache_width(&self) -> usize {
        self.kv_lora_rank + self.qk_rope_head_dim
    }

    /// YaRN's attention-temperature factor `m = 0.1 * mscale_all_dim * ln(factor) + 1`
    /// (1 without YaRN); the softmax scale is multiplied by m².
    pub fn yarn_mscale_all_dim(&self) -> f64 {
        match self.rope_scaling {
            Some(RopeScaling::Yarn { factor, mscale_all_dim, .. }) if mscale_all_dim != 0.0 => {
                yarn_get_mscale(factor, mscale_all_dim)
            }
            _ => 1.0,
        }
    }

    /// Attention softmax scale: `qk_head_dim^-0.5 * m²` (V3 §2.1.1 with YaRN, as in the
    /// reference code and transformers' DeepSeek-V3).
    pub fn softmax_scale(&self) -> f64 {
        let m = self.yarn_mscale_all_dim();
        (self.qk_head_dim() as f64).powf(-0.5) * m * m
    }
}

/// YaRN's `get_mscale(scale, mscale) = 0.1 * mscale * ln(scale) + 1` (1 for scale <= 1).
pub fn yarn_get_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}
