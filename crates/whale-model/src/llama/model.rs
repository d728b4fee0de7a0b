//! The Llama / Qwen2 model: the shared decoder stack with grouped-query attention and a
//! dense SwiGLU MLP.

use super::attention::GqaAttention;
use crate::block::Block;
use crate::causal_lm::{CausalLm, ModelInfo, SeqStep};
use crate::decoder::Decoder;
use candle_core::{DType, Device, Tensor};
use whale_core::config::{LlamaConfig, ModelConfig};
use whale_core::{Result, WhaleError, Weights};
use whale_nn::{Mlp, Rope, RopeLayout};

pub struct LlamaModel {
    decoder: Decoder<GqaAttention, Mlp>,
    cfg: LlamaConfig,
}

impl LlamaModel {
    /// Loads an HF folder (`config.json` + safetensors) whose model_type is llama/qwen2.
    pub fn load(dir: &std::path::Path, dtype: DType, device: &Device) -> Result<Self> {
        let config_path = dir.join(crate::CONFIG_FILE);
        match ModelConfig::from_file(&config_path)? {
            ModelConfig::Llama(cfg) => Self::new(&cfg, &Weights::from_dir(dir, dtype, device)?),
            other => Err(WhaleError::InvalidInput(format!(
                "{}: model_type is {}, not a Llama/Qwen2 model",
                config_path.display(),
                other.model_type()
            ))),
        }
    }

    pub fn new(cfg: &LlamaConfig, w: &Weights) -> Result<Self> {
        cfg.validate()?;
        let rope = Rope::new(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling.as_ref(), RopeLayout::Halves);
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let lw = w.pp(format!("model.layers.{i}"));
                let attn = GqaAttention::new(&lw.pp("self_attn"), cfg, rope.clone())?;
                let mlp = Mlp::load(&lw.pp("mlp"), cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias)?;
                Block::new(&lw, cfg.hidden_size, cfg.rms_norm_eps, attn, mlp)
            })
            .collect::<Result<Vec<_>>>()?;
        let info = ModelInfo {
            model_type: ModelConfig::Llama(cfg.clone()).model_type(),
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.hidden_size,
            num_layers: cfg.num_hidden_layers,
            max_position_embeddings: cfg.max_position_embeddings,
            bos_token_id: cfg.bos_token_id,
            eos_token_ids: cfg.eos_token_ids.clone(),
            mtp_depth: 0,
        };
        let decoder = Decoder::new(w, info, layers, rope, cfg.rms_norm_eps, cfg.tie_word_embeddings)?;
        Ok(Self { decoder, cfg: cfg.clone() })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    pub fn decoder(&self) -> &Decoder<GqaAttention, Mlp> {
        &self.decoder
    }
}

impl CausalLm for LlamaModel {
    crate::decoder::delegate_to_decoder!();

    fn forward_seqs(&self, steps: &mut [SeqStep<'_>]) -> Result<Tensor> {
        let hidden = self.decoder.forward_seqs(steps)?;
        whale_quant::decode_kernels(|| self.decoder.head(&hidden))
    }

    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.decoder.head(hidden)
    }
}
