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

use crate::block::{Attention, AttnCtx};
use candle_core::{Tensor, D};
use whale_core::config::DeepSeekConfig;
use whale_core::{Result, Weights};
use whale_nn::attention::{attend, masked_softmax};
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
    /// Per-head `W_UK: (h, nope, kv_lora)` and `W_UVᵀ: (h, kv_lora, v)`, split out of
    /// `kv_b_proj` once at load for frozen weights (recomputed per call when training).
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

    /// `kv_b_proj: (h * (nope + v), kv_lora)` → `W_UK (h, nope, kv_lora)`, `W_UVᵀ (h, kv_lora, v)`.
    fn split_kv_b(&self) -> Result<(Tensor, Tensor)> {
        let w = self.kv_b_proj.weight().reshape((self.n_heads, self.nope + self.v_dim, self.kv_lora))?;
        let w_uk = w.narrow(1, 0, self.nope)?.contiguous()?;
        let w_uv_t = w.narrow(1, self.nope, self.v_dim)?.transpose(1, 2)?.contiguous()?;
        Ok((w_uk, w_uv_t))
    }

    /// `x: (b, t, d)` → queries `(b, h, t, nope)` and roped `(b, h, t, rope)`.
    fn queries(&self, x: &Tensor, ctx: &AttnCtx) -> Result<(Tensor, Tensor)> {
        let (b, t, _) = x.dims3()?;
        let q = match &self.q {
            QProj::Plain(p) => p.forward(x)?,
            QProj::LowRank { q_a_proj, q_a_layernorm, q_b_proj } => {
                q_b_proj.forward(&q_a_layernorm.forward(&q_a_proj.forward(x)?)?)?
            }
        };
        let q = q.reshape((b, t, self.n_heads, self.nope + self.rope_dim))?.transpose(1, 2)?;
        let q_nope = q.narrow(D::Minus1, 0, self.nope)?;
        let q_pe = self.rope.apply(&q.narrow(D::Minus1, self.nope, self.rope_dim)?, &ctx.rope)?;
        Ok((q_nope, q_pe))
    }

    /// `x: (b, t, d)` → this step's latent rows `(b, t, kv_lora + rope)` = `[c_kv | k_pe]`.
    fn latent(&self, x: &Tensor, ctx: &AttnCtx) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let kv = self.kv_a_proj_with_mqa.forward(x)?;
        let c_kv = self.kv_a_layernorm.forward(&kv.narrow(D::Minus1, 0, self.kv_lora)?)?;
        let k_pe = kv.narrow(D::Minus1, self.kv_lora, self.rope_dim)?.reshape((b, 1, t, self.rope_dim))?;
        let k_pe = self.rope.apply(&k_pe, &ctx.rope)?.reshape((b, t, self.rope_dim))?;
        Ok(Tensor::cat(&[&c_kv, &k_pe], D::Minus1)?)
    }

    /// Ordinary attention over expanded keys/values. `latent: (b, L, kv_lora + rope)`.
    fn naive(&self, q_nope: &Tensor, q_pe: &Tensor, latent: &Tensor, ctx: &AttnCtx) -> Result<Tensor> {
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
        attend(&q, &k, &v, self.scale, ctx.mask.as_ref())
    }

    /// Attention in latent space. `latent: (b, L, kv_lora + rope)`.
    fn absorbed(&self, q_nope: &Tensor, q_pe: &Tensor, latent: &Tensor, ctx: &AttnCtx) -> Result<Tensor> {
        let (b, h, t, _) = q_nope.dims4()?;
        let l = latent.dim(1)?;
        let owned;
        let (w_uk, w_uv_t) = match &self.absorbed {
            Some((a, b)) => (a, b),
            None => {
                owned = self.split_kv_b()?;
                (&owned.0, &owned.1)
            }
        };
        // q_nope · W_UK per head: (h, b·t, nope) × (h, nope, kv_lora).
        let q_lat = q_nope.transpose(0, 1)?.contiguous()?.reshape((h, b * t, self.nope))?.matmul(w_uk)?;
        // Heads become rows of one GEMM per sequence: the latent is shared by all heads.
        let q_lat = q_lat.reshape((h, b, t, self.kv_lora))?.transpose(0, 1)?.contiguous()?.reshape((b, h * t, self.kv_lora))?;
        let q_pe = q_pe.contiguous()?.reshape((b, h * t, self.rope_dim))?;
        let c_kv = latent.narrow(D::Minus1, 0, self.kv_lora)?.contiguous()?;
        let k_pe = latent.narrow(D::Minus1, self.kv_lora, self.rope_dim)?.contiguous()?;
        let scores = (q_lat.matmul(&c_kv.t()?)? + q_pe.matmul(&k_pe.t()?)?)?.reshape((b, h, t, l))?;
        let p = masked_softmax(&scores, self.scale, ctx.mask.as_ref())?.to_dtype(c_kv.dtype())?;
        let o_lat = p.reshape((b, h * t, l))?.matmul(&c_kv)?;
        // W_UV per head: (h, b·t, kv_lora) × (h, kv_lora, v) → (b, h, t, v).
        let o_lat = o_lat.reshape((b, h, t, self.kv_lora))?.transpose(0, 1)?.contiguous()?.reshape((h, b * t, self.kv_lora))?;
        let o = o_lat.matmul(w_uv_t)?.reshape((h, b, t, self.v_dim))?.transpose(0, 1)?;
        Ok(o)
    }
}

impl Attention for Mla {
    fn forward(&self, x: &Tensor, ctx: &AttnCtx, cache: Option<&mut LayerCache>) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (q_nope, q_pe) = self.queries(x, ctx)?;
        let new = self.latent(x, ctx)?;
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
            MlaMode::Auto => t <= ABSORB_MAX_NEW_TOKENS && !x.track_op(),
        };
        let o = if absorbed {
            self.absorbed(&q_nope, &q_pe, &latent, ctx)?
        } else {
            self.naive(&q_nope, &q_pe, &latent, ctx)?
        };
        let o = o.transpose(1, 2)?.reshape((b, t, self.n_heads * self.v_dim))?;
        self.o_proj.forward(&o)
    }

    fn new_cache(&self) -> LayerCache {
        LayerCache::latent(self.kv_lora + self.rope_dim)
    }
}
