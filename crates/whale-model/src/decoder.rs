//! The decoder stack every family shares: embedding → blocks → final RMSNorm → output
//! head, with input checks (token ids within the vocabulary, positions within the
//! context) and the KV-cache bookkeeping.
//!
//! Two entry points over one core:
//! - `forward`: a `(b, t)` batch of equal-length sequences; with a cache only for `b = 1`;
//! - `forward_seqs`: several sequences of any lengths, each with its own cache (continuous
//!   batching: some sequences prefill a chunk while others decode one token).

use crate::block::{Attention, Block, FeedForward, Segment};
use crate::causal_lm::{ModelInfo, SeqStep};
use candle_core::{DType, Device, Tensor};
use whale_core::{Result, WhaleError, Weights};
use whale_nn::moe::Routing;
use whale_nn::{Embedding, KvCache, LayerCache, Linear, RmsNorm, Rope};

/// The `CausalLm` methods every family answers straight from its `decoder` field: `info`,
/// `device`, `dtype`, `new_cache` and `forward_hidden`.
macro_rules! delegate_to_decoder {
    () => {
        fn info(&self) -> &$crate::causal_lm::ModelInfo {
            &self.decoder.info
        }

        fn device(&self) -> &candle_core::Device {
            self.decoder.device()
        }

        fn dtype(&self) -> candle_core::DType {
            self.decoder.dtype()
        }

        fn new_cache(&self) -> whale_nn::KvCache {
            self.decoder.new_cache()
        }

        fn forward_hidden(
            &self,
            ids: &candle_core::Tensor,
            cache: Option<&mut whale_nn::KvCache>,
        ) -> whale_core::Result<$crate::decoder::DecoderOutput> {
            self.decoder.forward(ids, cache)
        }
    };
}
pub(crate) use delegate_to_decoder;

pub struct DecoderOutput {
    /// Final-normed hidden states: what the output head sees. `(b, t, hidden)` from
    /// `forward`, `(T, hidden)` (all sequences' tokens concatenated) from `forward_seqs`.
    pub hidden: Tensor,
    /// Token embeddings, same layout as `hidden`.
    pub embeddings: Tensor,
    /// The residual stream after each block, same layout as `hidden`.
    pub layer_outputs: Vec<Tensor>,
    /// `(layer index, routing)` for every MoE layer; rows are the tokens in order.
    pub routing: Vec<(usize, Routing)>,
}

