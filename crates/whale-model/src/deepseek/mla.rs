//! Multi-head Latent Attention (DeepSeek-V2 §2.1, V3 §2.1.1).
//!
//! Keys and values are compressed into a shared latent `c_kv` (`kv_lora_rank` wide) plus
//! one decoupled RoPE key `k_pe` shared by all heads; only those two are cached
//! (`kv_lora_rank + qk_rope_head_dim` values per token per layer).
//!
//! Two paths compute the same attention:
//! - *naive*: expand `c_kv` through `kv_b_proj` into per-head `k_nope`/`v` and run ordinary
//!   attention (training, long prefills);
//! - *absorbed*: fold `W_UK` into the query (`q_nope · W_UK` lives in latent space), attend
//!   over the latent directly (MQA with keys `[c_kv | k_pe]` and values `c_kv`), and apply
//!   `W_UV` after attention (decoding: no per-token expansion of the whole history).

use crate::block::{per_segment, Attention, Segment};
use crate::decode;
use candle_core::{Tensor, D};
use std::borrow::Cow;
use whale_core::config::DeepSeekConfig;
use whale_core::{Result, Weights, WhaleError};
use whale_nn::attention::{attend, masked_softmax, Causal};
use whale_nn::fused_attention::{self, KeySpan};
use whale_nn::{LayerCache, Linear, RmsNorm, Rope};

/// Which MLA path to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MlaMode {
    /// Absorbed for short steps (decoding), naive for prefills.
    #[default]
    Auto,
    Naive,
    Absorbed,
}

/// Steps of at most this many new tokens use the absorbed path under `MlaMode::Auto`.
const ABSORB_MAX_NEW_TOKENS: usize = 16;

enum QProj {
    /// V2-Lite: `q = W_Q h`.
    Plain(Linear),
    /// V2/V3: `q = W_UQ RMSNorm(W_DQ h)`.
    LowRank { q_a_proj: Linear, q_a_layernorm: RmsNorm, q_b_proj: Linear },
}

pub struct Mla {
    q: QProj,
    kv_a_proj_with_mqa: Linear,
    kv_a_layernorm: RmsNorm,
    kv_b_proj: Linear,
    o_proj: Linear,
    rope: Rope,
    /// Per-head `W_UKᵀ: (h, kv_lora, nope)` and `W_UV: (h, v, kv_lora)` in f32, split out
    /// of `kv_b_proj` once at load for frozen weights (recomputed per call when training).
    /// f32 rather than quantized: at these short rows (128 and 512 values) Whale's quantized
    /// kernels cost more per row than the f32 dots (decode measured 10 % slower on the
    /// DeepSeek-V2-shaped benchmark model).
    absorbed: Option<(Tensor, Tensor)>,
    mode: MlaMode,
    n_heads: usize,
    nope: usize,
    rope_dim: usize,
    v_dim: usize,
    kv_lora: usize,
    scale: f64,
}

impl Mla {
    /// `w` is the layer's `self_attn` prefix.
    pub fn new(w: &Weights, cfg: &DeepSeekConfig, rope: Rope) -> Result<Self> {
        let (d, h) = (cfg.hidden_size, cfg.num_attention_heads);
        let qk = cfg.qk_head_dim();
        let bias = cfg.attention_bias;
        let q = match cfg.q_lora_rank {
            None => QProj::Plain(Linear::load(w, "q_proj", d, h * qk, false)?),
            Some(r) => QProj::LowRank {
                q_a_proj: Linear::load(w, "q_a_proj", d, r, bias)?,
                q_a_layernorm: RmsNorm::load(w, "q_a_layernorm", r, cfg.rms_norm_eps)?,
                q_b_proj: Linear::load(w, "q_b_proj", r, h * qk, false)?,
            },
        };
        let kv_b_proj = Linear::load(w, "kv_b_proj", cfg.kv_lora_rank, h * (cfg.qk_nope_head_dim + cfg.v_head_dim), false)?;
        let mut mla = Self {
            q,
            kv_a_proj_with_mqa: Linear::load(w, "kv_a_proj_with_mqa", d, cfg.latent_cache_width(), bias)?,
            kv_a_layernorm: RmsNorm::load(w, "kv_a_layernorm", cfg.kv_lora_rank, cfg.rms_norm_eps)?,
            kv_b_proj,
            o_proj: Linear::load(w, "o_proj", h * cfg.v_head_dim, d, bias)?,
            rope,
            absorbed: None,
            mode: MlaMode::Auto,
            n_heads: h,
            nope: cfg.qk_nope_head_dim,
            rope_dim: cfg.qk_rope_head_dim,
            v_dim: cfg.v_head_dim,
            kv_lora: cfg.kv_lora_rank,
            scale: cfg.softmax_scale(),
        };
        if w.is_checkpoint() {
            mla.absorbed = Some(mla.split_kv_b()?);
        }
        Ok(mla)
    }

