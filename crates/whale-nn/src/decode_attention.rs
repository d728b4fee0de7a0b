//! Decode attention for a batch of sequences with one new query token each, fused into one
//! kernel that reads every sequence's KV cache where it lies.
//!
//! Batched decoding (the engine's continuous batching, GRPO rollouts) runs the linear layers
//! over all sequences at once, but attention is per sequence. Composed from tensor ops it
//! costs some twenty small ops per sequence and layer plus a copy of each cache to make it
//! contiguous; on a small model that overhead is most of a decode step, and batching 32
//! sequences bought less than 1.5x. Here each (sequence, head) is one work item on the
//! matmul threads: scores against the cached keys, an f32 softmax, the weighted sum of the
//! values, and nothing is copied.
//!
//! A sequence's arithmetic does not depend on what else is in the batch (each item sums in
//! a fixed order), so batched and single decoding give bit-identical outputs.

use crate::{Result, WhaleError};
use candle_core::{DType, Device, Storage, Tensor};
use rayon::prelude::*;

/// Whether the fused kernels can run on tensors of this dtype and device.
pub fn supported(dtype: DType, device: &Device) -> bool {
    dtype == DType::F32 && device.is_cpu()
}

/// A rank-3 or rank-4 f32 CPU tensor's elements in place, with its strides.
struct View<'a> {
    data: &'a [f32],
    offset: usize,
    stride: Vec<usize>,
    dims: Vec<usize>,
}

fn view<'a>(storage: &'a Storage, layout: &candle_core::Layout, what: &str) -> Result<View<'a>> {
    let Storage::Cpu(cpu) = storage else {
        return Err(WhaleError::InvalidInput(format!("decode attention: {what} is not on the CPU")));
    };
    let data = cpu.as_slice::<f32>().map_err(|_| WhaleError::InvalidInput(format!("decode attention: {what} is not f32")))?;
    if layout.stride().last() != Some(&1) {
        return Err(WhaleError::InvalidInput(format!("decode attention: {what} rows are not contiguous")));
    }
    Ok(View { data, offset: layout.start_offset(), stride: layout.stride().to_vec(), dims: layout.dims().to_vec() })
}

/// `Σ a[i]·b[i]` with eight partial sums (vectorizes without fast-math; fixed order).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Replaces `scores` by `exp(score − max)` and returns their sum (the softmax's divisor).
#[inline]
fn exp_in_place(scores: &mut [f32]) -> f32 {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    sum
}

fn contiguous_f32(t: &Tensor, what: &str) -> Result<Vec<f32>> {
    if t.dtype() != DType::F32 {
        return Err(WhaleError::InvalidInput(format!("decode attention: {what} is {:?}, expected f32", t.dtype())));
    }
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// One sequence's dense cache for [`dense`]: keys `(1, kv_heads, L, d)` and values
/// `(1, kv_heads, L, dv)` (views into a larger buffer are fine), and the first key position
/// the query may see (0, or the start of a sliding window).
pub struct DenseKv<'a> {
    pub k: &'a Tensor,
    pub v: &'a Tensor,
    pub first_key: usize,
}

