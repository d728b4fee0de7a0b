//! The SwiGLU feed-forward of Llama/Qwen2 and of every DeepSeek expert:
//! `down(silu(gate x) * up x)`.

use crate::{Linear, Result};
use candle_core::Tensor;
use whale_core::Weights;

#[derive(Debug, Clone)]
pub struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Mlp {
    pub fn load(w: &Weights, hidden: usize, intermediate: usize, bias: bool) -> Result<Self> {
        Ok(Self {
            gate_proj: Linear::load(w, "gate_proj", hidden, intermediate, bias)?,
            up_proj: Linear::load(w, "up_proj", hidden, intermediate, bias)?,
            down_proj: Linear::load(w, "down_proj", intermediate, hidden, bias)?,
        })
    }

    /// `x: (..., hidden)` → `(..., hidden)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x)?.silu()?;
        let up = self.up_proj.forward(x)?;
        self.down_proj.forward(&(gate * up)?)
    }
}
