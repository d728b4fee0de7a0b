//! Attention for inference fused into one kernel that reads every sequence's KV cache where
//! it lies: the decode tokens of a batch of sequences, and the prompt rows of a prefill.
//!
//! Batched decoding (the engine's continuous batching, GRPO rollouts) runs the linear layers
//! over all sequences at once, but attention is per sequence. Composed from tensor ops it
//! costs some twenty small ops per sequence and layer plus a copy of each cache to make it
//! contiguous; on a small model that overhead is most of a decode step, and batching 32
//! sequences bought less than 1.5x. Here each (query row, head) is computed on the matmul
//! threads: scores against the keys it may see, an f32 softmax, the weighted sum of the
//! values, and nothing is copied.
//!
//! A query's arithmetic depends on nothing but its own keys (each sums in a fixed order,
//! see [`crate::row_math`]). So a sequence decodes bit-identically alone and in a batch, and
//! a prompt row gets the same result whichever prefill chunk it falls in: a prompt whose
//! first blocks come from the prefix cache computes the rest exactly as a cold run would.

use crate::{Result, WhaleError};
use candle_core::{DType, Device, Tensor};
use crate::fast_exp::{exp_shifted_in_place, max_f32};
use crate::row_math::{contiguous_f32, view, RowMath, Rows};
use rayon::prelude::*;

/// Whether the fused kernels can run on tensors of this dtype and device.
pub fn supported(dtype: DType, device: &Device) -> bool {
    dtype == DType::F32 && device.is_cpu()
}

/// Replaces `scores` by `exp(score − max)` and returns their sum (the softmax's divisor):
/// [`crate::fast_exp`], vectorized and the same on every platform, not libm one at a time.
#[inline]
fn exp_in_place(scores: &mut [f32]) -> f32 {
    exp_shifted_in_place(scores, max_f32(scores)) as f32
}

/// One sequence's dense cache for [`dense`]: keys `(1, kv_heads, L, d)` and values
/// `(1, kv_heads, L, dv)` (views into a larger buffer are fine), this step's keys and values
/// already appended.
pub struct DenseKv<'a> {
    pub k: &'a Tensor,
    pub v: &'a Tensor,
}

/// The keys one query row sees: positions `first..end` of cache `cache` (causal: `end` is
/// the row's position + 1; `first` is 0, or the start of a sliding window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpan {
    pub cache: usize,
    pub first: usize,
    pub end: usize,
}

/// A pointer into the output that workers write disjoint rows through.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every (query row, head) output row is written by exactly one work item.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The output row of `len` elements at `offset`.
    ///
    /// # Safety
    /// In bounds, and written by this work item alone.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, offset: usize, len: usize) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(offset), len)
    }
}

/// Heads per work item of [`latent`]: enough to reuse each latent row, few enough that a
/// single decode row still gives every thread work.
const LATENT_HEADS_PER_ITEM: usize = 4;

/// Keys per block in [`latent`]'s passes (16 latent rows of 576 f32: about L1's size).
const KEY_BLOCK: usize = 16;

/// Query rows per work item: consecutive rows of one sequence share the pass over its keys
/// and values while they are in cache.
const ROWS_PER_ITEM: usize = 8;

/// Consecutive rows of one cache, at most [`ROWS_PER_ITEM`] each.
fn runs(spans: &[KeySpan]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut r = 0;
    while r < spans.len() {
        let mut e = r + 1;
        while e < spans.len() && e - r < ROWS_PER_ITEM && spans[e].cache == spans[r].cache {
            e += 1;
        }
        runs.push(r..e);
        r = e;
    }
    runs
}

