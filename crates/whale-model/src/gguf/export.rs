//! GGUF metadata for a model config: the inverse of `config.rs`, with the keys and value
//! types llama.cpp's `convert_hf_to_gguf.py` writes (`set_gguf_parameters` of `LlamaModel`,
//! `Qwen2Model`, `DeepseekV2Model`; integers as u32, floats as f32). DeepSeek files use the
//! current MLA layout: `kv_b_proj` split into `attn_k_b`/`attn_v_b`, MQA-style head counts
//! (`head_count_kv` 1, `key_length` = kv_lora + rope) and the per-head sizes under `*_mla`.

use whale_core::config::{LlamaFlavor, ModelConfig, RopeScaling, ScoringFunc};
use whale_core::gguf::GgufValue;
use whale_core::{Result, WhaleError};

/// `general.architecture` for a config.
pub fn arch_of(cfg: &ModelConfig) -> &'static str {
    match cfg {
        ModelConfig::Llama(c) if c.flavor == LlamaFlavor::Llama => "llama",
        ModelConfig::Llama(_) => "qwen2",
        ModelConfig::DeepSeek(_) => "deepseek2",
    }
}

struct Kv {
    arch: &'static str,
    out: Vec<(String, GgufValue)>,
}

impl Kv {
    fn u32(&mut self, key: &str, v: usize) -> Result<()> {
        let v = u32::try_from(v).map_err(|_| WhaleError::invalid_config(key, format!("{v} does not fit in u32")))?;
        self.out.push((format!("{}.{key}", self.arch), GgufValue::U32(v)));
        Ok(())
    }
    fn f32(&mut self, key: &str, v: f64) {
        self.out.push((format!("{}.{key}", self.arch), GgufValue::F32(v as f32)));
    }
    fn bool(&mut self, key: &str, v: bool) {
        self.out.push((format!("{}.{key}", self.arch), GgufValue::Bool(v)));
    }
    fn str(&mut self, key: &str, v: &str) {
        self.out.push((format!("{}.{key}", self.arch), GgufValue::String(v.to_string())));
    }
    fn rope_scaling(&mut self, s: Option<&RopeScaling>) -> Result<()> {
        match s {
            None => {}
            Some(RopeScaling::Linear { factor }) => {
                self.str("rope.scaling.type", "linear");
                self.f32("rope.scaling.factor", *factor);
            }
            Some(RopeScaling::Yarn { factor, original_max_position_embeddings, mscale, mscale_all_dim, .. }) => {
                if (mscale - mscale_all_dim).abs() > 1e-9 && *mscale_all_dim != 0.0 {
                    return Err(WhaleError::invalid_config(
                        "rope_scaling.mscale",
                        format!("GGUF stores one YaRN mscale; mscale {mscale} != mscale_all_dim {mscale_all_dim}"),
                    ));
                }
                self.str("rope.scaling.type", "yarn");
                self.f32("rope.scaling.factor", *factor);
                self.u32("rope.scaling.original_context_length", *original_max_position_embeddings)?;
                self.f32("rope.scaling.yarn_log_multiplier", 0.1 * mscale_all_dim);
            }
            Some(RopeScaling::Llama3 { .. }) => {
                return Err(WhaleError::invalid_config(
                    "rope_scaling",
                    "Llama 3 rope scaling (stored by llama.cpp as a rope_freqs tensor) is not supported by whale quantize yet",
                ))
            }
        }
        Ok(())
    }
}

/// The `{arch}.*` keys of a model (no `general.*`, no tokenizer).
pub fn model_metadata(cfg: &ModelConfig) -> Result<Vec<(String, GgufValue)>> {
    let mut kv = Kv { arch: arch_of(cfg), out: Vec::new() };
    match cfg {
        ModelConfig::Llama(c) => {
            kv.u32("context_length", c.max_position_embeddings)?;
            kv.u32("embedding_length", c.hidden_size)?;
            kv.u32("block_count", c.num_hidden_layers)?;
            kv.u32("feed_forward_length", c.intermediate_size)?;
            kv.u32("attention.head_count", c.num_attention_heads)?;
            kv.u32("attention.head_count_kv", c.num_key_value_heads)?;
            kv.f32("rope.freq_base", c.rope_theta);
            kv.f32("attention.layer_norm_rms_epsilon", c.rms_norm_eps);
            kv.u32("vocab_size", c.vocab_size)?;
            if c.flavor == LlamaFlavor::Llama {
                kv.u32("rope.dimension_count", c.head_dim)?;
            }
            if c.head_dim * c.num_attention_heads != c.hidden_size {
                kv.u32("attention.key_length", c.head_dim)?;
                kv.u32("attention.value_length", c.head_dim)?;
            }
            kv.rope_scaling(c.rope_scaling.as_ref())?;
        }
        ModelConfig::DeepSeek(c) => {
            if c.moe_layer_freq != 1 {
                return Err(WhaleError::invalid_config("moe_layer_freq", "GGUF deepseek2 assumes every layer after the dense ones is MoE"));
            }
            kv.u32("context_length", c.max_position_embeddings)?;
            kv.u32("embedding_length", c.hidden_size)?;
            kv.u32("block_count", c.num_hidden_layers)?;
            kv.u32("feed_forward_length", c.intermediate_size)?;
            kv.u32("attention.head_count", c.num_attention_heads)?;
            kv.u32("attention.head_count_kv", 1)?;
            kv.f32("rope.freq_base", c.rope_theta);
            kv.f32("attention.layer_norm_rms_epsilon", c.rms_norm_eps);
            kv.u32("vocab_size", c.vocab_size)?;
            kv.u32("leading_dense_block_count", c.first_k_dense_replace)?;
            if let Some(r) = c.q_lora_rank {
                kv.u32("attention.q_lora_rank", r)?;
            }
            kv.u32("attention.kv_lora_rank", c.kv_lora_rank)?;
            kv.u32("attention.key_length", c.kv_lora_rank + c.qk_rope_head_dim)?;
            kv.u32("attention.value_length", c.kv_lora_rank)?;
            kv.u32("attention.key_length_mla", c.qk_head_dim())?;
            kv.u32("attention.value_length_mla", c.v_head_dim)?;
            if let Some(n) = c.n_routed_experts {
                kv.u32("expert_feed_forward_length", c.moe_intermediate_size)?;
                kv.u32("expert_count", n)?;
                kv.u32("expert_used_count", c.num_experts_per_tok)?;
                kv.u32("expert_shared_count", c.n_shared_experts)?;
                kv.f32("expert_weights_scale", c.routed_scaling_factor);
                kv.bool("expert_weights_norm", c.norm_topk_prob);
                if c.n_group > 1 {
                    kv.u32("expert_group_count", c.n_group)?;
                    kv.u32("expert_group_used_count", c.topk_group)?;
                }
                kv.u32("expert_gating_func", if c.scoring_func == ScoringFunc::Sigmoid { 2 } else { 1 })?;
            }
            kv.u32("rope.dimension_count", c.qk_rope_head_dim)?;
            kv.rope_scaling(c.rope_scaling.as_ref())?;
        }
    }
    Ok(kv.out)
}
