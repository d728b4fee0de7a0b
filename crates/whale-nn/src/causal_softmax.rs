//! `softmax(scale · scores)` over the keys each query may see, as one op with its own
//! backward: the causal (and sliding-window) pattern is computed from positions, never
//! stored as a mask tensor.
//!
//! The composed form (scale, broadcast add of an additive mask, max, subtract, exp, sum,
//! divide) writes a scores-sized tensor at each step and keeps them all for the backward;
//! in training that is most of attention's memory traffic. Here the forward reads the
//! scores once and writes the probabilities once, and the backward,
//! `dx = scale · y · (g - Σ g·y)`, reads `y` and `g` once.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::fast_exp::{exp_shifted_in_place, max_f32};
use crate::row_math::{contiguous_slice, storage_slice};
use crate::Result;

/// Which keys a block of queries sees. Query `i` of the block sits at position
/// `offset + i`; key column `c` holds position `first_key + c`. A key is visible when it is
/// not after the query and, with a window, fewer than `window` positions before it
/// (transformers' `kv_idx > q_idx - sliding_window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Causal {
    pub offset: usize,
    pub first_key: usize,
    pub window: Option<usize>,
}

impl Causal {
    /// Queries at `offset..` over every earlier key (keys from position 0).
    pub fn new(offset: usize) -> Self {
        Self { offset, first_key: 0, window: None }
    }

    /// Queries at `offset..` within a window of `window` positions; keys start at the first
    /// one any of them can see (the first query's window), so the rest need not be read.
    pub fn sliding(offset: usize, window: usize) -> Self {
        Self { offset, first_key: (offset + 1).saturating_sub(window), window: Some(window) }
    }

    /// Key columns `lo..hi` visible to query `i`, given `keys` columns.
    pub fn visible(&self, i: usize, keys: usize) -> (usize, usize) {
        let q = self.offset + i;
        let hi = (q + 1).saturating_sub(self.first_key).min(keys);
        let lo = self.window.map_or(0, |w| (q + 1).saturating_sub(w).saturating_sub(self.first_key));
        (lo.min(hi), hi)
    }
}

/// `scores: (.., rows, keys)` → f32 probabilities of the same shape. Row `r` of each
/// trailing matrix is query `r % queries` (attention folds the query heads that share a
/// key head into rows); `causal: None` lets every row see every key.
pub fn causal_softmax(scores: &Tensor, scale: f64, causal: Option<Causal>, queries: usize) -> Result<Tensor> {
    let s = scores.to_dtype(DType::F32)?.contiguous()?;
    Ok(s.apply_op1(CausalSoftmax { scale: scale as f32, causal, queries: queries.max(1) })?)
}

#[derive(Clone, Copy)]
struct CausalSoftmax {
    scale: f32,
    causal: Option<Causal>,
    queries: usize,
}

impl CausalSoftmax {
    /// The visible columns of global row `g` of a `(.., rows, keys)` tensor.
    fn span(&self, g: usize, rows: usize, keys: usize) -> (usize, usize) {
        match self.causal {
            Some(c) => c.visible((g % rows) % self.queries, keys),
            None => (0, keys),
        }
    }

    /// Rows per parallel task: about 16k elements, at least one row.
    fn chunk_rows(keys: usize) -> usize {
        (16384 / keys.max(1)).max(1)
    }
}