    pub fn set_mode(&mut self, mode: MlaMode) {
        self.mode = mode;
    }

    pub fn softmax_scale(&self) -> f64 {
        self.scale
    }

    /// `kv_b_proj: (h * (nope + v), kv_lora)` → `W_UKᵀ (h, kv_lora, nope)` and
    /// `W_UV (h, v, kv_lora)`, each with contiguous rows for [`whale_nn::row_math::heads_matvec`]
    /// (the composed path takes their transposes as views).
    fn split_kv_b(&self) -> Result<(Tensor, Tensor)> {
        // A quantized kv_b is dequantized here without keeping the f32 copy `weight()` keeps.
        let w = match self.kv_b_proj.qmatrix() {
            Some(q) => Cow::Owned(q.dequantize_tensor(&candle_core::Device::Cpu).map_err(|e| WhaleError::InvalidInput(format!("kv_b_proj: {e}")))?),
            None => Cow::Borrowed(self.kv_b_proj.weight()),
        };
        let w = w.reshape((self.n_heads, self.nope + self.v_dim, self.kv_lora))?;
        let w_uk_t = w.narrow(1, 0, self.nope)?.transpose(1, 2)?.contiguous()?;
        let w_uv = w.narrow(1, self.nope, self.v_dim)?.contiguous()?;
        Ok((w_uk_t, w_uv))
    }

