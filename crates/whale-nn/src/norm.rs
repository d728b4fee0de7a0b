//! RMSNorm: `x * rsqrt(mean(x²) + eps) * w`, computed in f32 whatever the model dtype
//! (as HF and the DeepSeek reference do).
//!
//! Gemma's variant stores `w` centred on zero and scales by `1 + w` (transformers'
//! `Gemma3RMSNorm`): the scale is formed in f32 at every forward, and the product is taken
//! in f32 before casting back, so a bf16 model keeps the precision of `1 + w` and training
//! updates of `w` are seen.

use crate::Result;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use crate::row_math::contiguous_slice;
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
            // candle's fused kernel has no backward pass; ours does (f32), the composed form
            // covers the rest.
            if x.dtype() == DType::F32 && self.weight.dtype() == DType::F32 {
                return rms_norm_tracked(x, &self.weight, self.eps);
            }
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
            rms_norm_tracked(&xf, &scale, self.eps)?
        } else {
            candle_nn::ops::rms_norm(&xf.contiguous()?, &scale, self.eps as f32)?
        };
        Ok(out.to_dtype(dtype)?)
    }
}

/// `x · rsqrt(mean(x²) + eps) · w` over the last dim, f32, as one op with its backward
/// (the composed form is seven ops forward and about twice that backward, each writing an
/// activation-sized tensor). With `r = rsqrt(mean(x²) + eps)` per row:
/// `dx = r·(g∘w) - x·r³/d·Σ(g∘w∘x)` and `dw = Σ_rows g∘x·r`.
fn rms_norm_tracked(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    if w.dims() != [d] {
        return Err(crate::WhaleError::InvalidInput(format!("RMSNorm weight {:?} does not match input width {d}", w.dims())));
    }
    Ok(x.contiguous()?.apply_op2(&w.contiguous()?, RmsNormOp { eps: eps as f32 })?)
}

struct RmsNormOp {
    eps: f32,
}

/// Rows per parallel task.
const NORM_ROWS_PER_TASK: usize = 32;

fn cpu_f32(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

impl RmsNormOp {
    fn rsqrt(&self, row: &[f32]) -> f32 {
        let ss: f32 = row.iter().map(|v| v * v).sum();
        1.0 / (ss / row.len() as f32 + self.eps).sqrt()
    }
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "whale-rms-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<f32>(s1, l1, "RMSNorm input")?;
        let w = contiguous_slice::<f32>(s2, l2, "RMSNorm weight")?;
        let d = w.len();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(d * NORM_ROWS_PER_TASK).zip(x.par_chunks(d * NORM_ROWS_PER_TASK)).for_each(|(ys, xs)| {
            for (yr, xr) in ys.chunks_mut(d).zip(xs.chunks(d)) {
                let r = self.rsqrt(xr);
                for ((o, &v), &wi) in yr.iter_mut().zip(xr).zip(w) {
                    *o = v * r * wi;
                }
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (xv, wv, gv) = (cpu_f32(x)?, cpu_f32(w)?, cpu_f32(grad)?);
        let d = wv.len();
        let mut dx = vec![0f32; xv.len()];
        // Each task's share of dw, summed in task order afterwards (a fixed order).
        let dws: Vec<Vec<f32>> = dx
            .par_chunks_mut(d * NORM_ROWS_PER_TASK)
            .zip(xv.par_chunks(d * NORM_ROWS_PER_TASK))
            .zip(gv.par_chunks(d * NORM_ROWS_PER_TASK))
            .map(|((dxs, xs), gs)| {
                let mut dw = vec![0f32; d];
                for ((dr, xr), gr) in dxs.chunks_mut(d).zip(xs.chunks(d)).zip(gs.chunks(d)) {
                    let r = self.rsqrt(xr);
                    let gwx: f32 = gr.iter().zip(&wv).zip(xr).map(|((g, w), x)| g * w * x).sum();
                    let k = gwx * r * r * r / d as f32;
                    for (j, o) in dr.iter_mut().enumerate() {
                        *o = r * gr[j] * wv[j] - xr[j] * k;
                        dw[j] += gr[j] * xr[j] * r;
                    }
                }
                dw
            })
            .collect();
        let mut dw = vec![0f32; d];
        for part in &dws {
            dw.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
        Ok((Some(Tensor::from_vec(dx, x.shape(), x.device())?), Some(Tensor::from_vec(dw, w.shape(), w.device())?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The fused op against the composed form, forward and both gradients.
    #[test]
    fn tracked_norm_matches_the_composed_form() {
        let dev = Device::Cpu;
        let x = Var::from_vec((0..6 * 40).map(|i| ((i * 31 % 97) as f32 / 97.0 - 0.5) * 3.0).collect(), (2, 3, 40), &dev).unwrap();
        let w = Var::from_vec((0..40).map(|i| 0.5 + (i as f32 * 0.3).cos()).collect(), 40, &dev).unwrap();
        let g = Tensor::from_vec((0..6 * 40).map(|i| (i as f32 * 0.11).sin()).collect(), (2, 3, 40), &dev).unwrap();
        let eps = 1e-6;
        let ours = rms_norm_tracked(x.as_tensor(), w.as_tensor(), eps).unwrap();
        let xf = x.as_tensor();
        let ms = xf.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let theirs = xf.broadcast_div(&(ms + eps).unwrap().sqrt().unwrap()).unwrap().broadcast_mul(w.as_tensor()).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let diff = |a: &Tensor, b: &Tensor| flat(a).iter().zip(flat(b)).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff(&ours, &theirs) < 1e-6);
        let ga = (&ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&theirs * &g).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in [("x", &x), ("w", &w)] {
            let d = diff(ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
            assert!(d < 1e-5, "d{name} differs by {d}");
        }
    }
}