/// `(.., rows, keys)` of a shape with at least two dims.
fn rows_keys(shape: &Shape) -> candle_core::Result<(usize, usize)> {
    let d = shape.dims();
    if d.len() < 2 {
        candle_core::bail!("causal softmax needs (.., queries, keys) scores, found {d:?}")
    }
    Ok((d[d.len() - 2], d[d.len() - 1]))
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "whale-causal-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<f32>(storage, layout, "causal softmax scores")?;
        let (rows, keys) = rows_keys(layout.shape())?;
        let mut y = vec![0f32; x.len()];
        if keys > 0 {
            let chunk = Self::chunk_rows(keys);
            y.par_chunks_mut(chunk * keys).zip(x.par_chunks(chunk * keys)).enumerate().for_each(|(c, (ys, xs))| {
                for (r, (yr, xr)) in ys.chunks_mut(keys).zip(xs.chunks(keys)).enumerate() {
                    let (lo, hi) = self.span(c * chunk + r, rows, keys);
                    let (yv, xv) = (&mut yr[lo..hi], &xr[lo..hi]);
                    for (o, &v) in yv.iter_mut().zip(xv) {
                        *o = v * self.scale;
                    }
                    let max = max_f32(yv);
                    let inv = (1.0 / exp_shifted_in_place(yv, max)) as f32;
                    yv.iter_mut().for_each(|o| *o *= inv);
                }
            });
        }
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (rows, keys) = rows_keys(res.shape())?;
        let grad = grad.to_dtype(DType::F32)?.contiguous()?;
        let (ys, yl) = res.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let y = storage_slice::<f32>(&ys, yl, "causal softmax probabilities")?;
        let g = storage_slice::<f32>(&gs, gl, "causal softmax gradient")?;
        let mut dx = vec![0f32; y.len()];
        if keys > 0 {
            let chunk = Self::chunk_rows(keys);
            dx.par_chunks_mut(chunk * keys).zip(y.par_chunks(chunk * keys)).zip(g.par_chunks(chunk * keys)).enumerate().for_each(
                |(c, ((ds, yc), gc))| {
                    for (r, ((dr, yr), gr)) in ds.chunks_mut(keys).zip(yc.chunks(keys)).zip(gc.chunks(keys)).enumerate() {
                        let (lo, hi) = self.span(c * chunk + r, rows, keys);
                        let (yv, gv) = (&yr[lo..hi], &gr[lo..hi]);
                        let dot: f32 = yv.iter().zip(gv).map(|(y, g)| y * g).sum();
                        for ((d, &y), &g) in dr[lo..hi].iter_mut().zip(yv).zip(gv) {
                            *d = self.scale * y * (g - dot);
                        }
                    }
                },
            );
        }
        Ok(Some(Tensor::from_vec(dx, res.shape(), res.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The additive-mask form of `causal`: 0 where visible, -inf elsewhere, `(t, keys)`.
    fn additive_mask(c: Causal, t: usize, keys: usize) -> Tensor {
        let m: Vec<f32> = (0..t)
            .flat_map(|i| {
                let (lo, hi) = c.visible(i, keys);
                (0..keys).map(move |j| if (lo..hi).contains(&j) { 0.0 } else { f32::NEG_INFINITY })
            })
            .collect();
        Tensor::from_vec(m, (t, keys), &Device::Cpu).unwrap()
    }

    #[test]
    fn visible_keys_match_the_definition() {
        // Key at position j visible to the query at p iff j <= p and (no window or p - j < w).
        for window in [None, Some(1), Some(3), Some(5)] {
            for offset in 0..9 {
                for t in 1..7 {
                    let c = match window {
                        Some(w) => Causal::sliding(offset, w),
                        None => Causal::new(offset),
                    };
                    let keys = offset + t - c.first_key;
                    for i in 0..t {
                        let p = offset + i;
                        let (lo, hi) = c.visible(i, keys);
                        let want: Vec<usize> =
                            (0..offset + t).filter(|&j| j <= p && window.is_none_or(|w| j + w > p)).collect();
                        let got: Vec<usize> = (lo..hi).map(|col| col + c.first_key).collect();
                        assert_eq!(got, want, "window {window:?} offset {offset} t {t} query {i}");
                    }
                }
            }
        }
    }

    /// Probabilities and gradients equal the composed form (scale, additive mask, candle's
    /// softmax), for a causal block with history and a sliding window, with rows folded
    /// (two query heads per key head).
    #[test]
    fn matches_the_masked_composed_softmax_forward_and_backward() {
        let dev = Device::Cpu;
        let (t, group) = (5, 2);
        for c in [Causal::new(3), Causal::sliding(4, 3)] {
            let keys = c.offset + t - c.first_key;
            let v: Vec<f32> = (0..2 * group * t * keys).map(|i| ((i * 37 % 101) as f32 / 101.0 - 0.5) * 4.0).collect();
            let x = Var::from_vec(v, (2, group * t, keys), &dev).unwrap();
            let w = Tensor::from_vec((0..2 * group * t * keys).map(|i| (i as f32 * 0.7).sin()).collect(), (2, group * t, keys), &dev)
                .unwrap();
            let ours = causal_softmax(x.as_tensor(), 0.3, Some(c), t).unwrap();
            let mask = Tensor::cat(&vec![additive_mask(c, t, keys); group], 0).unwrap();
            let theirs = candle_nn::ops::softmax(&(x.as_tensor() * 0.3).unwrap().broadcast_add(&mask).unwrap(), candle_core::D::Minus1).unwrap();
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let max_diff = |a: Vec<f32>, b: Vec<f32>| a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(max_diff(flat(&ours), flat(&theirs)) < 1e-6, "{c:?}: probabilities");
            let ga = (&ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (&theirs * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let d = max_diff(flat(ga.get(x.as_tensor()).unwrap()), flat(gb.get(x.as_tensor()).unwrap()));
            assert!(d < 1e-6, "{c:?}: gradient differs by {d}");
        }
    }
}
