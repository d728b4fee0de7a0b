//! Mixed precision through whale-nn's per-thread GEMM hook: the model code stays the one
//! whale-model path, and only the dense linear GEMMs change.
//!
//! - `f32`: no hook.
//! - `bf16`: inputs and weights cast to bf16 for the GEMM, the product cast back to f32;
//!   master weights, gradients, norms, softmax and the optimizer stay f32.
//! - `fp8` (simulated on the CPU, V3 §3.3): activations quantize-dequantized to E4M3 in 1x128
//!   tiles and weights in 128x128 blocks (online absmax scales, whale-quant's `fp8`), then
//!   multiplied in f32 (exact accumulation, the limit of V3's promotion to FP32 every 128
//!   K-elements). The output head stays f32; embedding, MoE gate, norms and the attention
//!   core are not linear layers and never reach the hook.
//!
//! The FP8 rounding of the forward operands is a straight-through estimator,
//! `x + (qdq(x) - x).detach()`: the forward sees FP8 values and the gradient reaches the f32
//! master copy. The backward GEMMs (Dgrad `dY·W`, Wgrad `dYᵀ·X`) then take the FP8 weights
//! and activations, and the output gradient `dY` is quantize-dequantized too, in 1x128 tiles
//! along its channels (an identity op whose backward rounds). Deviation from V3: one `dY`
//! quantization serves both backward GEMMs, and Wgrad's activations keep the forward's
//! 1x128 tiles instead of being re-quantized as 128x1.

use std::collections::HashSet;
use std::rc::Rc;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, TensorId};
use whale_nn::linear::GemmHook;
use whale_quant::fp8;

use crate::config::Precision;

pub struct Bf16Gemm;

impl GemmHook for Bf16Gemm {
    fn gemm(&self, x: &Tensor, w: &Tensor) -> whale_core::Result<Option<Tensor>> {
        let y = x
            .to_dtype(DType::BF16)?
            .matmul(&w.to_dtype(DType::BF16)?.t()?)?;
        Ok(Some(y.to_dtype(x.dtype())?))
    }
}

pub struct Fp8Gemm {
    /// Weights kept out of FP8 (the output head), by tensor id.
    pub keep_precise: HashSet<TensorId>,
}

/// `t` quantize-dequantized (`weight`: 128x128 blocks, else 1x128 tiles), with a straight
/// through gradient.
fn qdq_ste(t: &Tensor, weight: bool) -> candle_core::Result<Tensor> {
    let (rows, cols) = t.dims2()?;
    let mut v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    if weight {
        fp8::weight_qdq(&mut v, rows, cols);
    } else {
        fp8::activation_qdq(&mut v, rows, cols);
    }
    let q = Tensor::from_vec(v, (rows, cols), t.device())?.to_dtype(t.dtype())?;
    t + (q - t.detach())?
}

/// Identity in the forward; in the backward, the incoming gradient `(rows, cols)` is
/// quantize-dequantized to E4M3 in 1x128 tiles (the FP8 `dY` of V3's backward GEMMs).
struct GradQdq;

impl CustomOp1 for GradQdq {
    fn name(&self) -> &'static str {
        "fp8-grad-qdq"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(v) = storage else {
            candle_core::bail!("fp8-grad-qdq: expected an f32 tensor")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("fp8-grad-qdq: input must be contiguous")
        };
        Ok((
            CpuStorage::F32(v[start..end].to_vec()),
            layout.shape().clone(),
        ))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (rows, cols) = grad.dims2()?;
        let mut g = grad.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        fp8::activation_qdq(&mut g, rows, cols);
        Ok(Some(
            Tensor::from_vec(g, (rows, cols), grad.device())?.to_dtype(grad.dtype())?,
        ))
    }
}

impl GemmHook for Fp8Gemm {
    fn gemm(&self, x: &Tensor, w: &Tensor) -> whale_core::Result<Option<Tensor>> {
        if self.keep_precise.contains(&w.id()) {
            return Ok(None);
        }
        let xq = qdq_ste(x, false)?;
        let wq = qdq_ste(w, true)?;
        let y = xq
            .to_dtype(DType::F32)?
            .matmul(&wq.to_dtype(DType::F32)?.t()?)?
            .contiguous()?;
        Ok(Some(y.apply_op1(GradQdq)?.to_dtype(x.dtype())?))
    }
}

/// The hook of `p` (None for f32); `head` is the output head's weight.
pub fn hook_for(p: Precision, head: Option<&Tensor>) -> Option<Rc<dyn GemmHook>> {
    match p {
        Precision::F32 => None,
        Precision::Bf16 => Some(Rc::new(Bf16Gemm)),
        Precision::Fp8 => Some(Rc::new(Fp8Gemm {
            keep_precise: head.map(|h| h.id()).into_iter().collect(),
        })),
    }
}

