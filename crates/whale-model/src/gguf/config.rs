//! Model configs from GGUF metadata (llama.cpp's `{arch}.*` keys, GGUF spec "LLM" section,
//! and `convert_hf_to_gguf.py`'s `set_gguf_parameters` for each architecture).
//!
//! Keys llama.cpp itself requires are required here too (a missing one is an error naming
//! the key); keys llama.cpp treats as optional get llama.cpp's defaults. Two details the
//! files do not spell out directly:
//! - `tie_word_embeddings` is always false: a file without `output.weight` gets its head
//!   from `token_embd.weight` (see `tensors.rs`), so the head stays quantized.
//! - DeepSeek's MLA head sizes: files written since llama.cpp's MLA rework store the
//!   per-head sizes in `attention.key_length_mla`/`value_length_mla` (and the latent sizes in
//!   `key_length`/`value_length`); older files store the per-head sizes in
//!   `key_length`/`value_length`.

use whale_core::config::{
    DeepSeekConfig, DeepSeekVersion, Gemma3Config, LlamaConfig, LlamaFlavor, ModelConfig, RopeScaling, ScoringFunc, TopkMethod,
};
use whale_core::gguf::{FromGgufValue, GgufFile};
use whale_core::{Result, WhaleError};

/// llama.cpp's `LLAMA_EXPERT_GATING_FUNC_TYPE_*`.
const GATING_SOFTMAX: u32 = 1;
const GATING_SIGMOID: u32 = 2;

/// Typed access to `{arch}.{key}`.
pub(crate) struct Meta<'a> {
    pub file: &'a GgufFile,
    pub arch: &'a str,
}

impl<'a> Meta<'a> {
    pub fn new(file: &'a GgufFile) -> Result<Self> {
        Ok(Self { file, arch: file.get_str("general.architecture")? })
    }
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }
    pub fn req<T: FromGgufValue<'a>>(&self, k: &str) -> Result<T> {
        Ok(self.file.get_as(&self.key(k))?)
    }
    pub fn opt<T: FromGgufValue<'a>>(&self, k: &str) -> Result<Option<T>> {
        Ok(self.file.get_opt(&self.key(k))?)
    }
    fn usize(&self, k: &str) -> Result<usize> {
        self.req::<usize>(k)
    }
    fn f64_or(&self, k: &str, default: f64) -> Result<f64> {
        Ok(self.opt::<f32>(k)?.map(f64::from).unwrap_or(default))
    }
    fn has_tensor(&self, name: &str) -> bool {
        self.file.tensor(name).is_some()
    }
    /// Vocabulary size: the rows of `token_embd.weight` (the vocab key is optional in GGUF).
    fn vocab(&self) -> Result<usize> {
        let t = self.file.tensor("token_embd.weight").ok_or_else(|| WhaleError::MissingTensor {
            name: "token_embd.weight".into(),
            location: self.file.path().display().to_string(),
        })?;
        let shape = t.shape();
        match shape.as_slice() {
            [v, _] => Ok(*v),
            other => Err(WhaleError::ShapeMismatch {
                name: "token_embd.weight".into(),
                expected: vec![0, 0],
                found: other.to_vec(),
            }),
        }
    }
    fn token_id(&self, key: &str) -> Result<Option<u32>> {
        Ok(self.file.get_opt::<u32>(key)?)
    }
    /// `rope.scaling.*`: none, linear or YaRN (DeepSeek's flavour: llama.cpp keeps only
    /// `yarn_log_multiplier = 0.1 · mscale_all_dim` and assumes `mscale == mscale_all_dim`).
    fn rope_scaling(&self, max_pos: usize) -> Result<Option<RopeScaling>> {
        let kind = self.opt::<&str>("rope.scaling.type")?;
        let factor = self.opt::<f32>("rope.scaling.factor")?.map(f64::from);
        match kind {
            None | Some("none") => Ok(None),
            Some("linear") => Ok(factor.filter(|&f| f != 1.0).map(|factor| RopeScaling::Linear { factor })),
            Some("yarn") => {
                let factor = factor.ok_or_else(|| WhaleError::invalid_config(self.key("rope.scaling.factor"), "required for YaRN"))?;
                let orig = self.opt::<usize>("rope.scaling.original_context_length")?.unwrap_or(max_pos);
                let mscale_all_dim = self.f64_or("rope.scaling.yarn_log_multiplier", 0.0)? / 0.1;
                Ok(Some(RopeScaling::Yarn {
                    factor,
                    original_max_position_embeddings: orig,
                    beta_fast: self.f64_or("rope.scaling.yarn_beta_fast", 32.0)?,
                    beta_slow: self.f64_or("rope.scaling.yarn_beta_slow", 1.0)?,
                    mscale: mscale_all_dim,
                    mscale_all_dim,
                }))
            }
            Some(other) => Err(WhaleError::invalid_config(
                self.key("rope.scaling.type"),
                format!("expected \"none\", \"linear\" or \"yarn\", found {other:?}"),
            )),
        }
    }
}

