//! The DeepSeek model: the shared decoder stack with MLA attention and DeepSeekMoE
//! feed-forwards, plus the optional MTP modules stored after the last layer.

use super::mla::{Mla, MlaMode};
use super::moe::DeepSeekFfn;
use super::mtp::Mtp;
use crate::block::Block;
use crate::causal_lm::{CausalLm, ModelInfo, SeqStep, TrainOutput};
use crate::decoder::Decoder;
use candle_core::{DType, Device, Tensor};
use whale_core::config::{DeepSeekConfig, ModelConfig};
use whale_core::{Result, WhaleError, Weights};
use whale_nn::{KvCache, Rope, RopeLayout};

pub struct DeepSeekModel {
    decoder: Decoder<Mla, DeepSeekFfn>,
    mtp: Vec<Mtp>,
    cfg: DeepSeekConfig,
}

fn block(w: &Weights, cfg: &DeepSeekConfig, layer: usize, rope: &Rope) -> Result<Block<Mla, DeepSeekFfn>> {
    let w = w.pp(format!("model.layers.{layer}"));
    let attn = Mla::new(&w.pp("self_attn"), cfg, rope.clone())?;
    let ffn = DeepSeekFfn::new(&w, cfg, layer)?;
    Block::new(&w, cfg.hidden_size, cfg.rms_norm_eps, attn, ffn)
}

impl DeepSeekModel {
    /// Loads an HF folder (`config.json` + safetensors) whose model_type is deepseek_v2/v3.
    pub fn load(dir: &std::path::Path, dtype: DType, device: &Device) -> Result<Self> {
        let config_path = dir.join(crate::CONFIG_FILE);
        match ModelConfig::from_file(&config_path)? {
            ModelConfig::DeepSeek(cfg) => Self::new(&cfg, &Weights::from_dir(dir, dtype, device)?),
            other => Err(WhaleError::InvalidInput(format!(
                "{}: model_type is {}, not a DeepSeek model",
                config_path.display(),
                other.model_type()
            ))),
        }
    }

    pub fn new(cfg: &DeepSeekConfig, w: &Weights) -> Result<Self> {
        cfg.validate()?;
        let rope = Rope::new(cfg.qk_rope_head_dim, cfg.rope_theta, cfg.rope_scaling.as_ref(), RopeLayout::Interleaved);
        let layers = (0..cfg.num_hidden_layers).map(|i| block(w, cfg, i, &rope)).collect::<Result<Vec<_>>>()?;
        // MTP modules are optional in checkpoints (many conversions drop them): load them
        // when present, or always when creating weights for training.
        let mut mtp = Vec::new();
        for k in 0..cfg.num_nextn_predict_layers {
            let layer = cfg.num_hidden_layers + k;
            let mw = w.pp(format!("model.layers.{layer}"));
            if !mw.contains("eh_proj.weight") {
                break;
            }
            mtp.push(Mtp::new(&mw, cfg.hidden_size, cfg.vocab_size, cfg.rms_norm_eps, block(w, cfg, layer, &rope)?)?);
        }
        let info = ModelInfo {
            model_type: ModelConfig::DeepSeek(cfg.clone()).model_type(),
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.hidden_size,
            num_layers: cfg.num_hidden_layers,
            max_position_embeddings: cfg.max_position_embeddings,
            bos_token_id: cfg.bos_token_id,
            eos_token_ids: cfg.eos_token_ids.clone(),
            mtp_depth: mtp.len(),
        };
        let decoder = Decoder::new(w, info, layers, rope, cfg.rms_norm_eps, cfg.tie_word_embeddings)?;
        Ok(Self { decoder, mtp, cfg: cfg.clone() })
    }

    pub fn config(&self) -> &DeepSeekConfig {
        &self.cfg
    }

    pub fn decoder(&self) -> &Decoder<Mla, DeepSeekFfn> {
        &self.decoder
    }

    /// Chooses the MLA path for every layer (and the MTP blocks).
    pub fn set_mla_mode(&mut self, mode: MlaMode) {
        for layer in &mut self.decoder.layers {
            layer.attn.set_mode(mode);
        }
        for m in &mut self.mtp {
            m.block.attn.set_mode(mode);
        }
    }
}