/// Runs `f` under the hook for `p`.
pub fn with_precision<R>(hook: &Option<Rc<dyn GemmHook>>, f: impl FnOnce() -> R) -> R {
    match hook {
        Some(h) => whale_nn::linear::with_gemm_hook(h.clone(), f),
        None => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use whale_nn::Linear;

    fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn data(rows: usize, cols: usize, k: f32) -> Vec<f32> {
        (0..rows * cols).map(|i| (i as f32 * k).sin()).collect()
    }

    #[test]
    fn fp8_linear_is_close_to_f32_and_passes_gradients() {
        let dev = Device::Cpu;
        let w = Var::from_vec(data(8, 256, 0.31), (8, 256), &dev).unwrap();
        let x = Tensor::from_vec(data(4, 256, 0.17), (4, 256), &dev).unwrap();
        let lin = Linear::from_tensors(w.as_tensor().clone(), None);
        let exact = lin.forward(&x).unwrap();
        let hook = hook_for(Precision::Fp8, None);
        let approx = with_precision(&hook, || lin.forward(&x)).unwrap();
        // Exactly the f32 GEMM of the E4M3-rounded operands.
        let mut xq = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut wq = w
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        fp8::activation_qdq(&mut xq, 4, 256);
        fp8::weight_qdq(&mut wq, 8, 256);
        let xq = Tensor::from_vec(xq, (4, 256), &dev).unwrap();
        let wq = Tensor::from_vec(wq, (8, 256), &dev).unwrap();
        let reference = xq.matmul(&wq.t().unwrap()).unwrap();
        let d = max_abs(&(&reference - &approx).unwrap());
        assert!(d < 1e-5, "{d}");
        // Each product carries at most ~2·2^-4 relative rounding: the error is bounded by
        // that share of Σ|x||w|, and not zero.
        let bound = x
            .abs()
            .unwrap()
            .matmul(&w.as_tensor().abs().unwrap().t().unwrap())
            .unwrap();
        let err = (&exact - &approx).unwrap().abs().unwrap();
        let excess = (err.clone() - (bound * 0.125).unwrap())
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(excess < 0.0, "error over the bound by {excess}");
        assert!(err.max_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
        // Straight-through: the weight gradient reaches the f32 master weight; it is the
        // FP8 activations summed over rows (Wgrad sees the quantized operand).
        let g = approx.sum_all().unwrap().backward().unwrap();
        let gw = g.get(w.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        let expect = xq.sum(0).unwrap().to_vec1::<f32>().unwrap();
        for row in gw {
            for (a, b) in row.iter().zip(&expect) {
                assert!((a - b).abs() < 1e-4);
            }
        }
        // The output gradient is rounded to E4M3 before the backward GEMMs: dX = qdq(dY)·W_q.
        let c = Tensor::from_vec(data(4, 8, 0.77), (4, 8), &dev).unwrap();
        let xv = Var::from_tensor(&x).unwrap();
        let y = with_precision(&hook, || lin.forward(xv.as_tensor())).unwrap();
        let g = (y * &c).unwrap().sum_all().unwrap().backward().unwrap();
        let gx = g.get(xv.as_tensor()).unwrap();
        let mut cq = c.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        fp8::activation_qdq(&mut cq, 4, 8);
        let cq = Tensor::from_vec(cq, (4, 8), &dev).unwrap();
        assert!(max_abs(&(&cq - &c).unwrap()) > 0.0);
        let want = cq.matmul(&wq).unwrap();
        assert!(max_abs(&(gx - want).unwrap()) < 1e-5);
        // The head stays exact.
        let keep = hook_for(Precision::Fp8, Some(w.as_tensor()));
        let same = with_precision(&keep, || lin.forward(&x)).unwrap();
        assert_eq!(
            same.to_vec2::<f32>().unwrap(),
            exact.to_vec2::<f32>().unwrap()
        );
    }

    #[test]
    fn bf16_linear_rounds_like_bf16() {
        let dev = Device::Cpu;
        let w = Tensor::from_vec(data(8, 64, 0.31), (8, 64), &dev).unwrap();
        let x = Tensor::from_vec(data(2, 64, 0.17), (2, 64), &dev).unwrap();
        let lin = Linear::from_tensors(w, None);
        let exact = lin.forward(&x).unwrap();
        let approx = with_precision(&hook_for(Precision::Bf16, None), || lin.forward(&x)).unwrap();
        assert_eq!(approx.dtype(), DType::F32);
        let err = max_abs(&(&exact - &approx).unwrap());
        assert!(err > 0.0 && err < 0.1, "bf16 error {err}");
    }
}
