//! Inference attention through the fused kernels of `whale_nn::fused_attention`, and what
//! makes a row a decode.
//!
//! In inference (nothing tracked for autograd, f32 on the CPU, every segment with a cache)
//! the attention layers rope all new tokens in one op (a table with one row per token's
//! position) and attend in one kernel call, decode tokens and prompt rows alike. Each row's
//! arithmetic depends only on its own keys, so a token gets the same result whatever else is
//! in the step: served beside others, a request gets the tokens it gets alone, and a prompt
//! whose first blocks came from the prefix cache computes the rest as a cold prefill would.
//! Training and cache-less forwards keep the composed path.

use crate::block::Segment;
use candle_core::Tensor;
use whale_core::{Result, WhaleError};
use whale_nn::fused_attention::{self, DenseKv, KeySpan};
use whale_nn::{LayerCache, Rope, RopeTable, RmsNorm};

/// Whether the fused kernels can run in this forward at all: inference (nothing tracked for
/// autograd) on f32 CPU tensors.
pub fn kernels_apply(x: &Tensor) -> bool {
    !x.track_op() && fused_attention::supported(x.dtype(), x.device())
}

/// Whether a segment is a decode: one new token, not a prompt's, appended to a cache (a
/// layer's, or the whole model's). Decodes take the decode-row kernels
/// (`whale_quant::decode_kernels`); a prompt's last token computed on its own (after a
/// prefix-cache hit) does not, so it is computed as in the cold prefill.
pub fn is_decode<C>(seg: &Segment, cache: &Option<C>) -> bool {
    seg.len == 1 && !seg.prompt && cache.is_some()
}

/// Whether every segment of this step is a decode (a batched decode step).
pub fn all_decode<C>(segs: &[Segment], caches: &[Option<C>]) -> bool {
    !segs.is_empty() && caches.len() == segs.len() && segs.iter().zip(caches).all(|(s, c)| is_decode(s, c))
}

/// Whether this forward's attention runs on the fused kernels: inference, every segment with
/// a cache.
pub fn applies(x: &Tensor, segs: &[Segment], caches: &[Option<&mut LayerCache>]) -> bool {
    kernels_apply(x) && !segs.is_empty() && caches.len() == segs.len() && caches.iter().all(Option::is_some)
}

/// One rope row per new token, at that token's position.
pub fn rope_table(rope: &Rope, segs: &[Segment], x: &Tensor) -> Result<RopeTable> {
    let positions: Vec<usize> = segs.iter().flat_map(|s| s.offset..s.offset + s.len).collect();
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

/// Grouped-query attention for the new tokens of every segment: `q_all: (n, h·d)`,
/// `k_all`/`v_all`: `(n, kv_h·d)` (projections of the n new tokens) → `(n, h·d)`, each
/// segment's keys and values appended to its sequence's cache.
pub fn dense(
    layer: &DenseLayer<'_>,
    (q_all, k_all, v_all): (&Tensor, &Tensor, &Tensor),
    segs: &[Segment],
    caches: &mut [Option<&mut LayerCache>],
) -> Result<Tensor> {
    let (n, h, kvh, d) = (q_all.dim(0)?, layer.n_heads, layer.n_kv_heads, layer.head_dim);
    // (1, heads, n, d): the n tokens take the place of time, each with its own rope row.
    let heads = |t: &Tensor, nh: usize| -> Result<Tensor> { Ok(t.reshape((1, n, nh, d))?.transpose(1, 2)?) };
    let (mut q, mut k) = (heads(q_all, h)?, heads(k_all, kvh)?);
    if let Some((qn, kn)) = layer.qk_norms {
        q = qn.forward(&q)?;
        k = kn.forward(&k)?;
    }
    let table = rope_table(layer.rope, segs, q_all)?;
    let q = layer.rope.apply(&q, &table)?.squeeze(0)?.transpose(0, 1)?; // (n, h, d)
    let k = layer.rope.apply(&k, &table)?; // (1, kv_h, n, d)
    let v = v_all.reshape((1, n, kvh, d))?.transpose(1, 2)?; // (1, kv_h, n, d)
    let mut current = Vec::with_capacity(segs.len());
    let mut spans = Vec::with_capacity(n);
    for (i, (seg, cache)) in segs.iter().zip(caches.iter_mut()).enumerate() {
        let Some(LayerCache::Dense { k: kc, v: vc, .. }) = cache.as_deref_mut() else {
            return Err(WhaleError::InvalidInput("grouped-query attention given an MLA latent cache".into()));
        };
        current.push((kc.append(&k.narrow(2, seg.start, seg.len)?)?, vc.append(&v.narrow(2, seg.start, seg.len)?)?));
        spans.extend((seg.offset..seg.offset + seg.len).map(|pos| KeySpan {
            cache: i,
            first: layer.window.map_or(0, |w| (pos + 1).saturating_sub(w)),
            end: pos + 1,
        }));
    }
    let kv: Vec<DenseKv<'_>> = current.iter().map(|(k, v)| DenseKv { k, v }).collect();
    fused_attention::dense(&q, &kv, &spans, layer.scale)
}
