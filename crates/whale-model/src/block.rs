//! The pre-norm residual decoder block every family uses:
//! `x += attn(norm(x)); x += ffn(norm(x))` (V3 §2, Llama). Families supply the attention
//! (MLA, grouped-query) and the feed-forward (dense MLP, DeepSeekMoE).

use candle_core::Tensor;
use whale_core::{Result, Weights};
use whale_nn::moe::Routing;
use whale_nn::{LayerCache, Mlp, RmsNorm, RopeTable};

/// What every attention layer of one forward shares.
pub struct AttnCtx {
    /// cos/sin for the positions of the new tokens.
    pub rope: RopeTable,
    /// Additive causal mask `(t, cached + t)`, `None` for one token.
    pub mask: Option<Tensor>,
}

pub trait Attention {
    /// `x: (b, t, hidden)` → `(b, t, hidden)`; appends this step's keys to `cache`.
    fn forward(&self, x: &Tensor, ctx: &AttnCtx, cache: Option<&mut LayerCache>) -> Result<Tensor>;
    /// A fresh cache for this layer.
    fn new_cache(&self) -> LayerCache;
}

pub trait FeedForward {
    /// `x: (b, t, hidden)` → `(b, t, hidden)`, with the routing when the layer is MoE.
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

    /// `x: (b, t, hidden)` → the residual stream after this block.
    pub fn forward(&self, x: &Tensor, ctx: &AttnCtx, cache: Option<&mut LayerCache>) -> Result<(Tensor, Option<Routing>)> {
        let h = self.attn.forward(&self.input_layernorm.forward(x)?, ctx, cache)?;
        let x = (x + h)?;
        let (h, routing) = self.ffn.forward(&self.post_attention_layernorm.forward(&x)?)?;
        Ok(((x + h)?, routing))
    }
}
