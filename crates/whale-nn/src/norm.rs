//! RMSNorm: `x * rsqrt(mean(x²) + eps) * w`, computed in f32 whatever the model dtype
//! (as HF and the DeepSeek reference do).
//!
//! Gemma's variant stores `w` centred on zero and scales by `1 + w` (transformers'
//! `Gemma3RMSNorm`): the scale is formed in f32 at every forward, and the product is taken
//! in f32 before casting back, so a bf16 model keeps the precision of `1 + w` and training
//! updates of `w` are seen.

use crate::Result;
use candle_core::{DType, Tensor, D};
use whale_core::Weights;

#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
    /// The scale is `1 + weight` (Gemma) rather than `weight`.
    one_centered: bool,
}

impl RmsNorm {
    pub fn load(w: &Weights, name: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self { weight: w.pp(name).get_ones(&[dim], "weight")?, eps, one_centered: false })
    }

    /// Gemma's norm: the checkpoint holds `w`, the scale is `1 + w` (zeros when created for
    /// training, i.e. an identity scale).
    pub fn load_one_centered(w: &Weights, name: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(Self { weight: w.pp(name).get_zeros(&[dim], "weight")?, eps, one_centered: true })
    }

    /// `x: (..., dim)` → same shape.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.one_centered {
            return self.forward_one_centered(x);
        }
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

    /// `(x / rms(x)) * (1 + w)`, all in f32, cast back to `x`'s dtype at the end.
    fn forward_one_centered(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let scale = (self.weight.to_dtype(DType::F32)? + 1.0)?;
        let xf = x.to_dtype(DType::F32)?;
        let out = if xf.track_op() || scale.track_op() {
            let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
            xf.broadcast_div(&(ms + self.eps)?.sqrt()?)?.broadcast_mul(&scale)?
        } else {
            candle_nn::ops::rms_norm(&xf.contiguous()?, &scale, self.eps as f32)?
        };
        Ok(out.to_dtype(dtype)?)
    }
}
