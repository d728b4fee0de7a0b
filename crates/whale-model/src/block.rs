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
    /// Additive causal mask `(len, cached + len)`; `None` for a single token.
    pub mask: Option<Tensor>,
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
/// back into one `(T, ·)` tensor.
pub fn per_segment(
    segs: &[Segment],
    caches: &mut [Option<&mut LayerCache>],
    mut f: impl FnMut(&Segment, Option<&mut LayerCache>) -> Result<Tensor>,
) -> Result<Tensor> {
    let mut outs = Vec::with_capacity(segs.len());
    for (seg, cache) in segs.iter().zip(caches.iter_mut()) {
        outs.push(f(seg, cache.as_deref_mut())?);
    }
    Ok(Tensor::cat(&outs, 0)?)
}