impl CausalLm for DeepSeekModel {
    crate::decoder::delegate_to_decoder!();

    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.decoder.head(hidden)
    }

    fn forward_seqs(&self, steps: &mut [SeqStep<'_>]) -> Result<Tensor> {
        let hidden = self.decoder.forward_seqs(steps)?;
        whale_quant::decode_kernels(|| self.decoder.head(&hidden))
    }

    fn forward_train(&self, ids: &Tensor) -> Result<TrainOutput> {
        let out = self.decoder.forward(ids, None)?;
        let logits = self.decoder.head(&out.hidden)?;
        let mut routing = out.routing;
        let (b, t) = ids.dims2()?;
        let d = self.cfg.hidden_size;
        let mut mtp_logits = Vec::with_capacity(self.mtp.len());
        let mut hidden = out.hidden;
        for (k0, module) in self.mtp.iter().enumerate() {
            let k = k0 + 1;
            if t <= k {
                break;
            }
            // Position i pairs h^{k-1}_i with token i + k and predicts token i + k + 1.
            let n = t - k;
            let segs = self.decoder.batch_segments(b, n, 0)?;
            let h = hidden.narrow(1, 0, n)?.reshape((b * n, d))?;
            let next = ids.narrow(1, k, n)?.flatten_all()?;
            let mut caches: Vec<_> = (0..b).map(|_| None).collect();
            let o = module.forward(&h, &next, &self.decoder.embed, &self.decoder.lm_head, &segs, &mut caches)?;
            if let Some(r) = o.routing {
                routing.push((self.cfg.num_hidden_layers + k0, r));
            }
            mtp_logits.push(o.logits.reshape((b, n, self.cfg.vocab_size))?);
            hidden = o.hidden.reshape((b, n, d))?;
        }
        Ok(TrainOutput { logits, mtp_logits, routing })
    }

    fn forward_mtp(
        &self,
        depth: usize,
        hidden: &Tensor,
        next_ids: &Tensor,
        cache: Option<&mut KvCache>,
    ) -> Result<(Tensor, Tensor)> {
        let module = depth.checked_sub(1).and_then(|i| self.mtp.get(i)).ok_or_else(|| {
            WhaleError::InvalidInput(format!("MTP depth {depth} requested; this model has {} MTP module(s)", self.mtp.len()))
        })?;
        let offset = match cache.as_ref() {
            Some(c) if c.num_layers() >= depth => c.layer(depth - 1).len(),
            Some(c) => {
                return Err(WhaleError::InvalidInput(format!(
                    "MTP cache has {} layer(s), depth {depth} requested",
                    c.num_layers()
                )))
            }
            None => 0,
        };
        self.decoder.check_batch(next_ids, offset)?;
        let (b, t) = next_ids.dims2()?;
        let d = self.cfg.hidden_size;
        if hidden.dims() != [b, t, d] {
            return Err(WhaleError::InvalidInput(format!(
                "MTP hidden states must be {:?} to match the token ids, found {:?}",
                [b, t, d],
                hidden.dims()
            )));
        }
        if cache.is_some() && b != 1 {
            return Err(WhaleError::InvalidInput(format!("an MTP cache holds one sequence, got a batch of {b}")));
        }
        let segs = self.decoder.batch_segments(b, t, offset)?;
        let mut caches: Vec<Option<&mut whale_nn::LayerCache>> = match cache {
            Some(c) => vec![Some(c.layer_mut(depth - 1))],
            None => (0..b).map(|_| None).collect(),
        };
        let o = module.forward(
            &hidden.reshape((b * t, d))?,
            &next_ids.flatten_all()?,
            &self.decoder.embed,
            &self.decoder.lm_head,
            &segs,
            &mut caches,
        )?;
        Ok((o.logits.reshape((b, t, self.cfg.vocab_size))?, o.hidden.reshape((b, t, d))?))
    }

    fn new_mtp_cache(&self) -> Option<KvCache> {
        if self.mtp.is_empty() {
            return None;
        }
        use crate::block::Attention;
        Some(KvCache::new(self.mtp.iter().map(|m| m.block.attn.new_cache()).collect(), self.dtype()))
    }
}