    /// `W_UKᵀ` and `W_UV`: split once at load for frozen weights, from the current Vars
    /// (so they follow training) otherwise.
    fn absorbed_weights(&self) -> Result<Cow<'_, (Tensor, Tensor)>> {
        Ok(match &self.absorbed {
            Some(w) => Cow::Borrowed(w),
            None => Cow::Owned(self.split_kv_b()?),
        })
    }

    /// `x: (T, d)` → un-roped queries `(T, h, nope + rope)`.
    fn queries(&self, x: &Tensor) -> Result<Tensor> {
        let q = match &self.q {
            QProj::Plain(p) => p.forward(x)?,
            QProj::LowRank { q_a_proj, q_a_layernorm, q_b_proj } => {
                q_b_proj.forward(&q_a_layernorm.forward(&q_a_proj.forward(x)?)?)?
            }
        };
        Ok(q.reshape((x.dim(0)?, self.n_heads, self.nope + self.rope_dim))?)
    }

    /// `x: (T, d)` → `[c_kv | k_pe (not yet roped)]`, `(T, kv_lora + rope)`.
    fn latent(&self, x: &Tensor) -> Result<Tensor> {
        let kv = self.kv_a_proj_with_mqa.forward(x)?;
        let c_kv = self.kv_a_layernorm.forward(&kv.narrow(D::Minus1, 0, self.kv_lora)?)?;
        Ok(Tensor::cat(&[&c_kv, &kv.narrow(D::Minus1, self.kv_lora, self.rope_dim)?], D::Minus1)?)
    }

    /// One segment: rope its queries and key, extend its cache, attend.
    /// `q: (n, h, qk)`, `lat: (n, kv_lora + rope)` → `(n, h * v)`, `n = batch · len`.
    fn attend_segment(&self, q: &Tensor, lat: &Tensor, seg: &Segment, cache: Option<&mut LayerCache>, track: bool) -> Result<Tensor> {
        let (b, len) = (seg.batch, seg.len);
        let q = q.reshape((b, len, self.n_heads, q.dim(2)?))?.transpose(1, 2)?; // (b, h, len, qk)
        let q_nope = q.narrow(D::Minus1, 0, self.nope)?;
        let q_pe = self.rope.apply(&q.narrow(D::Minus1, self.nope, self.rope_dim)?, &seg.rope)?;
        let c_kv = lat.narrow(D::Minus1, 0, self.kv_lora)?;
        let k_pe = lat.narrow(D::Minus1, self.kv_lora, self.rope_dim)?.reshape((b, 1, len, self.rope_dim))?;
        let k_pe = self.rope.apply(&k_pe, &seg.rope)?.reshape((b * len, self.rope_dim))?;
        let new = Tensor::cat(&[&c_kv, &k_pe], D::Minus1)?.reshape((b, len, self.kv_lora + self.rope_dim))?;
        let latent = match cache {
            Some(LayerCache::Latent { latent, .. }) => latent.append(&new)?,
            Some(LayerCache::Dense { .. }) => {
                return Err(whale_core::WhaleError::InvalidInput("MLA layer given a dense KV cache".into()))
            }
            None => new,
        };
        let absorbed = match self.mode {
            MlaMode::Naive => false,
            MlaMode::Absorbed => true,
            MlaMode::Auto => len <= ABSORB_MAX_NEW_TOKENS && !track,
        };
        let o = if absorbed {
            self.absorbed(&q_nope, &q_pe, &latent, seg.causal())?
        } else {
            self.naive(&q_nope, &q_pe, &latent, seg.causal())?
        };
        Ok(o.transpose(1, 2)?.reshape((b * len, self.n_heads * self.v_dim))?)
    }

    /// Ordinary attention over expanded keys/values. `latent: (b, L, kv_lora + rope)`.
    fn naive(&self, q_nope: &Tensor, q_pe: &Tensor, latent: &Tensor, causal: Causal) -> Result<Tensor> {
        let (b, l, _) = latent.dims3()?;
        let h = self.n_heads;
        let c_kv = latent.narrow(D::Minus1, 0, self.kv_lora)?;
        let k_pe = latent.narrow(D::Minus1, self.kv_lora, self.rope_dim)?;
        let kv = self.kv_b_proj.forward(&c_kv)?.reshape((b, l, h, self.nope + self.v_dim))?.transpose(1, 2)?;
        let k_nope = kv.narrow(D::Minus1, 0, self.nope)?;
        let v = kv.narrow(D::Minus1, self.nope, self.v_dim)?;
        let k_pe = k_pe.unsqueeze(1)?.broadcast_as((b, h, l, self.rope_dim))?;
        let k = Tensor::cat(&[&k_nope, &k_pe], D::Minus1)?;
        let q = Tensor::cat(&[q_nope, q_pe], D::Minus1)?;
        attend(&q, &k, &v, self.scale, Some(causal))
    }

    /// Attention in latent space. `latent: (b, L, kv_lora + rope)`.
    fn absorbed(&self, q_nope: &Tensor, q_pe: &Tensor, latent: &Tensor, causal: Causal) -> Result<Tensor> {
        let (b, h, t, _) = q_nope.dims4()?;
        let l = latent.dim(1)?;
        let weights = self.absorbed_weights()?;
        let (w_uk, w_uv_t) = (weights.0.transpose(1, 2)?, weights.1.transpose(1, 2)?);
        // q_nope · W_UK per head: (h, b·t, nope) × (h, nope, kv_lora).
        let q_lat = q_nope.transpose(0, 1)?.contiguous()?.reshape((h, b * t, self.nope))?.matmul(&w_uk)?;
        // Heads become rows of one GEMM per sequence: the latent is shared by all heads.
        let q_lat = q_lat.reshape((h, b, t, self.kv_lora))?.transpose(0, 1)?.contiguous()?.reshape((b, h * t, self.kv_lora))?;
        let q_pe = q_pe.contiguous()?.reshape((b, h * t, self.rope_dim))?;
        let c_kv = latent.narrow(D::Minus1, 0, self.kv_lora)?.contiguous()?;
        let k_pe = latent.narrow(D::Minus1, self.kv_lora, self.rope_dim)?.contiguous()?;
        let scores = (q_lat.matmul(&c_kv.t()?)? + q_pe.matmul(&k_pe.t()?)?)?.reshape((b, h, t, l))?;
        let p = masked_softmax(&scores, self.scale, Some(causal))?.to_dtype(c_kv.dtype())?;
        let o_lat = p.reshape((b, h * t, l))?.matmul(&c_kv)?;
        // W_UV per head: (h, b·t, kv_lora) × (h, kv_lora, v) → (b, h, t, v).
        let o_lat = o_lat.reshape((b, h, t, self.kv_lora))?.transpose(0, 1)?.contiguous()?.reshape((h, b * t, self.kv_lora))?;
        let o = o_lat.matmul(&w_uv_t)?.reshape((h, b, t, self.v_dim))?.transpose(0, 1)?;
        Ok(o)
    }
}

