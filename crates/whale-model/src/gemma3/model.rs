//! The Gemma 3 model (HF `Gemma3ForCausalLM`): token embeddings scaled by `sqrt(hidden)`,
//! blocks `x += post_norm(attn(norm(x))); x += post_norm(mlp(norm(x)))`, a final
//! one-centred RMSNorm, the head tied to the embeddings, and optional final-logit
//! soft-capping `cap · tanh(logits / cap)`.

use super::{Gemma3Attention, Gemma3Mlp};
use crate::block::Block;
use crate::causal_lm::{CausalLm, ModelInfo, SeqStep};
use crate::decoder::Decoder;
use candle_core::Tensor;
use whale_core::config::Gemma3Config;
use whale_core::{Result, Weights};
use whale_nn::{RmsNorm, Rope, RopeLayout};

pub struct Gemma3Model {
    decoder: Decoder<Gemma3Attention, Gemma3Mlp>,
    cfg: Gemma3Config,
}

impl Gemma3Model {
    pub fn new(cfg: &Gemma3Config, w: &Weights) -> Result<Self> {
        cfg.validate()?;
        let (d, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        let rope = Rope::new(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling.as_ref(), RopeLayout::Halves);
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let lw = w.pp(format!("model.layers.{i}"));
                Ok(Block::with_norms(
                    RmsNorm::load_one_centered(&lw, "input_layernorm", d, eps)?,
                    Gemma3Attention::new(&lw, cfg, i, &rope)?,
                    RmsNorm::load_one_centered(&lw, "pre_feedforward_layernorm", d, eps)?,
                    Gemma3Mlp::new(&lw, d, cfg.intermediate_size, eps)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let info = ModelInfo {
            model_type: "gemma3_text",
            vocab_size: cfg.vocab_size,
            hidden_size: d,
            num_layers: cfg.num_hidden_layers,
            max_position_embeddings: cfg.max_position_embeddings,
            bos_token_id: cfg.bos_token_id,
            eos_token_ids: cfg.eos_token_ids.clone(),
            mtp_depth: 0,
        };
        // The head is always `lm_head`: a GGUF file without `output.weight` serves the
        // (quantized) embedding table under that name, an HF folder ties it below.
        let tied = !w.contains("lm_head.weight");
        let mut decoder = Decoder::new(w, info, layers, rope, eps, tied)?;
        decoder.norm = RmsNorm::load_one_centered(&w.pp("model"), "norm", d, eps)?;
        decoder.embed_scale = Some((d as f64).sqrt());
        Ok(Self { decoder, cfg: cfg.clone() })
    }

    pub fn config(&self) -> &Gemma3Config {
        &self.cfg
    }

    fn soft_cap(&self, logits: Tensor) -> Result<Tensor> {
        Ok(match self.cfg.final_logit_softcapping {
            Some(cap) => ((logits / cap)?.tanh()? * cap)?,
            None => logits,
        })
    }
}

impl CausalLm for Gemma3Model {
    crate::decoder::delegate_to_decoder!();

    fn forward_seqs(&self, steps: &mut [SeqStep<'_>]) -> Result<Tensor> {
        let hidden = self.decoder.forward_seqs(steps)?;
        whale_quant::decode_kernels(|| self.lm_head(&hidden))
    }

    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.soft_cap(self.decoder.head(hidden)?)
    }
}