/// Grouped-query attention over query rows: `q: (n, h, d)` (roped queries), `spans[i]` the
/// keys row `i` sees in `caches[spans[i].cache]` → `(n, h · dv)`. Query head `j` reads kv
/// head `j / (h / kv_heads)`, as [`crate::attention::attend`] does.
pub fn dense(q: &Tensor, caches: &[DenseKv<'_>], spans: &[KeySpan], scale: f64) -> Result<Tensor> {
    let (n, h, d) = q.dims3()?;
    if spans.len() != n {
        return Err(WhaleError::InvalidInput(format!("fused attention: {n} query rows but {} key spans", spans.len())));
    }
    let qv = contiguous_f32(q, "fused attention: the query")?;
    let guards: Vec<_> = caches.iter().map(|c| (c.k.storage_and_layout(), c.v.storage_and_layout())).collect();
    let mut views = Vec::with_capacity(caches.len());
    for ((ks, kl), (vs, vl)) in &guards {
        let (k, v) = (view(ks, kl, "fused attention: the key cache")?, view(vs, vl, "fused attention: the value cache")?);
        if k.dims.len() != 4 || v.dims.len() != 4 || k.dims[3] != d || k.dims[1] != v.dims[1] || k.dims[2] != v.dims[2] {
            return Err(WhaleError::InvalidInput(format!(
                "fused attention: key cache {:?} / value cache {:?} do not fit queries of width {d}",
                k.dims, v.dims
            )));
        }
        if h % k.dims[1] != 0 {
            return Err(WhaleError::InvalidInput(format!("fused attention: {h} query heads over {} kv heads", k.dims[1])));
        }
        views.push((k, v));
    }
    check_spans(spans, &views.iter().map(|(k, _)| k.dims[2]).collect::<Vec<_>>())?;
    let dv = views.first().map_or(d, |(_, v)| v.dims[3]);
    if views.iter().any(|(_, v)| v.dims[3] != dv) {
        return Err(WhaleError::InvalidInput("fused attention: value widths differ between sequences".into()));
    }
    // Work items: runs of consecutive rows of one cache, times groups of query heads that
    // read one kv head, so each key and value block is read from L1 by every (row, head) of
    // the item. One head per item when there are too few runs to keep every thread busy
    // (a decode step). The grouping changes no bit: each (row, head) is computed alike.
    let runs = runs(spans);
    let group = h / views.first().map_or(1, |(k, _)| k.dims[1]);
    let (scale, math) = (scale as f32, RowMath::get());
    let mut out = vec![0f32; n * h * dv];
    let outp = OutPtr(out.as_mut_ptr());
    whale_quant::install(|| {
        let per_item = if runs.len() >= 4 * rayon::current_num_threads() { group } else { 1 };
        (0..runs.len() * (h / per_item)).into_par_iter().for_each(|item| {
            let rows_of = runs[item / (h / per_item)].clone();
            let heads = (item % (h / per_item)) * per_item..(item % (h / per_item) + 1) * per_item;
            let (k, v) = &views[spans[rows_of.start].cache];
            let g = heads.start / (h / k.dims[1]);
            let keys = Rows { data: k.data, base: k.offset + g * k.stride[1], stride: k.stride[2], width: d };
            let values = Rows { data: v.data, base: v.offset + g * v.stride[1], stride: v.stride[2], width: dv };
            let score = |i: usize, j: usize, t: usize| scale * (math.dot)(&qv[(i * h + j) * d..][..d], keys.at(t));
            // SAFETY: rows (i, j) for i in this run and j in these heads belong to this item.
            let o = |i: usize, j: usize| unsafe { outp.row((i * h + j) * dv, dv) };
            attend_item(spans, rows_of, heads, values, score, o, math);
        });
    });
    Ok(Tensor::from_vec(out, (n, h * dv), q.device())?)
}

/// MLA attention in latent space (the absorbed form, V3 §2.1.1): `q_lat: (n, h, r)`
/// (queries already multiplied by W_UK, see [`crate::row_math::heads_matvec`]), `q_pe: (n, h, p)` (roped),
/// `latents[c]`: sequence c's cache `(1, L, r + p)` = `[c_kv | k_pe]` with this step's
/// entries appended, `spans[i]` the positions row `i` sees → `(n, h, r)`: the
/// softmax-weighted sum of `c_kv`, still to be multiplied by W_UV.
pub fn latent(q_lat: &Tensor, q_pe: &Tensor, latents: &[&Tensor], spans: &[KeySpan], scale: f64) -> Result<Tensor> {
    let (n, h, r) = q_lat.dims3()?;
    let p = q_pe.dim(2)?;
    if q_pe.dims3()? != (n, h, p) || spans.len() != n {
        return Err(WhaleError::InvalidInput(format!(
            "fused attention: latent queries {:?}, rope queries {:?}, {} key spans",
            q_lat.dims(),
            q_pe.dims(),
            spans.len()
        )));
    }
    let (ql, qp) = (contiguous_f32(q_lat, "fused attention: the latent query")?, contiguous_f32(q_pe, "fused attention: the rope query")?);
    let guards: Vec<_> = latents.iter().map(|t| t.storage_and_layout()).collect();
    let mut views = Vec::with_capacity(latents.len());
    for (s, l) in &guards {
        let v = view(s, l, "fused attention: the latent cache")?;
        if v.dims.len() != 3 || v.dims[2] != r + p {
            return Err(WhaleError::InvalidInput(format!("fused attention: latent cache {:?}, expected (1, L, {})", v.dims, r + p)));
        }
        views.push(v);
    }
    check_spans(spans, &views.iter().map(|v| v.dims[1]).collect::<Vec<_>>())?;
    // Work items: a run of rows times a group of heads, which all read each latent row
    // while it is in L1 (the latent is shared by every head: MQA in latent space).
    let runs = runs(spans);
    let groups = h.div_ceil(LATENT_HEADS_PER_ITEM);
    let (scale, math) = (scale as f32, RowMath::get());
    let mut out = vec![0f32; n * h * r];
    let outp = OutPtr(out.as_mut_ptr());
    whale_quant::install(|| {
        (0..runs.len() * groups).into_par_iter().for_each(|item| {
            let rows_of = runs[item / groups].clone();
            let heads = (item % groups) * LATENT_HEADS_PER_ITEM..((item % groups + 1) * LATENT_HEADS_PER_ITEM).min(h);
            let lat = &views[spans[rows_of.start].cache];
            let rows = Rows { data: lat.data, base: lat.offset, stride: lat.stride[1], width: r + p };
            let score = |i: usize, j: usize, t: usize| {
                let item = i * h + j;
                let k = rows.at(t);
                scale * ((math.dot)(&ql[item * r..(item + 1) * r], &k[..r]) + (math.dot)(&qp[item * p..(item + 1) * p], &k[r..]))
            };
            // SAFETY: rows (i, j) for i in this run and j in this head group belong to this
            // item alone.
            let o = |i: usize, j: usize| unsafe { outp.row((i * h + j) * r, r) };
            attend_item(spans, rows_of, heads, Rows { width: r, ..rows }, score, o, math);
        });
    });
    Ok(Tensor::from_vec(out, (n, h, r), q_lat.device())?)
}

/// One work item of the fused kernels: the query rows `rows_of` (one cache) times the query
/// heads `heads`, which all read the same value rows (`values.at(t)`: position `t`'s value).
/// `score(i, j, t)` is the scaled score of row `i`, head `j` against key `t`; `out(i, j)`
/// receives the softmax-weighted sum of the values row `i` sees (`spans[i]`).
///
/// Keys are taken in blocks of [`KEY_BLOCK`], so a block stays in L1 while every (row, head)
/// of the item reads it. Each (row, head) still sums its scores and values in key order, so
/// its result does not depend on the item it is computed in.
fn attend_item<'o>(
    spans: &[KeySpan],
    rows_of: std::ops::Range<usize>,
    heads: std::ops::Range<usize>,
    values: Rows<'_>,
    score: impl Fn(usize, usize, usize) -> f32,
    out: impl Fn(usize, usize) -> &'o mut [f32],
    math: RowMath,
) {
    let (lo, hi) = rows_of.clone().fold((usize::MAX, 0), |(lo, hi), i| (lo.min(spans[i].first), hi.max(spans[i].end)));
    // The keys of (row i, key block b0..b1) that row i sees.
    let seen = |i: usize, b0: usize, b1: usize| (b0.max(spans[i].first), b1.min(spans[i].end));
    let blocks = || (lo..hi).step_by(KEY_BLOCK).map(move |b0| (b0, (b0 + KEY_BLOCK).min(hi)));
    // Scores of (row, head) pairs, row-major.
    let nh = heads.len();
    let mut w: Vec<Vec<f32>> =
        rows_of.clone().flat_map(|i| heads.clone().map(move |_| Vec::with_capacity(spans[i].end - spans[i].first))).collect();
    for (b0, b1) in blocks() {
        for (ri, i) in rows_of.clone().enumerate() {
            let (f, e) = seen(i, b0, b1);
            for (hj, j) in heads.clone().enumerate() {
                w[ri * nh + hj].extend((f..e).map(|t| score(i, j, t)));
            }
        }
    }
    let inv: Vec<f32> = w.iter_mut().map(|s| 1.0 / exp_in_place(s)).collect();
    for (b0, b1) in blocks() {
        for (ri, i) in rows_of.clone().enumerate() {
            let (f, e) = seen(i, b0, b1);
            if f >= e {
                continue;
            }
            let first = spans[i].first;
            let block = Rows { base: values.base + f * values.stride, ..values };
            for (hj, j) in heads.clone().enumerate() {
                (math.weighted_sum)(&w[ri * nh + hj][f - first..e - first], block, out(i, j));
            }
        }
    }
    for (ri, i) in rows_of.enumerate() {
        for (hj, j) in heads.clone().enumerate() {
            out(i, j).iter_mut().for_each(|x| *x *= inv[ri * nh + hj]);
        }
    }
}

