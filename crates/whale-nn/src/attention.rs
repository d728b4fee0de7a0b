//! Scaled dot-product attention with a causal mask, for multi-head and grouped-query
//! attention, over all earlier keys or a sliding window of them ([`Causal`]). Scores and
//! softmax are computed in f32 whatever the model dtype (as transformers' eager attention
//! and the DeepSeek reference do).

use crate::Result;
use candle_core::Tensor;

pub use crate::causal_softmax::{causal_softmax, Causal};

/// `softmax(scores * scale)` over the last dim, in f32, each query row seeing the keys
/// `causal` allows (all of them for `None`); returns f32.
pub fn masked_softmax(scores: &Tensor, scale: f64, causal: Option<Causal>) -> Result<Tensor> {
    let rows = scores.dims().iter().rev().nth(1).copied().unwrap_or(1);
    causal_softmax(scores, scale, causal, rows)
}

/// Softmax over the last dim. candle's fused kernel has no backward pass (its output is a
/// constant to autograd, so nothing before it would learn: a softmax router); tracked
/// tensors take the composed form, which has one.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.track_op() {
        return Ok(candle_nn::ops::softmax(x, candle_core::D::Minus1)?);
    }
    Ok(candle_nn::ops::softmax_last_dim(x)?)
}

/// `q: (b, h, t, dk)`, `k: (b, kv_h, L, dk)`, `v: (b, kv_h, L, dv)` with `h` a multiple of
/// `kv_h` → `(b, h, t, dv)`. Query head `i` reads kv head `i / (h / kv_h)` (HF `repeat_kv`).
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, causal: Option<Causal>) -> Result<Tensor> {
    let (b, h, t, dk) = q.dims4()?;
    let kv_h = k.dim(1)?;
    let dv = v.dim(3)?;
    let group = h / kv_h;
    // Fold the query heads that share a kv head into the row dimension: one GEMM per kv
    // head instead of copying K/V `group` times.
    let q = q.contiguous()?.reshape((b, kv_h, group * t, dk))?;
    let scores = q.matmul(&k.contiguous()?.t()?)?;
    let p = causal_softmax(&scores, scale, causal, t)?.to_dtype(v.dtype())?;
    let out = p.matmul(&v.contiguous()?)?;
    Ok(out.reshape((b, h, t, dv))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Gradients reach the queries and keys through the softmax (they did not while the fused
    /// kernel was used in training), and equal a finite-difference estimate.
    #[test]
    fn attention_gradients_reach_queries_and_keys() {
        use candle_core::Var;
        let dev = Device::Cpu;
        let val = |n: usize, seed: f32| -> Vec<f32> { (0..n).map(|i| ((i as f32 * 0.37 + seed).sin()) * 0.5).collect() };
        let shape = (1, 2, 3, 4);
        let q = Var::from_vec(val(24, 0.1), shape, &dev).unwrap();
        let k = Var::from_vec(val(24, 1.3), shape, &dev).unwrap();
        let v = Tensor::from_vec(val(24, 2.7), shape, &dev).unwrap();
        let loss = |q: &Tensor, k: &Tensor| -> Tensor {
            let o = attend(q, k, &v, 0.5, Some(Causal::new(0))).unwrap();
            (o.sqr().unwrap().sum_all().unwrap()).to_dtype(DType::F64).unwrap()
        };
        let grads = loss(q.as_tensor(), k.as_tensor()).backward().unwrap();
        for (name, var) in [("q", &q), ("k", &k)] {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            let g: Vec<f32> = g.flatten_all().unwrap().to_vec1().unwrap();
            assert!(g.iter().any(|x| x.abs() > 1e-4), "{name}: gradient is zero");
            // Central difference on one element of the last query row / key.
            let i = 21;
            let base: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let at = |d: f32| {
                let mut b = base.clone();
                b[i] += d;
                let t = Tensor::from_vec(b, shape, &dev).unwrap();
                let l = if name == "q" { loss(&t, k.as_tensor()) } else { loss(q.as_tensor(), &t) };
                l.to_scalar::<f64>().unwrap()
            };
            let fd = (at(1e-2) - at(-1e-2)) / 2e-2;
            assert!((fd - g[i] as f64).abs() < 1e-3 * fd.abs().max(1e-2), "{name}[{i}]: autograd {} vs finite difference {fd}", g[i]);
        }
    }
}
