//! Gemma 3's feed-forward: the GeGLU MLP (`gelu_pytorch_tanh`) followed by its post-norm
//! (HF `post_feedforward_layernorm`, applied before the residual add).

use crate::block::FeedForward;
use candle_core::Tensor;
use whale_core::{Result, Weights};
use whale_nn::moe::Routing;
use whale_nn::{Activation, Mlp, RmsNorm};

pub struct Gemma3Mlp {
    mlp: Mlp,
    post_norm: RmsNorm,
}

impl Gemma3Mlp {
    /// `w` is the layer's prefix (`model.layers.{i}`).
    pub fn new(w: &Weights, hidden: usize, intermediate: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            mlp: Mlp::load_with(&w.pp("mlp"), hidden, intermediate, false, Activation::GeluTanh)?,
            post_norm: RmsNorm::load_one_centered(w, "post_feedforward_layernorm", hidden, eps)?,
        })
    }
}

impl FeedForward for Gemma3Mlp {
    fn forward(&self, x: &Tensor) -> Result<(Tensor, Option<Routing>)> {
        Ok((self.post_norm.forward(&self.mlp.forward(x)?)?, None))
    }
}
