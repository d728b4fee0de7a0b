//! Grouped-query attention (Llama, Qwen2): `num_key_value_heads` key/value heads shared by
//! groups of query heads, RoPE on queries and keys, a dense KV cache.

use crate::block::{per_segment, Attention, Segment};
use crate::decode::{self, DenseLayer};
use candle_core::Tensor;
use whale_core::config::LlamaConfig;
use whale_core::{Result, WhaleError, Weights};
use whale_nn::attention::attend;
use whale_nn::{LayerCache, Linear, Rope};

pub struct GqaAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    rope: Rope,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    scale: f64,
}

impl GqaAttention {
    /// `w` is the layer's `self_attn` prefix.
    pub fn new(w: &Weights, cfg: &LlamaConfig, rope: Rope) -> Result<Self> {
        let (d, h, kv, hd) = (cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim);
        Ok(Self {
            q_proj: Linear::load(w, "q_proj", d, h * hd, cfg.qkv_bias)?,
            k_proj: Linear::load(w, "k_proj", d, kv * hd, cfg.qkv_bias)?,
            v_proj: Linear::load(w, "v_proj", d, kv * hd, cfg.qkv_bias)?,
            o_proj: Linear::load(w, "o_proj", h * hd, d, cfg.o_bias)?,
            rope,
            n_heads: h,
            n_kv_heads: kv,
            head_dim: hd,
            scale: (hd as f64).powf(-0.5),
        })
    }
}

impl Attention for GqaAttention {
    fn forward(&self, x: &Tensor, segs: &[Segment], caches: &mut [Option<&mut LayerCache>]) -> Result<Tensor> {
        // Projections over all tokens at once; attention per sequence.
        let (q_all, k_all, v_all) = (self.q_proj.forward(x)?, self.k_proj.forward(x)?, self.v_proj.forward(x)?);
        let layer = DenseLayer::new(self.n_heads, self.n_kv_heads, self.head_dim, self.scale, &self.rope);
        if decode::applies(x, segs, caches) {
            return self.o_proj.forward(&decode::dense(&layer, (&q_all, &k_all, &v_all), segs, caches)?);
        }
        let o = per_segment(segs, caches, |seg, cache| {
            let heads = |t: &Tensor, n: usize| -> Result<Tensor> {
                let rows = t.narrow(0, seg.start, seg.batch * seg.len)?;
                Ok(rows.reshape((seg.batch, seg.len, n, self.head_dim))?.transpose(1, 2)?)
            };
            let q = self.rope.apply(&heads(&q_all, self.n_heads)?, &seg.rope)?;
            let k = self.rope.apply(&heads(&k_all, self.n_kv_heads)?, &seg.rope)?;
            let v = heads(&v_all, self.n_kv_heads)?;
            let (k, v) = match cache {
                Some(LayerCache::Dense { k: kc, v: vc, .. }) => (kc.append(&k)?, vc.append(&v)?),
                Some(LayerCache::Latent { .. }) => {
                    return Err(WhaleError::InvalidInput("grouped-query attention given an MLA latent cache".into()))
                }
                None => (k, v),
            };
            let o = attend(&q, &k, &v, self.scale, Some(seg.causal()))?;
            Ok(o.transpose(1, 2)?.reshape((seg.batch * seg.len, self.n_heads * self.head_dim))?)
        })?;
        self.o_proj.forward(&o)
    }

    fn new_cache(&self) -> LayerCache {
        LayerCache::dense(self.n_kv_heads, self.head_dim, self.head_dim)
    }
}
