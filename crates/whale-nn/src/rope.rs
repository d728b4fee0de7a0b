//! Rotary position embeddings with the frequency scalings of the supported families:
//! YaRN (DeepSeek-V2/V3, arXiv 2309.00071 as implemented by transformers'
//! `_compute_yarn_parameters`), Llama 3 (R1-Distill-Llama) and linear interpolation.
//!
//! Two layouts rotate different pairs: `Interleaved` rotates `(x[2i], x[2i+1])` (DeepSeek's
//! complex-number form), `Halves` rotates `(x[i], x[i + d/2])` (Llama/Qwen2 `rotate_half`).

use crate::Result;
use candle_core::{DType, Device, Tensor};
use whale_core::config::RopeScaling;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    Interleaved,
    Halves,
}

#[derive(Debug, Clone)]
pub struct Rope {
    inv_freq: Vec<f32>,
    /// Multiplier of cos/sin (YaRN's `mscale / mscale_all_dim`; 1 otherwise).
    attention_factor: f64,
    layout: RopeLayout,
}

/// cos/sin for a run of positions: each `(t, dim/2)`, in the model dtype.
#[derive(Debug, Clone)]
pub struct RopeTable {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// `dim`: the rotated width per head.
    pub fn new(dim: usize, theta: f64, scaling: Option<&RopeScaling>, layout: RopeLayout) -> Self {
        let half = dim / 2;
        // Base frequencies as transformers computes them: theta^(-2i/dim) in f32.
        let base: Vec<f64> = (0..half).map(|i| 1.0 / theta.powf((2 * i) as f64 / dim as f64)).collect();
        let (inv_freq, attention_factor) = match scaling {
            None => (base, 1.0),
            Some(RopeScaling::Linear { factor }) => (base.iter().map(|f| f / factor).collect(), 1.0),
            Some(RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings }) => {
                let old = *original_max_position_embeddings as f64;
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                let f = base
                    .iter()
                    .map(|&freq| {
                        let wavelen = 2.0 * std::f64::consts::PI / freq;
                        if wavelen < high_wavelen {
                            freq
                        } else if wavelen > low_wavelen {
                            freq / factor
                        } else {
                            let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * freq / factor + smooth * freq
                        }
                    })
                    .collect();
                (f, 1.0)
            }
            Some(RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
                mscale,
                mscale_all_dim,
            }) => {
                let orig = *original_max_position_embeddings as f64;
                // The dimension index at which a frequency completes `rotations` turns over
                // the original context.
                let correction_dim = |rotations: f64| {
                    dim as f64 * (orig / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * theta.ln())
                };
                let low = correction_dim(*beta_fast).floor().max(0.0);
                let high = correction_dim(*beta_slow).ceil().min(dim as f64 - 1.0);
                let high = if low == high { high + 0.001 } else { high };
                let f = base
                    .iter()
                    .enumerate()
                    .map(|(i, &freq)| {
                        // ramp 0 → keep (extrapolate), 1 → divide by factor (interpolate).
                        let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                        freq / factor * ramp + freq * (1.0 - ramp)
                    })
                    .collect();
                let get = |m: f64| if *factor <= 1.0 { 1.0 } else { 0.1 * m * factor.ln() + 1.0 };
                let attention_factor =
                    if *mscale != 0.0 && *mscale_all_dim != 0.0 { get(*mscale) / get(*mscale_all_dim) } else { get(1.0) };
                (f, attention_factor)
            }
        };
        Self { inv_freq: inv_freq.into_iter().map(|f| f as f32).collect(), attention_factor, layout }
    }

    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    pub fn attention_factor(&self) -> f64 {
        self.attention_factor
    }

    /// cos/sin for positions `offset..offset + t`, computed in f32 (angle = pos · inv_freq, as
    /// transformers does) and cast to `dtype`.
    pub fn table(&self, offset: usize, t: usize, dtype: DType, device: &Device) -> Result<RopeTable> {
        self.table_for(offset..offset + t, t, dtype, device)
    }

    /// cos/sin rows for the given positions, one row each: the table that ropes the new
    /// tokens of many sequences, each at its own position, in one op (batched decoding).
    pub fn table_at(&self, positions: &[usize], dtype: DType, device: &Device) -> Result<RopeTable> {
        self.table_for(positions.iter().copied(), positions.len(), dtype, device)
    }

    fn table_for(&self, positions: impl Iterator<Item = usize>, t: usize, dtype: DType, device: &Device) -> Result<RopeTable> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(t * half);
        let mut sin = Vec::with_capacity(t * half);
        let scale = self.attention_factor as f32;
        for pos in positions {
            for &f in &self.inv_freq {
                let angle = pos as f32 * f;
                cos.push(angle.cos() * scale);
                sin.push(angle.sin() * scale);
            }
        }
        let cos = Tensor::from_vec(cos, (t, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (t, half), device)?.to_dtype(dtype)?;
        Ok(RopeTable { cos, sin })
    }

    /// Rotates `x: (b, heads, t, dim)`; returns the same shape and layout.
    pub fn apply(&self, x: &Tensor, table: &RopeTable) -> Result<Tensor> {
        let x = x.contiguous()?;
        // The fused kernels have no backward pass; the composed ones do (training).
        let out = match (self.layout, x.track_op()) {
            (RopeLayout::Interleaved, false) => candle_nn::rotary_emb::rope_i(&x, &table.cos, &table.sin)?,
            (RopeLayout::Interleaved, true) => candle_nn::rotary_emb::rope_i_slow(&x, &table.cos, &table.sin)?,
            (RopeLayout::Halves, false) => candle_nn::rotary_emb::rope(&x, &table.cos, &table.sin)?,
            (RopeLayout::Halves, true) => candle_nn::rotary_emb::rope_slow(&x, &table.cos, &table.sin)?,
        };
        Ok(out)
    }
}
