//! The decoder stack every family shares: embedding → blocks → final RMSNorm → output
//! head, with input checks (token ids within the vocabulary, positions within the
//! context) and the KV-cache bookkeeping.

use crate::block::{Attention, AttnCtx, Block, FeedForward};
use crate::causal_lm::ModelInfo;
use candle_core::{DType, Device, Tensor};
use whale_core::{Result, WhaleError, Weights};
use whale_nn::attention::causal_mask;
use whale_nn::moe::Routing;
use whale_nn::{Embedding, KvCache, Linear, RmsNorm, Rope};

pub struct DecoderOutput {
    /// Final-normed hidden states `(b, t, hidden)`: what the output head sees.
    pub hidden: Tensor,
    /// Token embeddings `(b, t, hidden)`.
    pub embeddings: Tensor,
    /// The residual stream after each block, `(b, t, hidden)` each.
    pub layer_outputs: Vec<Tensor>,
    /// `(layer index, routing)` for every MoE layer; rows are the `b * t` tokens, batch-major.
    pub routing: Vec<(usize, Routing)>,
}

pub struct Decoder<A, F> {
    pub embed: Embedding,
    pub layers: Vec<Block<A, F>>,
    pub norm: RmsNorm,
    pub lm_head: Linear,
    pub rope: Rope,
    pub info: ModelInfo,
    dtype: DType,
    device: Device,
}

impl<A: Attention, F: FeedForward> Decoder<A, F> {
    /// `w` is the checkpoint root; reads `model.embed_tokens`, `model.norm` and `lm_head`
    /// (or ties the head to the embedding).
    pub fn new(w: &Weights, info: ModelInfo, layers: Vec<Block<A, F>>, rope: Rope, eps: f64, tied: bool) -> Result<Self> {
        let (vocab, hidden) = (info.vocab_size, info.hidden_size);
        let embed = Embedding::load(&w.pp("model"), "embed_tokens", vocab, hidden)?;
        let lm_head = if tied {
            Linear::from_tensors(embed.table().clone(), None)
        } else {
            Linear::load(w, "lm_head", hidden, vocab, false)?
        };
        Ok(Self {
            embed,
            layers,
            norm: RmsNorm::load(&w.pp("model"), "norm", hidden, eps)?,
            lm_head,
            rope,
            info,
            dtype: w.dtype(),
            device: w.device().clone(),
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.iter().map(|l| l.attn.new_cache()).collect(), self.dtype)
    }

    /// Rejects token ids outside the vocabulary and positions past the context.
    pub fn check_input(&self, ids: &Tensor, offset: usize) -> Result<(usize, usize)> {
        let (b, t) = ids
            .dims2()
            .map_err(|_| WhaleError::InvalidInput(format!("token ids must be (batch, seq), found {:?}", ids.dims())))?;
        if t == 0 || b == 0 {
            return Err(WhaleError::InvalidInput("empty batch of token ids".into()));
        }
        if ids.dtype() != DType::U32 {
            return Err(WhaleError::InvalidInput(format!("token ids must be u32, found {:?}", ids.dtype())));
        }
        let vocab = self.info.vocab_size;
        if let Some(bad) = ids.flatten_all()?.to_vec1::<u32>()?.into_iter().find(|&id| id as usize >= vocab) {
            return Err(WhaleError::InvalidInput(format!("token id {bad} is out of range: vocab_size is {vocab}")));
        }
        let max = self.info.max_position_embeddings;
        if offset + t > max {
            return Err(WhaleError::InvalidInput(format!(
                "context too long: {} cached + {t} new = {} tokens, the model's limit (max_position_embeddings) is {max}",
                offset,
                offset + t
            )));
        }
        Ok((b, t))
    }

    /// The shared per-forward context for positions `offset..offset + t`.
    pub fn attn_ctx(&self, offset: usize, t: usize) -> Result<AttnCtx> {
        Ok(AttnCtx {
            rope: self.rope.table(offset, t, self.dtype, &self.device)?,
            mask: causal_mask(t, offset, &self.device)?,
        })
    }

    /// `ids: (b, t)` → hidden states and per-layer details.
    pub fn forward(&self, ids: &Tensor, mut cache: Option<&mut KvCache>) -> Result<DecoderOutput> {
        let offset = cache.as_ref().map_or(0, |c| c.seq_len());
        if let Some(c) = cache.as_ref() {
            if c.num_layers() != self.layers.len() {
                return Err(WhaleError::InvalidInput(format!(
                    "KV cache has {} layers, the model {}: use the model's own new_cache()",
                    c.num_layers(),
                    self.layers.len()
                )));
            }
        }
        self.check_input(ids, offset)?;
        let t = ids.dim(1)?;
        let ctx = self.attn_ctx(offset, t)?;
        let embeddings = self.embed.forward(ids)?;
        let mut x = embeddings.clone();
        let mut layer_outputs = Vec::with_capacity(self.layers.len());
        let mut routing = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| c.layer_mut(i));
            let (y, r) = layer.forward(&x, &ctx, layer_cache)?;
            if let Some(r) = r {
                routing.push((i, r));
            }
            layer_outputs.push(y.clone());
            x = y;
        }
        Ok(DecoderOutput { hidden: self.norm.forward(&x)?, embeddings, layer_outputs, routing })
    }

    pub fn head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }
}
