//! Decode attention through the fused kernels of `whale_nn::decode_attention`. When every
//! segment of a forward is one new token of its own sequence (a batched decode step), the
//! attention layers rope all new tokens in one op (a table with one row per sequence's
//! position) and attend in one kernel call. In a step that mixes decodes with prefills, each
//! decode segment still takes the same kernel on its own, so a token's arithmetic never
//! depends on what else is in the batch: served beside others, a request gets the tokens it
//! gets alone. Prefill segments and training keep the composed path.

use crate::block::Segment;
use candle_core::Tensor;
use whale_core::{Result, WhaleError};
use whale_nn::decode_attention::{self, DenseKv};
use whale_nn::{LayerCache, Rope, RopeTable, RmsNorm};

/// Whether the fused kernels can run in this forward at all: inference (nothing tracked for
/// autograd) on f32 CPU tensors.
pub fn kernels_apply(x: &Tensor) -> bool {
    !x.track_op() && decode_attention::supported(x.dtype(), x.device())
}

/// Whether a segment is a decode: one new token appended to a cache (a layer's, or the
/// whole model's).
pub fn is_decode<C>(seg: &Segment, cache: &Option<C>) -> bool {
    seg.len == 1 && cache.is_some()
}

/// Whether this forward is a batched decode step: every segment a decode.
pub fn applies(x: &Tensor, segs: &[Segment], caches: &[Option<&mut LayerCache>]) -> bool {
    kernels_apply(x) && !segs.is_empty() && caches.len() == segs.len() && segs.iter().zip(caches).all(|(s, c)| is_decode(s, c))
}

/// One rope row per segment, at that segment's position.
pub fn rope_table(rope: &Rope, segs: &[Segment], x: &Tensor) -> Result<RopeTable> {
    let positions: Vec<usize> = segs.iter().map(|s| s.offset).collect();
    rope.table_at(&positions, x.dtype(), x.device())
}

/// The shape and options of a grouped-query attention layer for [`dense`].
pub struct DenseLayer<'a> {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub scale: f64,
    pub rope: &'a Rope,
    /// Per-head RMS norms of queries and keys before RoPE (Gemma 3).
    pub qk_norms: Option<(&'a RmsNorm, &'a RmsNorm)>,
    /// A sliding window: the query sees only the last `window` positions.
    pub window: Option<usize>,
}

impl<'a> DenseLayer<'a> {
    /// Plain grouped-query attention over every cached key (Llama, Qwen2).
    pub fn new(n_heads: usize, n_kv_heads: usize, head_dim: usize, scale: f64, rope: &'a Rope) -> Self {
        DenseLayer { n_heads, n_kv_heads, head_dim, scale, rope, qk_norms: None, window: None }
    }
}

/// [`dense`] for one decode segment of a step that also holds prefills: `q_all`/`k_all`/
/// `v_all` are the whole step's projections, of which the segment's row is taken.
pub fn dense_segment(
    layer: &DenseLayer<'_>,
    (q_all, k_all, v_all): (&Tensor, &Tensor, &Tensor),
    seg: &Segment,
    cache: Option<&mut LayerCache>,
) -> Result<Tensor> {
    let row = |t: &Tensor| t.narrow(0, seg.start, 1);
    dense(layer, (&row(q_all)?, &row(k_all)?, &row(v_all)?), std::slice::from_ref(seg), &mut [cache])
}

/// Grouped-query attention for a batched decode step: `q_all: (n, h·d)`, `k_all`/`v_all`:
/// `(n, kv_h·d)` (projections of the n new tokens) → `(n, h·d)`, each token's key and value
/// appended to its sequence's cache.
pub fn dense(
    layer: &DenseLayer<'_>,
    (q_all, k_all, v_all): (&Tensor, &Tensor, &Tensor),
    segs: &[Segment],
    caches: &mut [Option<&mut LayerCache>],
) -> Result<Tensor> {
    let (n, h, kvh, d) = (segs.len(), layer.n_heads, layer.n_kv_heads, layer.head_dim);
    // (1, heads, n, d): the n tokens take the place of time, each with its own rope row.
    let heads = |t: &Tensor, nh: usize| -> Result<Tensor> { Ok(t.reshape((1, n, nh, d))?.transpose(1, 2)?) };
    let (mut q, mut k) = (heads(q_all, h)?, heads(k_all, kvh)?);
    if let Some((qn, kn)) = layer.qk_norms {
        q = qn.forward(&q)?;
        k = kn.forward(&k)?;
    }
    let table = rope_table(layer.rope, segs, q_all)?;
    let q = layer.rope.apply(&q, &table)?.squeeze(0)?.transpose(0, 1)?; // (n, h, d)
    let k = layer.rope.apply(&k, &table)?.transpose(1, 2)?.contiguous()?; // (1, n, kv_h, d)
    let v = v_all.reshape((1, n, kvh, d))?;
    let mut current = Vec::with_capacity(n);
    for (i, (seg, cache)) in segs.iter().zip(caches.iter_mut()).enumerate() {
        let Some(LayerCache::Dense { k: kc, v: vc, .. }) = cache.as_deref_mut() else {
            return Err(WhaleError::InvalidInput("grouped-query attention given an MLA latent cache".into()));
        };
        // Row i of a contiguous (1, n, kv_h, d) is already laid out as (1, kv_h, 1, d).
        let kc = kc.append(&k.narrow(1, i, 1)?.reshape((1, kvh, 1, d))?)?;
        let vc = vc.append(&v.narrow(1, i, 1)?.reshape((1, kvh, 1, d))?)?;
        let first_key = layer.window.map_or(0, |w| (seg.offset + 1).saturating_sub(w));
        current.push((kc, vc, first_key));
    }
    let kv: Vec<DenseKv<'_>> = current.iter().map(|(k, v, first_key)| DenseKv { k, v, first_key: *first_key }).collect();
    decode_attention::dense(&q, &kv, layer.scale)
}
