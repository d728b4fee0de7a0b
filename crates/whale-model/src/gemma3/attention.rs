//! Gemma 3 attention: grouped-query attention with an RMSNorm on every query and key head
//! before RoPE, scores scaled by `query_pre_attn_scalar^-1/2`, and a post-norm on the
//! output (HF `Gemma3Attention` + the block's `post_attention_layernorm`). Sliding layers
//! read only the last `sliding_window` keys and use the local RoPE base; global layers read
//! every key with the global base.
//!
//! Deviation: sliding layers keep every key in their cache (a dense cache, as the global
//! layers), and only read the window; a ring buffer would bound their memory.

use crate::block::{per_segment, Attention, Segment};
use crate::decode::{self, DenseLayer};
use candle_core::Tensor;
use whale_core::config::Gemma3Config;
use whale_core::{Result, WhaleError, Weights};
use whale_nn::attention::{attend, Causal};
use whale_nn::{LayerCache, Linear, RmsNorm, Rope};

pub struct Gemma3Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: RmsNorm,
    k_norm: RmsNorm,
    post_norm: RmsNorm,
    /// The local RoPE for sliding layers; `None` on global layers, which use the segment's
    /// table (the decoder's RoPE is the global one).
    local_rope: Option<Rope>,
    rope: Rope,
    window: Option<usize>,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    scale: f64,
}

impl Gemma3Attention {
    /// `w` is the layer's prefix (`model.layers.{i}`); `global_rope` is the decoder's.
    pub fn new(w: &Weights, cfg: &Gemma3Config, layer: usize, global_rope: &Rope) -> Result<Self> {
        let (d, h, kv, hd) = (cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim);
        let a = w.pp("self_attn");
        let eps = cfg.rms_norm_eps;
        let sliding = cfg.is_sliding(layer);
        let local_rope = sliding.then(|| Rope::new(hd, cfg.rope_local_base_freq, None, whale_nn::RopeLayout::Halves));
        Ok(Self {
            q_proj: Linear::load(&a, "q_proj", d, h * hd, false)?,
            k_proj: Linear::load(&a, "k_proj", d, kv * hd, false)?,
            v_proj: Linear::load(&a, "v_proj", d, kv * hd, false)?,
            o_proj: Linear::load(&a, "o_proj", h * hd, d, false)?,
            q_norm: RmsNorm::load_one_centered(&a, "q_norm", hd, eps)?,
            k_norm: RmsNorm::load_one_centered(&a, "k_norm", hd, eps)?,
            post_norm: RmsNorm::load_one_centered(w, "post_attention_layernorm", d, eps)?,
            rope: local_rope.clone().unwrap_or_else(|| global_rope.clone()),
            local_rope,
            window: sliding.then_some(cfg.sliding_window),
            n_heads: h,
            n_kv_heads: kv,
            head_dim: hd,
            scale: cfg.query_pre_attn_scalar.powf(-0.5),
        })
    }
}

impl Attention for Gemma3Attention {
    fn forward(&self, x: &Tensor, segs: &[Segment], caches: &mut [Option<&mut LayerCache>]) -> Result<Tensor> {
        let (q_all, k_all, v_all) = (self.q_proj.forward(x)?, self.k_proj.forward(x)?, self.v_proj.forward(x)?);
        let layer = DenseLayer {
            qk_norms: Some((&self.q_norm, &self.k_norm)),
            window: self.window,
            ..DenseLayer::new(self.n_heads, self.n_kv_heads, self.head_dim, self.scale, &self.rope)
        };
        if decode::applies(x, segs, caches) {
            let o = decode::dense(&layer, (&q_all, &k_all, &v_all), segs, caches)?;
            return self.post_norm.forward(&self.o_proj.forward(&o)?);
        }
        let o = per_segment(segs, caches, |seg, cache| {
            // (batch, heads, len, head_dim)
            let heads = |t: &Tensor, n: usize| -> Result<Tensor> {
                let rows = t.narrow(0, seg.start, seg.batch * seg.len)?;
                Ok(rows.reshape((seg.batch, seg.len, n, self.head_dim))?.transpose(1, 2)?)
            };
            let table = match &self.local_rope {
                Some(r) => r.table(seg.offset, seg.len, x.dtype(), x.device())?,
                None => seg.rope.clone(),
            };
            let q = self.rope.apply(&self.q_norm.forward(&heads(&q_all, self.n_heads)?)?, &table)?;
            let k = self.rope.apply(&self.k_norm.forward(&heads(&k_all, self.n_kv_heads)?)?, &table)?;
            let v = heads(&v_all, self.n_kv_heads)?;
            let (k, v) = match cache {
                Some(LayerCache::Dense { k: kc, v: vc, .. }) => (kc.append(&k)?, vc.append(&v)?),
                Some(LayerCache::Latent { .. }) => {
                    return Err(WhaleError::InvalidInput("Gemma 3 attention given an MLA latent cache".into()))
                }
                None => (k, v),
            };
            let o = match self.window {
                Some(window) => {
                    let c = Causal::sliding(seg.offset, window);
                    let n = seg.offset + seg.len - c.first_key;
                    let (k, v) = (k.narrow(2, c.first_key, n)?, v.narrow(2, c.first_key, n)?);
                    attend(&q, &k, &v, self.scale, Some(c))?
                }
                None => attend(&q, &k, &v, self.scale, Some(seg.causal()))?,
            };
            Ok(o.transpose(1, 2)?.reshape((seg.batch * seg.len, self.n_heads * self.head_dim))?)
        })?;
        self.post_norm.forward(&self.o_proj.forward(&o)?)
    }

    fn new_cache(&self) -> LayerCache {
        LayerCache::dense(self.n_kv_heads, self.head_dim, self.head_dim)
    }
}
