//! Rotary position embeddings with the frequency scalings of the supported families:
//! YaRN (DeepSeek-V2/V3, arXiv 2309.00071 as implemented by transformers'
//! `_compute_yarn_parameters`), Llama 3 (R1-Distill-Llama) and linear interpolation.
//!
//! Two layouts rotate different pairs: `Interleaved` rotates `(x[2i], x[2i+1])` (DeepSeek's
//! complex-number form), `Halves` rotates `(x[i], x[i + d/2])` (Llama/Qwen2 `rotate_half`).

use crate::Result;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::row_math::contiguous_slice;
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
        // candle's fused kernels have no backward pass: tracked f32 tensors take ours, other
        // tracked dtypes the composed forms.
        if x.track_op() && x.dtype() == DType::F32 {
            return tracked_rope(&x, table, self.layout);
        }
        let out = match (self.layout, x.track_op()) {
            (RopeLayout::Interleaved, false) => candle_nn::rotary_emb::rope_i(&x, &table.cos, &table.sin)?,
            (RopeLayout::Interleaved, true) => candle_nn::rotary_emb::rope_i_slow(&x, &table.cos, &table.sin)?,
            (RopeLayout::Halves, false) => candle_nn::rotary_emb::rope(&x, &table.cos, &table.sin)?,
            (RopeLayout::Halves, true) => candle_nn::rotary_emb::rope_slow(&x, &table.cos, &table.sin)?,
        };
        Ok(out)
    }
}

/// RoPE over `x: (b, h, t, d)` f32 as one op whose backward is the inverse rotation (the
/// same op with `-sin`): the composed form is about six ops forward (narrows, negation,
/// concatenation, two products, a sum) and as many backward.
fn tracked_rope(x: &Tensor, table: &RopeTable, layout: RopeLayout) -> Result<Tensor> {
    let (_, _, t, d) = x.dims4()?;
    let (tt, half) = table.cos.dims2()?;
    if tt != t || 2 * half != d {
        return Err(crate::WhaleError::InvalidInput(format!(
            "RoPE table ({tt}, {half}) does not fit input {:?} (want ({t}, {}))",
            x.dims(),
            d / 2
        )));
    }
    let data = |v: &Tensor| v.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>();
    let op = RopeOp { cos: data(&table.cos)?.into(), sin: data(&table.sin)?.into(), t, half, layout, inverse: false };
    Ok(x.apply_op1(op)?)
}

#[derive(Clone)]
struct RopeOp {
    cos: std::sync::Arc<[f32]>,
    sin: std::sync::Arc<[f32]>,
    t: usize,
    half: usize,
    layout: RopeLayout,
    /// Rotate by `-angle` (the backward).
    inverse: bool,
}

impl RopeOp {
    fn rotate(&self, x: &[f32]) -> Vec<f32> {
        let (d, half) = (2 * self.half, self.half);
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut y = vec![0f32; x.len()];
        let rows_per_task = (4096 / d).max(1);
        y.par_chunks_mut(d * rows_per_task).zip(x.par_chunks(d * rows_per_task)).enumerate().for_each(|(task, (ys, xs))| {
            for (r, (yr, xr)) in ys.chunks_mut(d).zip(xs.chunks(d)).enumerate() {
                let pos = (task * rows_per_task + r) % self.t;
                let (c, s) = (&self.cos[pos * half..][..half], &self.sin[pos * half..][..half]);
                for j in 0..half {
                    let (cj, sj) = (c[j], sign * s[j]);
                    let (a, b) = match self.layout {
                        RopeLayout::Halves => (j, j + half),
                        RopeLayout::Interleaved => (2 * j, 2 * j + 1),
                    };
                    yr[a] = xr[a] * cj - xr[b] * sj;
                    yr[b] = xr[b] * cj + xr[a] * sj;
                }
            }
        });
        y
    }
}

impl CustomOp1 for RopeOp {
    fn name(&self) -> &'static str {
        "whale-rope"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_slice::<f32>(storage, layout, "RoPE input")?;
        Ok((CpuStorage::F32(self.rotate(x)), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let inverse = RopeOp { inverse: !self.inverse, ..self.clone() };
        Ok(Some(grad.to_dtype(DType::F32)?.contiguous()?.apply_op1_no_bwd(&inverse)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// Our tracked op against candle's composed RoPE, forward and backward, both layouts.
    #[test]
    fn tracked_rope_matches_the_composed_form() {
        let dev = Device::Cpu;
        let (b, h, t, d) = (2, 3, 5, 8);
        let rope = |layout| Rope { inv_freq: vec![1.0, 0.3, 0.07, 0.01], attention_factor: 1.2, layout };
        let n = b * h * t * d;
        let x = Var::from_vec((0..n).map(|i| (i as f32 * 0.37).sin()).collect(), (b, h, t, d), &dev).unwrap();
        let g = Tensor::from_vec((0..n).map(|i| (i as f32 * 0.91).cos()).collect(), (b, h, t, d), &dev).unwrap();
        for layout in [RopeLayout::Halves, RopeLayout::Interleaved] {
            let r = rope(layout);
            let table = r.table(7, t, DType::F32, &dev).unwrap();
            let ours = r.apply(x.as_tensor(), &table).unwrap();
            let theirs = match layout {
                RopeLayout::Halves => candle_nn::rotary_emb::rope_slow(x.as_tensor(), &table.cos, &table.sin).unwrap(),
                RopeLayout::Interleaved => candle_nn::rotary_emb::rope_i_slow(x.as_tensor(), &table.cos, &table.sin).unwrap(),
            };
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let diff = |a: &Tensor, b: &Tensor| flat(a).iter().zip(flat(b)).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(diff(&ours, &theirs) < 1e-6, "{layout:?} forward");
            let ga = (&ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (&theirs * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let dg = diff(ga.get(x.as_tensor()).unwrap(), gb.get(x.as_tensor()).unwrap());
            assert!(dg < 1e-6, "{layout:?} backward differs by {dg}");
        }
    }
}
