//! Mixed precision through whale-nn's per-thread GEMM hook: the model code stays the one
//! whale-model path, and only the dense linear GEMMs change.
//!
//! - `f32`: no hook.
//! - `bf16`: inputs and weights rounded to bf16 for the GEMM, the product rounded to bf16,
//!   and in the backward the output and input gradients rounded to bf16 (autocast's BF16
//!   GEMMs, simulated over f32 GEMMs with f32 accumulation); master weights, gradient
//!   accumulation, norms, softmax and the optimizer stay f32.
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
use whale_nn::row_math::contiguous_slice;
use whale_quant::fp8;

use crate::config::Precision;

/// How a precision rounds one GEMM operand (values stay f32: the GEMM then multiplies the
/// rounded values with f32 accumulation, which is what BF16 and FP8 tensor cores do).
#[derive(Debug, Clone, Copy)]
enum Rounding {
    /// To the nearest bf16 (ties to even).
    Bf16,
    /// E4M3 with 1x128 tiles along the rows (activations, output gradients).
    Fp8Tiles,
    /// E4M3 with 128x128 blocks (weights).
    Fp8Blocks,
}

/// `t` rounded, as a new untracked f32 tensor.
fn rounded(t: &Tensor, r: Rounding) -> candle_core::Result<Tensor> {
    let t = t.detach().to_dtype(DType::F32)?;
    if let Rounding::Bf16 = r {
        return t.to_dtype(DType::BF16)?.to_dtype(DType::F32);
    }
    let (rows, cols) = t.dims2()?;
    let mut v = t.flatten_all()?.to_vec1::<f32>()?;
    match r {
        Rounding::Fp8Blocks => fp8::weight_qdq(&mut v, rows, cols),
        _ => fp8::activation_qdq(&mut v, rows, cols),
    }
    Tensor::from_vec(v, (rows, cols), t.device())
}

/// `t` rounded in the forward, with a straight-through gradient:
/// `t + (round(t) - t).detach()`, so the gradient reaches the f32 master copy.
fn round_ste(t: &Tensor, r: Rounding) -> candle_core::Result<Tensor> {
    let q = rounded(t, r)?.to_dtype(t.dtype())?;
    t + (q - t.detach())?
}

/// Identity in the forward; in the backward, the incoming gradient is rounded (the low
/// precision gradient operand of the backward GEMMs, or their low-precision output).
struct GradRound(Rounding);

impl CustomOp1 for GradRound {
    fn name(&self) -> &'static str {
        "grad-round"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let v = contiguous_slice::<f32>(storage, layout, "grad-round input")?;
        Ok((CpuStorage::F32(v.to_vec()), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(rounded(grad, self.0)?.to_dtype(grad.dtype())?))
    }
}

fn grad_round(t: &Tensor, r: Rounding) -> candle_core::Result<Tensor> {
    t.contiguous()?.apply_op1(GradRound(r))
}

/// BF16 GEMMs as autocast runs them: operands rounded to bf16, f32 accumulation, the product
/// rounded to bf16; in the backward the output gradient and both input gradients (Dgrad and
/// Wgrad products) rounded to bf16 too. Simulated over f32 GEMMs (candle's CPU bf16 GEMM is
/// about twice as slow as its f32 one and rounds the same way).
pub struct Bf16Gemm;

impl GemmHook for Bf16Gemm {
    fn gemm(&self, x: &Tensor, w: &Tensor) -> whale_core::Result<Option<Tensor>> {
        let b = Rounding::Bf16;
        let xr = round_ste(&grad_round(&x.to_dtype(DType::F32)?, b)?, b)?;
        let wr = round_ste(&grad_round(&w.to_dtype(DType::F32)?, b)?, b)?;
        let y = xr.matmul(&wr.t()?)?;
        Ok(Some(grad_round(&round_ste(&y, b)?, b)?.to_dtype(x.dtype())?))
    }
}

pub struct Fp8Gemm {
    /// Weights kept out of FP8 (the output head), by tensor id.
    pub keep_precise: HashSet<TensorId>,
}

impl GemmHook for Fp8Gemm {
    fn gemm(&self, x: &Tensor, w: &Tensor) -> whale_core::Result<Option<Tensor>> {
        if self.keep_precise.contains(&w.id()) {
            return Ok(None);
        }
        let xq = round_ste(x, Rounding::Fp8Tiles)?;
        let wq = round_ste(w, Rounding::Fp8Blocks)?;
        let y = xq.to_dtype(DType::F32)?.matmul(&wq.to_dtype(DType::F32)?.t()?)?;
        Ok(Some(grad_round(&y, Rounding::Fp8Tiles)?.to_dtype(x.dtype())?))
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
        let w = Var::from_vec(data(8, 64, 0.31), (8, 64), &dev).unwrap();
        let x = Var::from_vec(data(2, 64, 0.17), (2, 64), &dev).unwrap();
        let lin = Linear::from_tensors(w.as_tensor().clone(), None);
        let exact = lin.forward(x.as_tensor()).unwrap();
        let hook = hook_for(Precision::Bf16, None);
        let approx = with_precision(&hook, || lin.forward(x.as_tensor())).unwrap();
        assert_eq!(approx.dtype(), DType::F32);
        let err = max_abs(&(&exact - &approx).unwrap());
        assert!(err > 0.0 && err < 0.1, "bf16 error {err}");
        let bf = |t: &Tensor| t.to_dtype(DType::BF16).unwrap();
        let back = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        // Exactly the f32 GEMM of the bf16 operands, rounded to bf16 ...
        let want = back(&bf(&back(&bf(x.as_tensor())).matmul(&back(&bf(w.as_tensor())).t().unwrap()).unwrap()));
        assert_eq!(approx.to_vec2::<f32>().unwrap(), want.to_vec2::<f32>().unwrap());
        // ... which candle's own bf16 GEMM matches to within one bf16 rounding.
        let native = back(&bf(x.as_tensor()).matmul(&bf(w.as_tensor()).t().unwrap()).unwrap());
        let ulp = max_abs(&(&native - &want).unwrap()) / max_abs(&want);
        assert!(ulp <= 2f32.powi(-8), "{ulp}");
        // The backward rounds the output gradient and both input gradients to bf16:
        // dX = bf16(bf16(dY)·bf16(W)), dW = bf16(bf16(dY)ᵀ·bf16(X)).
        let c = Tensor::from_vec(data(2, 8, 0.77), (2, 8), &dev).unwrap();
        let g = (approx * &c).unwrap().sum_all().unwrap().backward().unwrap();
        let cb = back(&bf(&c));
        let dx = back(&bf(&cb.matmul(&back(&bf(w.as_tensor()))).unwrap()));
        let dw = back(&bf(&cb.t().unwrap().matmul(&back(&bf(x.as_tensor()))).unwrap()));
        assert_eq!(g.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap(), dx.to_vec2::<f32>().unwrap());
        assert_eq!(g.get(w.as_tensor()).unwrap().to_vec2::<f32>().unwrap(), dw.to_vec2::<f32>().unwrap());
    }
}