pub struct Decoder<A, F> {
    pub embed: Embedding,
    pub layers: Vec<Block<A, F>>,
    pub norm: RmsNorm,
    pub lm_head: Linear,
    pub rope: Rope,
    pub info: ModelInfo,
    /// Multiplies the token embeddings (Gemma: `sqrt(hidden)`); `None` for 1.
    pub embed_scale: Option<f64>,
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
            embed_scale: None,
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
    pub fn check_ids(&self, ids: &[u32], offset: usize) -> Result<()> {
        if ids.is_empty() {
            return Err(WhaleError::InvalidInput("empty sequence of token ids".into()));
        }
        let vocab = self.info.vocab_size;
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(WhaleError::InvalidInput(format!("token id {bad} is out of range: vocab_size is {vocab}")));
        }
        let (t, max) = (ids.len(), self.info.max_position_embeddings);
        if offset + t > max {
            return Err(WhaleError::InvalidInput(format!(
                "context too long: {offset} cached + {t} new = {} tokens, the model's limit (max_position_embeddings) is {max}",
                offset + t
            )));
        }
        Ok(())
    }

    fn check_cache(&self, cache: &KvCache) -> Result<()> {
        if cache.num_layers() != self.layers.len() {
            return Err(WhaleError::InvalidInput(format!(
                "KV cache has {} layers, the model {}: use the model's own new_cache()",
                cache.num_layers(),
                self.layers.len()
            )));
        }
        Ok(())
    }

    /// `(b, t)` u32 ids → host rows, checked.
    pub fn check_batch(&self, ids: &Tensor, offset: usize) -> Result<Vec<Vec<u32>>> {
        let (b, _) = ids
            .dims2()
            .map_err(|_| WhaleError::InvalidInput(format!("token ids must be (batch, seq), found {:?}", ids.dims())))?;
        if b == 0 {
            return Err(WhaleError::InvalidInput("empty batch of token ids".into()));
        }
        if ids.dtype() != DType::U32 {
            return Err(WhaleError::InvalidInput(format!("token ids must be u32, found {:?}", ids.dtype())));
        }
        let rows = ids.to_vec2::<u32>()?;
        for row in &rows {
            self.check_ids(row, offset)?;
        }
        Ok(rows)
    }

    /// A segment of `len` tokens at rows `start..`, positions `offset..offset + len`;
    /// `prompt` when they are a prompt's (see [`Segment::prompt`]).
    pub fn segment(&self, start: usize, len: usize, offset: usize, prompt: bool) -> Result<Segment> {
        Ok(Segment {
            start,
            len,
            offset,
            prompt,
            rope: self.rope.table(offset, len, self.dtype, &self.device)?,
            batch: 1,
        })
    }

    /// Equal-length segments for a `(b, t)` batch at positions `offset..`.
    pub fn batch_segments(&self, b: usize, t: usize, offset: usize) -> Result<Vec<Segment>> {
        // All rows share positions: build the rope table once.
        let first = self.segment(0, t, offset, false)?;
        let mut segs = Vec::with_capacity(b);
        for i in 1..b {
            segs.push(Segment { start: i * t, len: t, offset, prompt: false, rope: first.rope.clone(), batch: 1 });
        }
        segs.insert(0, first);
        Ok(segs)
    }

    /// The core: `ids: (T,)` of all segments → `(T, hidden)` outputs.
    fn run(&self, ids: &Tensor, segs: &[Segment], caches: &mut [Option<&mut KvCache>]) -> Result<DecoderOutput> {
        // A step of decodes only takes the decode-row kernels (see `whale_quant::decode_kernels`).
        if crate::decode::all_decode(segs, caches) {
            whale_quant::decode_kernels(|| self.run_layers(ids, segs, caches))
        } else {
            self.run_layers(ids, segs, caches)
        }
    }

    fn run_layers(&self, ids: &Tensor, segs: &[Segment], caches: &mut [Option<&mut KvCache>]) -> Result<DecoderOutput> {
        let n = ids.dim(0)?;
        let mut embeddings = self.embed.forward(&ids.reshape((1, n))?)?.squeeze(0)?;
        if let Some(s) = self.embed_scale {
            embeddings = (embeddings * s)?;
        }
        let mut x = embeddings.clone();
        let mut layer_outputs = Vec::with_capacity(self.layers.len());
        let mut routing = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let mut layer_caches: Vec<Option<&mut LayerCache>> =
                caches.iter_mut().map(|c| c.as_deref_mut().map(|c| c.layer_mut(i))).collect();
            let (y, r) = layer.forward(&x, segs, &mut layer_caches)?;
            if let Some(r) = r {
                routing.push((i, r));
            }
            layer_outputs.push(y.clone());
            x = y;
        }
        Ok(DecoderOutput { hidden: self.norm.forward(&x)?, embeddings, layer_outputs, routing })
    }

    /// `ids: (b, t)` → hidden states `(b, t, hidden)` and per-layer details. A cache (whose
    /// length gives the first position) is only for a single sequence (`b = 1`); batches
    /// of cached sequences go through `forward_seqs`.
    pub fn forward(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Result<DecoderOutput> {
        let offset = cache.as_ref().map_or(0, |c| c.seq_len());
        if let Some(c) = cache.as_ref() {
            self.check_cache(c)?;
        }
        self.check_batch(ids, offset)?;
        let (b, t) = ids.dims2()?;
        if cache.is_some() && b != 1 {
            return Err(WhaleError::InvalidInput(format!(
                "a KV cache holds one sequence, got a batch of {b}: use forward_seqs with one cache per sequence"
            )));
        }
        let segs = self.batch_segments(b, t, offset)?;
        let mut caches: Vec<Option<&mut KvCache>> = match cache {
            Some(c) => vec![Some(c)],
            None => (0..b).map(|_| None).collect(),
        };
        let out = self.run(&ids.flatten_all()?, &segs, &mut caches)?;
        let shape = |x: Tensor| x.reshape((b, t, self.info.hidden_size));
        Ok(DecoderOutput {
            hidden: shape(out.hidden)?,
            embeddings: shape(out.embeddings)?,
            layer_outputs: out.layer_outputs.into_iter().map(shape).collect::<candle_core::Result<_>>()?,
            routing: out.routing,
        })
    }

    /// Several sequences, each with its own cache, in one forward; returns the final-normed
    /// hidden state of each sequence's last new token, `(n, hidden)`. Nothing is appended
    /// to any cache unless every sequence is valid.
    pub fn forward_seqs(&self, steps: &mut [SeqStep<'_>]) -> Result<Tensor> {
        if steps.is_empty() {
            return Err(WhaleError::InvalidInput("forward_seqs needs at least one sequence".into()));
        }
        let mut segs = Vec::with_capacity(steps.len());
        let mut all_ids = Vec::new();
        let mut last_rows = Vec::with_capacity(steps.len());
        for s in steps.iter() {
            self.check_cache(s.cache)?;
            let offset = s.cache.seq_len();
            self.check_ids(s.ids, offset)?;
            segs.push(self.segment(all_ids.len(), s.ids.len(), offset, s.prompt)?);
            all_ids.extend_from_slice(s.ids);
            last_rows.push((all_ids.len() - 1) as u32);
        }
        let ids = Tensor::new(all_ids.as_slice(), &self.device)?;
        let mut caches: Vec<Option<&mut KvCache>> = steps.iter_mut().map(|s| Some(&mut *s.cache)).collect();
        let out = self.run(&ids, &segs, &mut caches)?;
        Ok(out.hidden.index_select(&Tensor::new(last_rows.as_slice(), &self.device)?, 0)?)
    }

    pub fn head(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }
}
