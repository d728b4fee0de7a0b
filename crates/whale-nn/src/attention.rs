//! Scaled dot-product attention with a causal mask, for multi-head and grouped-query
//! attention. Scores and softmax are computed in f32 whatever the model dtype (as
//! transformers' eager attention and the DeepSeek reference do).

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

/// `softmax(scores * scale + mask)` over the last dim, in f32; returns f32.
pub fn masked_softmax(scores: &Tensor, scale: f64, mask: Option<&Tensor>) -> Result<Tensor> {
    let s = (scores.to_dtype(DType::F32)? * scale)?;
    let s = match mask {
        Some(m) => s.broadcast_add(m)?,
        None => s,
    };
    Ok(candle_nn::ops::softmax_last_dim(&s)?)
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
