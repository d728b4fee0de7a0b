//! Scaled dot-product attention with a causal mask, for multi-head and grouped-query
//! attention, over all earlier keys or a sliding window of them. Scores and softmax are
//! computed in f32 whatever the model dtype (as transformers' eager attention and the
//! DeepSeek reference do).

use crate::Result;
use candle_core::{DType, Device, Tensor};

/// Additive causal mask `(t, offset + t)`: query `i` (at position `offset + i`) may see keys
/// `0..=offset + i`. `None` for a single query, which sees everything cached.
pub fn causal_mask(t: usize, offset: usize, device: &Device) -> Result<Option<Tensor>> {
    if t <= 1 {
        return Ok(None);
    }
    let len = offset + t;
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..len).map(move |j| if j > offset + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Some(Tensor::from_vec(mask, (t, len), device)?))
}

/// The keys a sliding-window layer reads (Mistral, Gemma 2/3 local layers) and their mask.
#[derive(Debug, Clone)]
pub struct WindowMask {
    /// Keys before this position are outside every query's window: the layer reads keys
    /// `first_key..offset + t` only.
    pub first_key: usize,
    /// Additive mask `(t, offset + t - first_key)` over those keys; `None` when every query
    /// sees all of them.
    pub mask: Option<Tensor>,
}

/// Causal attention within a window of `window` positions for queries at positions
/// `offset..offset + t`: query `p` sees keys `p - window < j <= p` (transformers'
/// `sliding_window_overlay`: `kv_idx > q_idx - sliding_window`).
pub fn sliding_window_mask(t: usize, offset: usize, window: usize, device: &Device) -> Result<WindowMask> {
    let first_key = (offset + 1).saturating_sub(window);
    let len = offset + t - first_key;
    // The first query sees exactly `first_key..=offset`; later queries need the mask
    // (their own causal edge, and keys dropping out of their window).
    if t <= 1 {
        return Ok(WindowMask { first_key, mask: None });
    }
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            let q = offset + i;
            (first_key..offset + t).map(move |j| if j > q || j + window <= q { f32::NEG_INFINITY } else { 0.0 })
        })
        .collect();
    Ok(WindowMask { first_key, mask: Some(Tensor::from_vec(mask, (t, len), device)?) })
}

/// `softmax(scores * scale + mask)` over the last dim, in f32; returns f32.
pub fn masked_softmax(scores: &Tensor, scale: f64, mask: Option<&Tensor>) -> Result<Tensor> {
    let s = (scores.to_dtype(DType::F32)? * scale)?;
    let s = match mask {
        Some(m) => s.broadcast_add(m)?,
        None => s,
    };
    softmax_last_dim(&s)
}

/// Softmax over the last dim. candle's fused kernel has no backward pass (its output is a
/// constant to autograd, so nothing before it would learn: attention's queries and keys, a
/// softmax router); tracked tensors take the composed form, which has one.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.track_op() {
        return Ok(candle_nn::ops::softmax(x, candle_core::D::Minus1)?);
    }
    Ok(candle_nn::ops::softmax_last_dim(x)?)
}

/// `q: (b, h, t, dk)`, `k: (b, kv_h, L, dk)`, `v: (b, kv_h, L, dv)` with `h` a multiple of
/// `kv_h` → `(b, h, t, dv)`. Query head `i` reads kv head `i / (h / kv_h)` (HF `repeat_kv`).
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, mask: Option<&Tensor>) -> Result<Tensor> {
    let (b, h, t, dk) = q.dims4()?;
    let kv_h = k.dim(1)?;
    let dv = v.dim(3)?;
    let group = h / kv_h;
    // Fold the query heads that share a kv head into the row dimension: one GEMM per kv
    // head instead of copying K/V `group` times.
    let q = q.contiguous()?.reshape((b, kv_h, group * t, dk))?;
    let mask = match (mask, group) {
        (Some(m), g) if g > 1 => Some(Tensor::cat(&vec![m; g], 0)?),
        (m, _) => m.cloned(),
    };
    let scores = q.matmul(&k.contiguous()?.t()?)?;
    let p = masked_softmax(&scores, scale, mask.as_ref())?.to_dtype(v.dtype())?;
    let out = p.matmul(&v.contiguous()?)?;
    Ok(out.reshape((b, h, t, dv))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Visible (true) / masked (false) pattern of a window mask, by absolute key position.
    fn visible(t: usize, offset: usize, window: usize) -> Vec<Vec<bool>> {
        let m = sliding_window_mask(t, offset, window, &Device::Cpu).unwrap();
        let rows = match m.mask {
            Some(mask) => mask.to_vec2::<f32>().unwrap().into_iter().map(|r| r.iter().map(|v| *v == 0.0).collect()).collect(),
            None => vec![vec![true; offset + t - m.first_key]; t],
        };
        rows.into_iter().map(|r: Vec<bool>| [vec![false; m.first_key], r].concat()).collect()
    }

    #[test]
    fn window_mask_matches_definition() {
        // Brute force against the definition: key j visible to query p iff p - window < j <= p.
        for window in 1..6 {
            for offset in 0..9 {
                for t in 1..7 {
                    let got = visible(t, offset, window);
                    for (i, row) in got.iter().enumerate() {
                        let q = offset + i;
                        let want: Vec<bool> = (0..offset + t).map(|j| j <= q && j + window > q).collect();
                        assert_eq!(row, &want, "window {window} offset {offset} t {t} query {i}");
                    }
                }
            }
        }
    }

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
        let mask = causal_mask(3, 0, &dev).unwrap();
        let loss = |q: &Tensor, k: &Tensor| -> Tensor {
            let o = attend(q, k, &v, 0.5, mask.as_ref()).unwrap();
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

    #[test]
    fn window_mask_skips_keys_out_of_every_window() {
        let m = sliding_window_mask(1, 100, 4, &Device::Cpu).unwrap();
        assert_eq!(m.first_key, 97);
        assert!(m.mask.is_none());
        let m = sliding_window_mask(3, 10, 4, &Device::Cpu).unwrap();
        assert_eq!((m.first_key, m.mask.unwrap().dims2().unwrap()), (7, (3, 6)));
    }
}