/// Grouped-query decode attention: `q: (n, h, d)` (sequence i's roped query), `caches[i]`
/// its cache with this step's key and value already appended → `(n, h · dv)`. Query head
/// `j` reads kv head `j / (h / kv_heads)`, as [`crate::attention::attend`] does.
pub fn dense(q: &Tensor, caches: &[DenseKv<'_>], scale: f64) -> Result<Tensor> {
    let (n, h, d) = q.dims3()?;
    if caches.len() != n {
        return Err(WhaleError::InvalidInput(format!("decode attention: {n} queries but {} caches", caches.len())));
    }
    let qv = contiguous_f32(q, "the query")?;
    let guards: Vec<_> = caches.iter().map(|c| (c.k.storage_and_layout(), c.v.storage_and_layout())).collect();
    let mut views = Vec::with_capacity(n);
    for (c, ((ks, kl), (vs, vl))) in caches.iter().zip(&guards) {
        let (k, v) = (view(ks, kl, "the key cache")?, view(vs, vl, "the value cache")?);
        if k.dims.len() != 4 || v.dims.len() != 4 || k.dims[3] != d || k.dims[1] != v.dims[1] || k.dims[2] != v.dims[2] {
            return Err(WhaleError::InvalidInput(format!(
                "decode attention: key cache {:?} / value cache {:?} do not fit queries of width {d}",
                k.dims, v.dims
            )));
        }
        if h % k.dims[1] != 0 || c.first_key >= k.dims[2] {
            return Err(WhaleError::InvalidInput(format!(
                "decode attention: {h} query heads over {} kv heads, first key {} of {}",
                k.dims[1], c.first_key, k.dims[2]
            )));
        }
        views.push((k, v, c.first_key));
    }
    let dv = views.first().map_or(d, |(_, v, _)| v.dims[3]);
    if views.iter().any(|(_, v, _)| v.dims[3] != dv) {
        return Err(WhaleError::InvalidInput("decode attention: value widths differ between sequences".into()));
    }
    let scale = scale as f32;
    let mut out = vec![0f32; n * h * dv];
    whale_quant::install(|| {
        out.par_chunks_mut(dv).enumerate().for_each(|(item, o)| {
            let (i, j) = (item / h, item % h);
            let (k, v, first) = &views[i];
            let g = j / (h / k.dims[1]);
            let q = &qv[item * d..(item + 1) * d];
            let len = k.dims[2];
            let kbase = k.offset + g * k.stride[1];
            let vbase = v.offset + g * v.stride[1];
            let mut p: Vec<f32> = (*first..len)
                .map(|t| scale * dot(q, &k.data[kbase + t * k.stride[2]..][..d]))
                .collect();
            let sum = exp_in_place(&mut p);
            for (w, t) in p.iter().zip(*first..len) {
                let row = &v.data[vbase + t * v.stride[2]..][..dv];
                for (oc, x) in o.iter_mut().zip(row) {
                    *oc += w * x;
                }
            }
            let inv = 1.0 / sum;
            o.iter_mut().for_each(|x| *x *= inv);
        });
    });
    Ok(Tensor::from_vec(out, (n, h * dv), q.device())?)
}

/// MLA decode attention in latent space (the absorbed form, V3 §2.1.1): `q_lat: (n, h, r)`
/// (queries already multiplied by W_UK), `q_pe: (n, h, p)` (roped), `latents[i]`: sequence
/// i's cache `(1, L, r + p)` = `[c_kv | k_pe]` with this step's entry appended →
/// `(n, h, r)`: the softmax-weighted sum of `c_kv`, still to be multiplied by W_UV.
pub fn latent(q_lat: &Tensor, q_pe: &Tensor, latents: &[&Tensor], scale: f64) -> Result<Tensor> {
    let (n, h, r) = q_lat.dims3()?;
    let p = q_pe.dim(2)?;
    if q_pe.dims3()? != (n, h, p) || latents.len() != n {
        return Err(WhaleError::InvalidInput(format!(
            "decode attention: latent queries {:?}, rope queries {:?}, {} caches",
            q_lat.dims(),
            q_pe.dims(),
            latents.len()
        )));
    }
    let (ql, qp) = (contiguous_f32(q_lat, "the latent query")?, contiguous_f32(q_pe, "the rope query")?);
    let guards: Vec<_> = latents.iter().map(|t| t.storage_and_layout()).collect();
    let mut views = Vec::with_capacity(n);
    for (s, l) in &guards {
        let v = view(s, l, "the latent cache")?;
        if v.dims.len() != 3 || v.dims[2] != r + p || v.dims[1] == 0 {
            return Err(WhaleError::InvalidInput(format!("decode attention: latent cache {:?}, expected (1, L, {})", v.dims, r + p)));
        }
        views.push(v);
    }
    let scale = scale as f32;
    let mut out = vec![0f32; n * h * r];
    whale_quant::install(|| {
        out.par_chunks_mut(r).enumerate().for_each(|(item, o)| {
            let lat = &views[item / h];
            let (qa, qb) = (&ql[item * r..(item + 1) * r], &qp[item * p..(item + 1) * p]);
            let len = lat.dims[1];
            let row = |t: usize| &lat.data[lat.offset + t * lat.stride[1]..][..r + p];
            let mut w: Vec<f32> = (0..len)
                .map(|t| {
                    let e = row(t);
                    scale * (dot(qa, &e[..r]) + dot(qb, &e[r..]))
                })
                .collect();
            let sum = exp_in_place(&mut w);
            for (wt, t) in w.iter().zip(0..len) {
                for (oc, x) in o.iter_mut().zip(&row(t)[..r]) {
                    *oc += wt * x;
                }
            }
            let inv = 1.0 / sum;
            o.iter_mut().for_each(|x| *x *= inv);
        });
    });
    Ok(Tensor::from_vec(out, (n, h, r), q_lat.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::{attend, masked_softmax};
    use crate::kv_cache::SeqBuffer;

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Against the composed attention, per sequence, with caches that are views into grown
    /// buffers (strided, as the engine's are), GQA groups of 3 and a sliding window.
    #[test]
    fn dense_matches_composed_attention_over_strided_caches() {
        let (h, kvh, d, dv) = (6, 2, 8, 12);
        let lens = [1usize, 5, 19, 40];
        let q = rand(&[lens.len(), h, d], 1);
        let mut bufs = Vec::new();
        for (i, &l) in lens.iter().enumerate() {
            let (mut kb, mut vb) = (SeqBuffer::new(2), SeqBuffer::new(2));
            // Appended in pieces so the buffers grow and the views are strided.
            let (k, v) = (rand(&[1, kvh, l, d], 10 + i as u64), rand(&[1, kvh, l, dv], 20 + i as u64));
            let mut at = 0;
            while at < l {
                let step = (l - at).min(7);
                kb.append(&k.narrow(2, at, step).unwrap()).unwrap();
                vb.append(&v.narrow(2, at, step).unwrap()).unwrap();
                at += step;
            }
            bufs.push((kb.current().unwrap().unwrap(), vb.current().unwrap().unwrap(), k, v));
        }
        let firsts = [0usize, 0, 4, 33];
        let caches: Vec<DenseKv<'_>> =
            bufs.iter().zip(firsts).map(|((k, v, _, _), first_key)| DenseKv { k, v, first_key }).collect();
        let fused = dense(&q, &caches, 0.3).unwrap();
        assert_eq!(fused.dims(), &[lens.len(), h * dv]);
        for (i, (_, _, k, v)) in bufs.iter().enumerate() {
            let l = lens[i];
            let f = firsts[i];
            let qi = q.narrow(0, i, 1).unwrap().reshape((1, h, 1, d)).unwrap();
            let want = attend(&qi, &k.narrow(2, f, l - f).unwrap(), &v.narrow(2, f, l - f).unwrap(), 0.3, None).unwrap();
            let want = want.reshape((1, h * dv)).unwrap();
            let d = max_diff(&fused.narrow(0, i, 1).unwrap(), &want);
            assert!(d < 1e-5, "sequence {i}: max diff {d}");
        }
        // A sequence's output is the same alone as in the batch, bit for bit.
        let alone = dense(&q.narrow(0, 2, 1).unwrap(), &caches[2..3], 0.3).unwrap();
        assert_eq!(max_diff(&alone, &fused.narrow(0, 2, 1).unwrap()), 0.0);
        // Mismatched inputs are errors, not panics.
        assert!(dense(&q, &caches[..2], 0.3).is_err());
        let bad = [DenseKv { k: &bufs[0].0, v: &bufs[0].1, first_key: 5 }];
        assert!(dense(&q.narrow(0, 0, 1).unwrap(), &bad, 0.3).is_err());
    }

    #[test]
    fn latent_matches_the_composed_absorbed_scores() {
        let (h, r, p) = (4, 16, 6);
        let lens = [3usize, 11];
        let q_lat = rand(&[2, h, r], 3);
        let q_pe = rand(&[2, h, p], 4);
        let mut bufs = Vec::new();
        for (i, &l) in lens.iter().enumerate() {
            let mut b = SeqBuffer::new(1);
            let lat = rand(&[1, l, r + p], 30 + i as u64);
            b.append(&lat.narrow(1, 0, 1).unwrap()).unwrap();
            if l > 1 {
                b.append(&lat.narrow(1, 1, l - 1).unwrap()).unwrap();
            }
            bufs.push((b.current().unwrap().unwrap(), lat));
        }
        let refs: Vec<&Tensor> = bufs.iter().map(|b| &b.0).collect();
        let fused = latent(&q_lat, &q_pe, &refs, 0.25).unwrap();
        for (i, (_, lat)) in bufs.iter().enumerate() {
            let lat = lat.squeeze(0).unwrap();
            let (c, kp) = (lat.narrow(1, 0, r).unwrap(), lat.narrow(1, r, p).unwrap());
            let scores = (q_lat.get(i).unwrap().matmul(&c.t().unwrap()).unwrap()
                + q_pe.get(i).unwrap().matmul(&kp.t().unwrap()).unwrap())
            .unwrap();
            let w = masked_softmax(&scores, 0.25, None).unwrap();
            let want = w.matmul(&c).unwrap();
            let d = max_diff(&fused.get(i).unwrap(), &want);
            assert!(d < 1e-5, "sequence {i}: max diff {d}");
        }
    }
}
