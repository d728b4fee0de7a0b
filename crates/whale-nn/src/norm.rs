//! RMSNorm: `x * rsqrt(mean(x²) + eps) * w`, computed in f32 whatever the model dtype
//! (as HF and the DeepSeek reference do).

use crate::Result;
use candle_core::{DType, Tensor, D};
use whale_core::Weights;

#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn load(w: &Weights, name: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self { weight: w.pp(name).get_ones(&[dim], "weight")?, eps })
    }

    /// `x: (..., dim)` → same shape.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.track_op() || self.weight.track_op() {
            // candle's fused kernel has no backward pass; the composed form does.
            let dtype = x.dtype();
            let xf = x.to_dtype(DType::F32)?;
            let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
            let normed = xf.broadcast_div(&(ms + self.eps)?.sqrt()?)?.to_dtype(dtype)?;
            return Ok(normed.broadcast_mul(&self.weight)?);
        }
        Ok(candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps as f32)?)
    }
}