/// The config of a GGUF model of a supported architecture.
pub fn config_from_gguf(file: &GgufFile) -> Result<ModelConfig> {
    let m = Meta::new(file)?;
    match m.arch {
        "llama" => Ok(ModelConfig::Llama(llama(&m, LlamaFlavor::Llama)?)),
        "qwen2" => Ok(ModelConfig::Llama(llama(&m, LlamaFlavor::Qwen2)?)),
        "deepseek2" => Ok(ModelConfig::DeepSeek(deepseek2(&m)?)),
        "gemma3" => Err(WhaleError::BadFile {
            path: file.path().to_path_buf(),
            message: "gemma3 has no HF-style ModelConfig yet; load it with whale_model::gguf::load_gguf".into(),
        }),
        other => Err(WhaleError::BadFile {
            path: file.path().to_path_buf(),
            message: format!(
                "general.architecture is {other:?}; Whale runs GGUF architectures {}",
                super::names::TABLES.iter().map(|t| t.arch).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

/// The config of a `gemma3` GGUF file. llama.cpp hard-codes what the file leaves out
/// (`llama_model::load_hparams`, LLM_ARCH_GEMMA3): every 6th layer is global, sliding
/// layers use RoPE base 10000, and scores are scaled by `key_length^-1/2` (by
/// `(hidden / heads)^-1/2` for the 62-layer 27B model).
pub fn gemma3_config_from_gguf(file: &GgufFile) -> Result<Gemma3Config> {
    let m = Meta::new(file)?;
    let hidden = m.usize("embedding_length")?;
    let heads = m.usize("attention.head_count")?;
    if heads == 0 {
        return Err(WhaleError::invalid_config(m.key("attention.head_count"), "must be > 0"));
    }
    let layers = m.usize("block_count")?;
    let head_dim = m.opt::<usize>("attention.key_length")?.unwrap_or(hidden / heads);
    let max_pos = m.usize("context_length")?;
    let mut eos: Vec<u32> = m.token_id("tokenizer.ggml.eos_token_id")?.into_iter().collect();
    // The chat turn ends with `<end_of_turn>`; llama.cpp finds it by its text.
    let tokens: Option<&[String]> = file.get_opt("tokenizer.ggml.tokens")?;
    if let Some(i) = tokens.and_then(|t| t.iter().position(|t| t == "<end_of_turn>")) {
        eos.extend(u32::try_from(i).ok().filter(|i| !eos.contains(i)));
    }
    let cfg = Gemma3Config {
        vocab_size: m.vocab()?,
        hidden_size: hidden,
        intermediate_size: m.usize("feed_forward_length")?,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: m.opt::<usize>("attention.head_count_kv")?.unwrap_or(heads),
        head_dim,
        rms_norm_eps: m.req::<f32>("attention.layer_norm_rms_epsilon")? as f64,
        rope_theta: m.f64_or("rope.freq_base", 1_000_000.0)?,
        rope_local_base_freq: 10_000.0,
        rope_scaling: m.rope_scaling(max_pos)?,
        sliding_window: m.usize("attention.sliding_window")?,
        sliding_window_pattern: 6,
        query_pre_attn_scalar: if layers == 62 { (hidden / heads) as f64 } else { head_dim as f64 },
        max_position_embeddings: max_pos,
        final_logit_softcapping: m.opt::<f32>("final_logit_softcapping")?.map(f64::from),
        bos_token_id: m.token_id("tokenizer.ggml.bos_token_id")?,
        eos_token_ids: eos,
    };
    cfg.validate()?;
    Ok(cfg)
}

fn llama(m: &Meta, flavor: LlamaFlavor) -> Result<LlamaConfig> {
    if m.has_tensor("rope_freqs.weight") {
        return Err(WhaleError::BadFile {
            path: m.file.path().to_path_buf(),
            message: "per-frequency RoPE factors (`rope_freqs.weight`, Llama 3 rope scaling) are not supported yet".into(),
        });
    }
    let hidden = m.usize("embedding_length")?;
    let heads = m.usize("attention.head_count")?;
    if heads == 0 {
        return Err(WhaleError::invalid_config(m.key("attention.head_count"), "must be > 0"));
    }
    let max_pos = m.usize("context_length")?;
    Ok(LlamaConfig {
        flavor,
        vocab_size: m.vocab()?,
        hidden_size: hidden,
        intermediate_size: m.usize("feed_forward_length")?,
        num_hidden_layers: m.usize("block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: m.opt::<usize>("attention.head_count_kv")?.unwrap_or(heads),
        head_dim: m.opt::<usize>("attention.key_length")?.unwrap_or(hidden / heads),
        rms_norm_eps: m.req::<f32>("attention.layer_norm_rms_epsilon")? as f64,
        rope_theta: m.f64_or("rope.freq_base", 10000.0)?,
        rope_scaling: m.rope_scaling(max_pos)?,
        max_position_embeddings: max_pos,
        tie_word_embeddings: false,
        qkv_bias: m.has_tensor("blk.0.attn_q.bias"),
        o_bias: m.has_tensor("blk.0.attn_output.bias"),
        mlp_bias: m.has_tensor("blk.0.ffn_gate.bias"),
        bos_token_id: m.token_id("tokenizer.ggml.bos_token_id")?,
        eos_token_ids: m.token_id("tokenizer.ggml.eos_token_id")?.into_iter().collect(),
        initializer_range: 0.02,
    })
}

fn deepseek2(m: &Meta) -> Result<DeepSeekConfig> {
    let max_pos = m.usize("context_length")?;
    let rope = m.usize("rope.dimension_count")?;
    // Newer files: per-head sizes under *_mla; older: in key_length/value_length.
    let (qk, v) = match m.opt::<usize>("attention.key_length_mla")? {
        Some(qk) => (qk, m.usize("attention.value_length_mla")?),
        None => (m.usize("attention.key_length")?, m.usize("attention.value_length")?),
    };
    let nope = qk.checked_sub(rope).filter(|&n| n > 0).ok_or_else(|| {
        WhaleError::invalid_config(m.key("attention.key_length"), format!("head size {qk} must exceed rope.dimension_count {rope}"))
    })?;
    let n_experts = m.opt::<usize>("expert_count")?.unwrap_or(0);
    let moe = n_experts > 0;
    let gating = m.opt::<u32>("expert_gating_func")?.unwrap_or(GATING_SOFTMAX);
    let scoring_func = match gating {
        GATING_SOFTMAX => ScoringFunc::Softmax,
        GATING_SIGMOID => ScoringFunc::Sigmoid,
        other => {
            return Err(WhaleError::invalid_config(
                m.key("expert_gating_func"),
                format!("expected 1 (softmax) or 2 (sigmoid), found {other}"),
            ))
        }
    };
    let n_group = m.opt::<usize>("expert_group_count")?.unwrap_or(1).max(1);
    let topk_group = m.opt::<usize>("expert_group_used_count")?.unwrap_or(1).max(1);
    let first_moe = (0..m.usize("block_count")?).find(|&i| m.has_tensor(&format!("blk.{i}.ffn_gate_inp.weight")));
    let bias = first_moe.is_some_and(|i| m.has_tensor(&format!("blk.{i}.exp_probs_b.bias")));
    let topk_method = if bias {
        TopkMethod::NoauxTc
    } else if n_group > 1 {
        TopkMethod::GroupLimitedGreedy
    } else {
        TopkMethod::Greedy
    };
    let q_lora_rank = m.opt::<usize>("attention.q_lora_rank")?.filter(|&r| r > 0);
    Ok(DeepSeekConfig {
        version: if scoring_func == ScoringFunc::Sigmoid { DeepSeekVersion::V3 } else { DeepSeekVersion::V2 },
        vocab_size: m.vocab()?,
        hidden_size: m.usize("embedding_length")?,
        intermediate_size: m.usize("feed_forward_length")?,
        moe_intermediate_size: if moe { m.usize("expert_feed_forward_length")? } else { 0 },
        num_hidden_layers: m.usize("block_count")?,
        num_attention_heads: m.usize("attention.head_count")?,
        q_lora_rank,
        kv_lora_rank: m.usize("attention.kv_lora_rank")?,
        qk_nope_head_dim: nope,
        qk_rope_head_dim: rope,
        v_head_dim: v,
        n_routed_experts: moe.then_some(n_experts),
        n_shared_experts: if moe { m.usize("expert_shared_count")? } else { 0 },
        num_experts_per_tok: if moe { m.usize("expert_used_count")? } else { 0 },
        n_group,
        topk_group,
        scoring_func,
        topk_method,
        norm_topk_prob: m.opt::<bool>("expert_weights_norm")?.unwrap_or(false),
        routed_scaling_factor: if moe { m.req::<f32>("expert_weights_scale")? as f64 } else { 1.0 },
        first_k_dense_replace: if moe { m.usize("leading_dense_block_count")? } else { 0 },
        moe_layer_freq: 1,
        rms_norm_eps: m.req::<f32>("attention.layer_norm_rms_epsilon")? as f64,
        rope_theta: m.f64_or("rope.freq_base", 10000.0)?,
        rope_scaling: m.rope_scaling(max_pos)?,
        max_position_embeddings: max_pos,
        tie_word_embeddings: false,
        attention_bias: false,
        // MTP layers are not converted to GGUF by llama.cpp's deepseek2 converter.
        num_nextn_predict_layers: 0,
        bos_token_id: m.token_id("tokenizer.ggml.bos_token_id")?,
        eos_token_ids: m.token_id("tokenizer.ggml.eos_token_id")?.into_iter().collect(),
        initializer_range: 0.006,
    })
}