impl Mla {
    /// Inference through the fused kernels (`crate::decode`), decode tokens and prompt rows
    /// alike: all new tokens roped in one op, each segment's latents appended to its own
    /// cache, attention in latent space with W_UK and W_UV applied row by row, so a row's
    /// result depends only on its own keys. `q: (n, h, nope + rope)`,
    /// `lat: (n, kv_lora + rope)` → `(n, h · v)`.
    fn fused_rows(&self, q: &Tensor, lat: &Tensor, segs: &[Segment], caches: &mut [Option<&mut LayerCache>]) -> Result<Tensor> {
        let (n, h) = (q.dim(0)?, self.n_heads);
        let table = decode::rope_table(&self.rope, segs, lat)?;
        let q_nope = q.narrow(D::Minus1, 0, self.nope)?; // (n, h, nope)
        let q_pe = q.narrow(D::Minus1, self.nope, self.rope_dim)?.unsqueeze(0)?.transpose(1, 2)?; // (1, h, n, rope)
        let q_pe = self.rope.apply(&q_pe, &table)?.squeeze(0)?.transpose(0, 1)?; // (n, h, rope)
        let k_pe = lat.narrow(D::Minus1, self.kv_lora, self.rope_dim)?.reshape((1, 1, n, self.rope_dim))?;
        let k_pe = self.rope.apply(&k_pe, &table)?.reshape((n, self.rope_dim))?;
        let new = Tensor::cat(&[&lat.narrow(D::Minus1, 0, self.kv_lora)?, &k_pe], D::Minus1)?; // (n, width)
        let mut latents = Vec::with_capacity(segs.len());
        let mut spans = Vec::with_capacity(n);
        for (i, (seg, cache)) in segs.iter().zip(caches.iter_mut()).enumerate() {
            let Some(LayerCache::Latent { latent, .. }) = cache.as_deref_mut() else {
                return Err(whale_core::WhaleError::InvalidInput("MLA layer given a dense KV cache".into()));
            };
            latents.push(latent.append(&new.narrow(0, seg.start, seg.len)?.unsqueeze(0)?)?);
            spans.extend((seg.offset..seg.offset + seg.len).map(|pos| KeySpan { cache: i, first: 0, end: pos + 1 }));
        }
        let weights = self.absorbed_weights()?;
        let (w_uk_t, w_uv) = (&weights.0, &weights.1);
        let q_lat = whale_nn::row_math::heads_matvec(&q_nope, w_uk_t)?; // (n, h, kv_lora)
        let refs: Vec<&Tensor> = latents.iter().collect();
        let o_lat = fused_attention::latent(&q_lat, &q_pe, &refs, &spans, self.scale)?; // (n, h, kv_lora)
        let o = whale_nn::row_math::heads_matvec(&o_lat, w_uv)?; // (n, h, v)
        Ok(o.reshape((n, h * self.v_dim))?)
    }
}

impl Attention for Mla {
    fn forward(&self, x: &Tensor, segs: &[Segment], caches: &mut [Option<&mut LayerCache>]) -> Result<Tensor> {
        // Down/up projections over all tokens at once; attention per sequence.
        let q = self.queries(x)?;
        let lat = self.latent(x)?;
        // Inference takes the fused kernels for every row (W_UK / W_UV split once at load for
        // a checkpoint's frozen weights); MlaMode::Naive keeps the composed expansion.
        if self.mode != MlaMode::Naive && decode::applies(x, segs, caches) {
            return self.o_proj.forward(&self.fused_rows(&q, &lat, segs, caches)?);
        }
        let track = x.track_op();
        let o = per_segment(segs, caches, |seg, cache| {
            let q = q.narrow(0, seg.start, seg.batch * seg.len)?;
            let lat = lat.narrow(0, seg.start, seg.batch * seg.len)?;
            self.attend_segment(&q, &lat, seg, cache, track)
        })?;
        self.o_proj.forward(&o)
    }

    fn new_cache(&self) -> LayerCache {
        LayerCache::latent(self.kv_lora + self.rope_dim)
    }
}
