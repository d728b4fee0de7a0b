//! The pre-norm residual decoder block every family uses:
//! `x += attn(norm(x)); x += ffn(norm(x))` (V3 §2, Llama). Families supply the attention
//! (MLA, grouped-query) and the feed-forward (dense MLP, DeepSeekMoE).
//!
//! A forward runs over *segments*: the tokens of several sequences concatenated along one
//! axis, each sequence with its own positions and (optionally) its own KV cache. Linear
//! layers and the MoE see all tokens at once — the batching that makes serving many
//! sequences cheaper than serving them one by one — while attention runs per segment.

use candle_core::Tensor;
use whale_core::{Result, Weights};
use whale_nn::attention::Causal;
use whale_nn::moe::Routing;
use whale_nn::{LayerCache, Mlp, RmsNorm, RopeTable};

/// One sequence's run of tokens inside a forward.
pub struct Segment {
    /// First row of this segment in the concatenated `(T, hidden)` activations.
    pub start: usize,
    pub len: usize,
    /// Position of the segment's first token (the tokens already cached before it).
    pub offset: usize,
    /// The tokens are a prompt's: a prompt's last token computed alone (the rest came from
    /// the prefix cache) is not a decode, and takes the prompt kernels as in a cold prefill.
    pub prompt: bool,
    /// cos/sin for the segment's positions (`cached..cached + len`).
    pub rope: RopeTable,
    /// Sequences stacked in the segment: rows `start..start + batch * len`, each sequence's
    /// `len` tokens at positions `offset..offset + len`. Above 1 only where [`per_segment`]
    /// merges a cache-less batch of equal sequences (training, scoring).
    pub batch: usize,
}

impl Segment {
    /// The causal pattern of the segment's queries over its cache and itself.
    pub fn causal(&self) -> Causal {
        Causal::new(self.offset)
    }
}

pub trait Attention {
    /// `x: (T, hidden)` (all segments' tokens) → `(T, hidden)`. `caches[i]` belongs to
    /// `segs[i]`; this step's keys are appended to it.
    fn forward(&self, x: &Tensor, segs: &[Segment], caches: &mut [Option<&mut LayerCache>]) -> Result<Tensor>;
    /// A fresh cache for this layer (one sequence).
    fn new_cache(&self) -> LayerCache;
}

pub trait FeedForward {
    /// `x: (T, hidden)` → `(T, hidden)`, with the routing when the layer is MoE.
    fn forward(&self, x: &Tensor) -> Result<(Tensor, Option<Routing>)>;
}

impl FeedForward for Mlp {
    fn forward(&self, x: &Tensor) -> Result<(Tensor, Option<Routing>)> {
        Ok((Mlp::forward(self, x)?, None))
    }
}

pub struct Block<A, F> {
    input_layernorm: RmsNorm,
    pub attn: A,
    post_attention_layernorm: RmsNorm,
    pub ffn: F,
}

impl<A: Attention, F: FeedForward> Block<A, F> {
    /// `w` is the layer's prefix (`model.layers.{i}`).
    pub fn new(w: &Weights, hidden: usize, eps: f64, attn: A, ffn: F) -> Result<Self> {
        Ok(Self {
            input_layernorm: RmsNorm::load(w, "input_layernorm", hidden, eps)?,
            attn,
            post_attention_layernorm: RmsNorm::load(w, "post_attention_layernorm", hidden, eps)?,
            ffn,
        })
    }

    /// A block with its own two pre-norms (Gemma 3 names the one before the feed-forward
    /// `pre_feedforward_layernorm` and puts post-norms inside its attention and MLP).
    pub fn with_norms(attn_norm: RmsNorm, attn: A, ffn_norm: RmsNorm, ffn: F) -> Self {
        Self { input_layernorm: attn_norm, attn, post_attention_layernorm: ffn_norm, ffn }
    }

    /// `x: (T, hidden)` → the residual stream after this block.
    pub fn forward(
        &self,
        x: &Tensor,
        segs: &[Segment],
        caches: &mut [Option<&mut LayerCache>],
    ) -> Result<(Tensor, Option<Routing>)> {
        let h = self.attn.forward(&self.input_layernorm.forward(x)?, segs, caches)?;
        let x = (x + h)?;
        let (h, routing) = self.ffn.forward(&self.post_attention_layernorm.forward(&x)?)?;
        Ok(((x + h)?, routing))
    }
}

/// Runs `f` on each segment's rows of `x` (and its cache) and concatenates the results
/// back into one `(T, ·)` tensor. Equal cache-less segments laid out back to back (a
/// training batch) go to `f` as one segment of `batch` sequences: one attention over a
/// `(batch, heads, len, ·)` tensor instead of a loop of small ones, which in training is
/// many fewer ops for autograd to record and run backward.
pub fn per_segment(
    segs: &[Segment],
    caches: &mut [Option<&mut LayerCache>],
    mut f: impl FnMut(&Segment, Option<&mut LayerCache>) -> Result<Tensor>,
) -> Result<Tensor> {
    if let Some(batch) = uniform_batch(segs, caches) {
        let s = &segs[0];
        let merged = Segment { start: s.start, len: s.len, offset: s.offset, prompt: s.prompt, rope: s.rope.clone(), batch };
        return f(&merged, None);
    }
    let mut outs = Vec::with_capacity(segs.len());
    for (seg, cache) in segs.iter().zip(caches.iter_mut()) {
        outs.push(f(seg, cache.as_deref_mut())?);
    }
    Ok(Tensor::cat(&outs, 0)?)
}

/// The number of segments when they can run as one batch: more than one, no caches, each a
/// single sequence of the first one's length and positions, rows back to back.
fn uniform_batch(segs: &[Segment], caches: &[Option<&mut LayerCache>]) -> Option<usize> {
    let first = segs.first()?;
    let uniform = segs.len() > 1
        && caches.iter().all(|c| c.is_none())
        && segs.iter().enumerate().all(|(i, s)| {
            s.batch == 1
                && s.len == first.len
                && s.offset == first.offset
                && s.prompt == first.prompt
                && s.start == first.start + i * first.len
        });
    uniform.then_some(segs.len())
}
