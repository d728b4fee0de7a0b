//! KV caches: per layer either dense keys/values (Llama, Qwen2) or the MLA latent
//! (DeepSeek: the normalized `c_kv` and the roped shared key `k_pe`, i.e.
//! `kv_lora_rank + qk_rope_head_dim` values per token per layer — V2 §2.1.2, V3 §2.1.1).
//!
//! Buffers grow by doubling and are written in place, so appending one token costs one
//! token's copy rather than a copy of the whole history.

use crate::{Result, WhaleError};
use candle_core::{DType, Tensor};

/// A tensor that grows along one dimension.
#[derive(Debug, Clone)]
pub struct SeqBuffer {
    data: Option<Tensor>,
    dim: usize,
    len: usize,
}

impl SeqBuffer {
    pub fn new(dim: usize) -> Self {
        Self { data: None, dim, len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `x` along the sequence dim and returns everything held so far.
    pub fn append(&mut self, x: &Tensor) -> Result<Tensor> {
        let add = x.dim(self.dim)?;
        let needed = self.len + add;
        let capacity = self.data.as_ref().map(|d| d.dim(self.dim)).transpose()?.unwrap_or(0);
        if needed > capacity {
            let mut shape = x.dims().to_vec();
            shape[self.dim] = needed.max(2 * capacity).max(16);
            let grown = Tensor::zeros(shape, x.dtype(), x.device())?;
            if let Some(old) = &self.data {
                grown.slice_set(&old.narrow(self.dim, 0, self.len)?.contiguous()?, self.dim, 0)?;
            }
            self.data = Some(grown);
        }
        let data = self.data.as_ref().expect("allocated above");
        data.slice_set(&x.contiguous()?, self.dim, self.len)?;
        self.len = needed;
        self.current().map(|c| c.expect("non-empty after append"))
    }

    /// Everything held so far, or `None` when empty.
    pub fn current(&self) -> Result<Option<Tensor>> {
        match &self.data {
            Some(d) if self.len > 0 => Ok(Some(d.narrow(self.dim, 0, self.len)?)),
            _ => Ok(None),
        }
    }

    /// Forgets everything after the first `len` positions (speculative-decoding rollback).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// One layer's cache.
#[derive(Debug, Clone)]
pub enum LayerCache {
    /// `k: (b, kv_heads, L, k_dim)`, `v: (b, kv_heads, L, v_dim)`.
    Dense { k: SeqBuffer, v: SeqBuffer, kv_heads: usize, k_dim: usize, v_dim: usize },
    /// `(b, L, width)` rows `[c_kv | k_pe]`.
    Latent { latent: SeqBuffer, width: usize },
}

impl LayerCache {
    pub fn dense(kv_heads: usize, k_dim: usize, v_dim: usize) -> Self {
        LayerCache::Dense { k: SeqBuffer::new(2), v: SeqBuffer::new(2), kv_heads, k_dim, v_dim }
    }

    pub fn latent(width: usize) -> Self {
        LayerCache::Latent { latent: SeqBuffer::new(1), width }
    }

    pub fn len(&self) -> usize {
        match self {
            LayerCache::Dense { k, .. } => k.len(),
            LayerCache::Latent { latent, .. } => latent.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values stored per token (per sequence of the batch).
    pub fn elements_per_token(&self) -> usize {
        match self {
            LayerCache::Dense { kv_heads, k_dim, v_dim, .. } => kv_heads * (k_dim + v_dim),
            LayerCache::Latent { width, .. } => *width,
        }
    }

    /// The stored tensors of positions `start..start + len` (`[k, v]` or `[latent]`), for
    /// copying a span out of the cache (prefix caching).
    pub fn export(&self, start: usize, len: usize) -> Result<Vec<Tensor>> {
        let bufs: Vec<&SeqBuffer> = match self {
            LayerCache::Dense { k, v, .. } => vec![k, v],
            LayerCache::Latent { latent, .. } => vec![latent],
        };
        let mut out = Vec::with_capacity(bufs.len());
        for b in bufs {
            let t = b.current()?.ok_or_else(|| WhaleError::InvalidInput("export from an empty cache layer".into()))?;
            out.push(t.narrow(b.dim, start, len)?.contiguous()?);
        }
        Ok(out)
    }

    /// Appends tensors produced by [`LayerCache::export`] of a compatible layer.
    pub fn import(&mut self, parts: &[Tensor]) -> Result<()> {
        match (self, parts) {
            (LayerCache::Dense { k, v, .. }, [pk, pv]) => {
                k.append(pk)?;
                v.append(pv)?;
            }
            (LayerCache::Latent { latent, .. }, [pl]) => {
                latent.append(pl)?;
            }
            (_, parts) => {
                return Err(WhaleError::InvalidInput(format!(
                    "cache layer import: got {} tensors, which does not match this layer's kind",
                    parts.len()
                )))
            }
        }
        Ok(())
    }

    /// The shape one token span of `len` positions has, per stored tensor (batch 1).
    pub fn span_shapes(&self, len: usize) -> Vec<Vec<usize>> {
        match self {
            LayerCache::Dense { kv_heads, k_dim, v_dim, .. } => {
                vec![vec![1, *kv_heads, len, *k_dim], vec![1, *kv_heads, len, *v_dim]]
            }
            LayerCache::Latent { width, .. } => vec![vec![1, len, *width]],
        }
    }

    fn truncate(&mut self, len: usize) {
        match self {
            LayerCache::Dense { k, v, .. } => {
                k.truncate(len);
                v.truncate(len);
            }
            LayerCache::Latent { latent, .. } => latent.truncate(len),
        }
    }
}

/// The cache of a whole model for one batch of sequences that advance together.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    dtype: DType,
}

impl KvCache {
    pub fn new(layers: Vec<LayerCache>, dtype: DType) -> Self {
        Self { layers, dtype }
    }

    /// Tokens cached so far (the position of the next token).
    pub fn seq_len(&self) -> usize {
        self.layers.first().map_or(0, LayerCache::len)
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    pub fn layer(&self, i: usize) -> &LayerCache {
        &self.layers[i]
    }

    pub fn layer_mut(&mut self, i: usize) -> &mut LayerCache {
        &mut self.layers[i]
    }

    pub fn layers_mut(&mut self) -> &mut [LayerCache] {
        &mut self.layers
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Bytes one token of one sequence occupies across all layers.
    pub fn bytes_per_token(&self) -> usize {
        self.layers.iter().map(LayerCache::elements_per_token).sum::<usize>() * self.dtype.size_in_bytes()
    }

    /// Bytes of the tokens currently held (all sequences of the batch), counted from the
    /// stored tensors themselves.
    pub fn stored_bytes(&self) -> Result<usize> {
        let mut total = 0;
        for layer in &self.layers {
            let bufs: Vec<&SeqBuffer> = match layer {
                LayerCache::Dense { k, v, .. } => vec![k, v],
                LayerCache::Latent { latent, .. } => vec![latent],
            };
            for b in bufs {
                if let Some(t) = b.current()? {
                    total += t.elem_count() * t.dtype().size_in_bytes();
                }
            }
        }
        Ok(total)
    }

    pub fn truncate(&mut self, len: usize) {
        self.layers.iter_mut().for_each(|l| l.truncate(len));
    }

    pub fn reset(&mut self) {
        self.truncate(0);
    }
}