/// Every span inside its cache (`lens[c]` keys in cache c), and not empty.
fn check_spans(spans: &[KeySpan], lens: &[usize]) -> Result<()> {
    for (i, s) in spans.iter().enumerate() {
        let len = lens.get(s.cache).copied();
        if len.is_none_or(|len| s.first >= s.end || s.end > len) {
            return Err(WhaleError::InvalidInput(format!(
                "fused attention: row {i} sees keys {}..{} of cache {} ({} caches, {len:?} keys)",
                s.first,
                s.end,
                s.cache,
                lens.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::{attend, masked_softmax};
    use crate::kv_cache::SeqBuffer;
    use crate::row_math::tests::{max_diff, rand_t as rand};

    /// Caches of the given lengths as views into grown buffers (strided, as the engine's
    /// are): `(view k, view v, full k, full v)`.
    fn caches(lens: &[usize], kvh: usize, d: usize, dv: usize) -> Vec<(Tensor, Tensor, Tensor, Tensor)> {
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
        bufs
    }

    /// Decode rows against the composed attention, per sequence, with GQA groups of 3 and a
    /// sliding window.
    #[test]
    fn dense_matches_composed_attention_over_strided_caches() {
        let (h, kvh, d, dv) = (6, 2, 8, 12);
        let lens = [1usize, 5, 19, 40];
        let q = rand(&[lens.len(), h, d], 1);
        let bufs = caches(&lens, kvh, d, dv);
        let kv: Vec<DenseKv<'_>> = bufs.iter().map(|(k, v, _, _)| DenseKv { k, v }).collect();
        let firsts = [0usize, 0, 4, 33];
        let spans: Vec<KeySpan> = (0..lens.len()).map(|i| KeySpan { cache: i, first: firsts[i], end: lens[i] }).collect();
        let fused = dense(&q, &kv, &spans, 0.3).unwrap();
        assert_eq!(fused.dims(), &[lens.len(), h * dv]);
        for (i, (_, _, k, v)) in bufs.iter().enumerate() {
            let (l, f) = (lens[i], firsts[i]);
            let qi = q.narrow(0, i, 1).unwrap().reshape((1, h, 1, d)).unwrap();
            let want = attend(&qi, &k.narrow(2, f, l - f).unwrap(), &v.narrow(2, f, l - f).unwrap(), 0.3, None).unwrap();
            let want = want.reshape((1, h * dv)).unwrap();
            let d = max_diff(&fused.narrow(0, i, 1).unwrap(), &want);
            assert!(d < 1e-5, "sequence {i}: max diff {d}");
        }
        // A sequence's output is the same alone as in the batch, bit for bit.
        let alone = dense(&q.narrow(0, 2, 1).unwrap(), &kv[2..3], &[KeySpan { cache: 0, ..spans[2] }], 0.3).unwrap();
        assert_eq!(max_diff(&alone, &fused.narrow(0, 2, 1).unwrap()), 0.0);
        // Mismatched inputs are errors, not panics.
        assert!(dense(&q, &kv, &spans[..2], 0.3).is_err());
        let past_end = [KeySpan { cache: 0, first: 0, end: 2 }];
        assert!(dense(&q.narrow(0, 0, 1).unwrap(), &kv[..1], &past_end, 0.3).is_err());
        let no_cache = [KeySpan { cache: 7, first: 0, end: 1 }];
        assert!(dense(&q.narrow(0, 0, 1).unwrap(), &kv[..1], &no_cache, 0.3).is_err());
    }

    /// Prompt rows (each seeing the keys up to its own position) against the composed
    /// attention with a causal mask; and every row bit-identical whatever chunk it is
    /// computed in: alone, as the tail of a chunk, or among another sequence's rows.
    #[test]
    fn prompt_rows_match_the_causal_mask_and_do_not_depend_on_their_chunk() {
        let (h, kvh, d, dv, len) = (4, 2, 64, 64, 37);
        let bufs = caches(&[len, 11], kvh, d, dv);
        let kv: Vec<DenseKv<'_>> = bufs.iter().map(|(k, v, _, _)| DenseKv { k, v }).collect();
        let q = rand(&[len, h, d], 5);
        let spans: Vec<KeySpan> = (0..len).map(|t| KeySpan { cache: 0, first: 0, end: t + 1 }).collect();
        let all = dense(&q, &kv, &spans, 0.125).unwrap();
        let (_, _, k, v) = &bufs[0];
        let q4 = q.reshape((1, len, h, d)).unwrap().transpose(1, 2).unwrap();
        let want = attend(&q4, k, v, 0.125, Some(crate::attention::Causal::new(0))).unwrap().transpose(1, 2).unwrap().reshape((len, h * dv)).unwrap();
        let diff = max_diff(&all, &want);
        assert!(diff < 1e-5, "max diff {diff} from the composed causal attention");
        for (from, to) in [(36, 37), (20, 37), (0, 9), (9, 30)] {
            let part = dense(&q.narrow(0, from, to - from).unwrap(), &kv, &spans[from..to], 0.125).unwrap();
            assert_eq!(max_diff(&part, &all.narrow(0, from, to - from).unwrap()), 0.0, "rows {from}..{to}");
        }
        // Beside a decode row of the other sequence.
        let mixed_q = Tensor::cat(&[rand(&[1, h, d], 6), q.narrow(0, 30, 7).unwrap()], 0).unwrap();
        let mut mixed_spans = vec![KeySpan { cache: 1, first: 0, end: 11 }];
        mixed_spans.extend_from_slice(&spans[30..]);
        let mixed = dense(&mixed_q, &kv, &mixed_spans, 0.125).unwrap();
        assert_eq!(max_diff(&mixed.narrow(0, 1, 7).unwrap(), &all.narrow(0, 30, 7).unwrap()), 0.0);
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
        // Row 1 sees a span in the middle of its cache (a prompt row with a window).
        let spans = [KeySpan { cache: 0, first: 0, end: 3 }, KeySpan { cache: 1, first: 2, end: 9 }];
        let fused = latent(&q_lat, &q_pe, &refs, &spans, 0.25).unwrap();
        for (i, (_, lat)) in bufs.iter().enumerate() {
            let lat = lat.squeeze(0).unwrap().narrow(0, spans[i].first, spans[i].end - spans[i].first).unwrap();
            let (c, kp) = (lat.narrow(1, 0, r).unwrap(), lat.narrow(1, r, p).unwrap());
            let scores = (q_lat.get(i).unwrap().matmul(&c.t().unwrap()).unwrap()
                + q_pe.get(i).unwrap().matmul(&kp.t().unwrap()).unwrap())
            .unwrap();
            let w = masked_softmax(&scores, 0.25, None).unwrap();
            let want = w.matmul(&c).unwrap();
            let d = max_diff(&fused.get(i).unwrap(), &want);
            assert!(d < 1e-5, "sequence {i}: max diff {d}");
        }
        assert!(latent(&q_lat, &q_pe, &refs, &[spans[0], KeySpan { cache: 1, first: 0, end: 12 }], 0.25).is_err());
        // Prompt rows (each sees the keys up to its own position) computed together and
        // alone, bit for bit: they share work items when together.
        let (ql, qp) = (rand(&[11, h, r], 13), rand(&[11, h, p], 14));
        let causal: Vec<KeySpan> = (0..11).map(|t| KeySpan { cache: 1, first: 0, end: t + 1 }).collect();
        let together = latent(&ql, &qp, &refs, &causal, 0.25).unwrap();
        for t in [0usize, 5, 10] {
            let row = |x: &Tensor| x.narrow(0, t, 1).unwrap();
            let alone = latent(&row(&ql), &row(&qp), &refs, &causal[t..=t], 0.25).unwrap();
            assert_eq!(max_diff(&alone, &row(&together)), 0.0, "row {t}");
        }
    }

}
