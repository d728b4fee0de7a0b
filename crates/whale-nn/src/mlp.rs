//! The gated feed-forward `down(act(gate x) * up x)`: SwiGLU (`act` = SiLU) in Llama/Qwen2
//! and every DeepSeek expert, GeGLU with the tanh approximation of GELU in Gemma 3
//! (`gelu_pytorch_tanh`).

use crate::{Linear, Result};
use candle_core::Tensor;
use whale_core::Weights;

/// The activation applied to the gate projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x · sigmoid(x)` (HF `silu`).
    Silu,
    /// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))` (HF `gelu_pytorch_tanh`).
    GeluTanh,
}

#[derive(Debug, Clone)]
pub struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: Activation,
}

impl Mlp {
    /// A SwiGLU MLP.
    pub fn load(w: &Weights, hidden: usize, intermediate: usize, bias: bool) -> Result<Self> {
        Self::load_with(w, hidden, intermediate, bias, Activation::Silu)
    }

    pub fn load_with(w: &Weights, hidden: usize, intermediate: usize, bias: bool, act: Activation) -> Result<Self> {
        Ok(Self {
            gate_proj: Linear::load(w, "gate_proj", hidden, intermediate, bias)?,
            up_proj: Linear::load(w, "up_proj", hidden, intermediate, bias)?,
            down_proj: Linear::load(w, "down_proj", intermediate, hidden, bias)?,
            act,
        })
    }

    /// `x: (..., hidden)` → `(..., hidden)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x)?;
        let up = self.up_proj.forward(x)?;
        self.down_proj.forward(&crate::glu::gated(&gate, &up, self.act)?)
    }
}
