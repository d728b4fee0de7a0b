//! FP8 E4M3 block quantization as DeepSeek-V3 trains with it (V3 §3.3.2, README_WEIGHTS.md):
//! activations in 1x128 tiles (per token per 128 channels), weights in 128x128 blocks, each
//! group scaled by its own online absmax so that `amax / scale = 448` (E4M3's largest finite
//! value). Edge tiles/blocks that are narrower than 128 are scaled over what they hold.
//!
//! E4M3 here is the "fn" variant (OCP FP8, `torch.float8_e4m3fn`): 1 sign, 4 exponent bits
//! (bias 7), 3 mantissa bits, no infinities, max 448, subnormals down to 2^-9. Rounding is
//! to nearest, ties to even, saturating at ±448 (what the H800 cast does with `satfinite`).
//!
//! The `*_qdq` functions quantize and immediately dequantize in place, which is what a CPU
//! simulation of FP8 GEMMs needs: the GEMM then runs on the rounded values with f32
//! accumulation (the V3 recipe promotes partial sums to FP32 every 128 K-elements; exact
//! f32 accumulation is the limit of that).

use rayon::prelude::*;
/// The group width of activation tiles and the side of weight blocks.
pub const BLOCK: usize = 128;

/// E4M3's largest finite magnitude.
pub const E4M3_MAX: f32 = 448.0;

/// Rounds `x` to the nearest E4M3 value (ties to even), saturating at ±448; NaN stays NaN.
/// On the f32 bits: normal E4M3 values keep 3 of f32's 23 mantissa bits (round to nearest
/// even on the dropped 20); below 2^-6 the quantum is fixed at 2^-9 (subnormals), where
/// adding and subtracting 2^14 rounds to a multiple of it, ties to even, exactly.
#[inline]
pub fn round_e4m3(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs().min(E4M3_MAX);
    let r = if a < 0.015_625 {
        (a + 16_384.0) - 16_384.0
    } else {
        let b = a.to_bits();
        f32::from_bits((b + 0x7_FFFF + ((b >> 20) & 1)) & !0xF_FFFF)
    };
    r.copysign(x)
}

/// The E4M3 bit pattern of `x` (after [`round_e4m3`]).
pub fn e4m3_encode(x: f32) -> u8 {
    let sign = if x.is_sign_negative() { 0x80u8 } else { 0 };
    if x.is_nan() {
        return 0x7f;
    }
    let a = round_e4m3(x).abs();
    if a == 0.0 {
        return sign;
    }
    let e = a.log2().floor() as i32;
    if e < -6 {
        // Subnormal: value = m · 2^-9, m in 1..=7.
        return sign | (a / (2.0f32).powi(-9)).round() as u8;
    }
    let mant = ((a / (2.0f32).powi(e) - 1.0) * 8.0).round() as u8;
    sign | (((e + 7) as u8) << 3) | mant
}

/// The value of an E4M3 bit pattern (0x7f / 0xff are NaN).
pub fn e4m3_decode(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let exp = ((b >> 3) & 0x0f) as i32;
    let mant = (b & 0x07) as f32;
    if exp == 0x0f && b & 0x07 == 0x07 {
        return f32::NAN;
    }
    let mag = if exp == 0 { mant * (2.0f32).powi(-9) } else { (1.0 + mant / 8.0) * (2.0f32).powi(exp - 7) };
    sign * mag
}

/// The scale of a group whose absmax is `amax`: values are divided by it before the cast.
fn group_scale(amax: f32) -> f32 {
    if amax > 0.0 && amax.is_finite() {
        amax / E4M3_MAX
    } else {
        1.0
    }
}

/// FP8 values with one f32 scale per group (`value ≈ e4m3_decode(data[i]) * scale`).
#[derive(Debug, Clone, PartialEq)]
pub struct Fp8Blocks {
    pub rows: usize,
    pub cols: usize,
    /// E4M3 bit patterns, row-major.
    pub data: Vec<u8>,
    /// Activations: `rows × ceil(cols/128)`; weights: `ceil(rows/128) × ceil(cols/128)`.
    pub scales: Vec<f32>,
    /// Whether groups are 128x128 blocks (weights) or 1x128 tiles (activations).
    pub weight_blocks: bool,
}

impl Fp8Blocks {
    /// Quantizes a row-major `rows × cols` activation in 1x128 tiles.
    pub fn quantize_activation(x: &[f32], rows: usize, cols: usize) -> Self {
        Self::quantize(x, rows, cols, 1)
    }

    /// Quantizes a row-major `rows × cols` weight in 128x128 blocks.
    pub fn quantize_weight(w: &[f32], rows: usize, cols: usize) -> Self {
        Self::quantize(w, rows, cols, BLOCK)
    }

    fn quantize(x: &[f32], rows: usize, cols: usize, block_rows: usize) -> Self {
        assert_eq!(x.len(), rows * cols, "Fp8Blocks: buffer is not rows × cols");
        let scales = group_scales(x, rows, cols, block_rows);
        let col_groups = cols.div_ceil(BLOCK);
        let mut data = Vec::with_capacity(x.len());
        for r in 0..rows {
            for c in 0..cols {
                let s = scales[(r / block_rows) * col_groups + c / BLOCK];
                data.push(e4m3_encode(x[r * cols + c] / s));
            }
        }
        Fp8Blocks { rows, cols, data, scales, weight_blocks: block_rows == BLOCK }
    }

    /// The f32 values the FP8 data stands for.
    pub fn dequantize(&self) -> Vec<f32> {
        let block_rows = if self.weight_blocks { BLOCK } else { 1 };
        let col_groups = self.cols.div_ceil(BLOCK);
        let mut out = Vec::with_capacity(self.data.len());
        for r in 0..self.rows {
            for c in 0..self.cols {
                let s = self.scales[(r / block_rows) * col_groups + c / BLOCK];
                out.push(e4m3_decode(self.data[r * self.cols + c]) * s);
            }
        }
        out
    }
}

/// One absmax scale per `block_rows × 128` group.
fn group_scales(x: &[f32], rows: usize, cols: usize, block_rows: usize) -> Vec<f32> {
    let col_groups = cols.div_ceil(BLOCK);
    let row_groups = rows.div_ceil(block_rows);
    let mut amax = vec![0f32; row_groups * col_groups];
    if cols == 0 {
        return amax;
    }
    amax.par_chunks_mut(col_groups).zip(x.par_chunks(block_rows * cols)).for_each(|(amax, group)| {
        for row in group.chunks(cols) {
            for (m, tile) in amax.iter_mut().zip(row.chunks(BLOCK)) {
                *m = tile.iter().fold(*m, |m, v| m.max(v.abs()));
            }
        }
    });
    amax.into_iter().map(group_scale).collect()
}

/// Quantize-dequantize in place with 1x128 activation tiles (what the FP8 GEMM sees).
pub fn activation_qdq(x: &mut [f32], rows: usize, cols: usize) {
    qdq(x, rows, cols, 1)
}

/// Quantize-dequantize in place with 128x128 weight blocks.
pub fn weight_qdq(w: &mut [f32], rows: usize, cols: usize) {
    qdq(w, rows, cols, BLOCK)
}

fn qdq(x: &mut [f32], rows: usize, cols: usize, block_rows: usize) {
    assert_eq!(x.len(), rows * cols, "fp8 qdq: buffer is not rows × cols");
    if x.is_empty() {
        return;
    }
    let scales = group_scales(x, rows, cols, block_rows);
    let col_groups = cols.div_ceil(BLOCK);
    // Row groups are independent: one task each (the activations of a training batch are
    // thousands of rows).
    x.par_chunks_mut(block_rows * cols).zip(scales.par_chunks(col_groups)).for_each(|(group, scales)| {
        for row in group.chunks_mut(cols) {
            for (tile, &s) in row.chunks_mut(BLOCK).zip(scales) {
                tile.iter_mut().for_each(|v| *v = round_e4m3(*v / s) * s);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: the nearest multiple of the quantum `2^(e - 3)` of `x`'s binade
    /// (`e ≥ -6`), ties to even, saturating at 448.
    fn round_e4m3_reference(x: f32) -> f32 {
        if x.is_nan() || x == 0.0 {
            return x;
        }
        let a = x.abs().min(E4M3_MAX);
        let e = a.log2().floor().max(-6.0) as i32;
        let quantum = (2.0f32).powi(e - 3);
        let q = a / quantum;
        let r = q.round();
        let r = if (q - q.trunc() - 0.5).abs() == 0.0 && r % 2.0 != 0.0 { r - 1.0 } else { r };
        (r * quantum).min(E4M3_MAX).copysign(x)
    }

    #[test]
    fn bit_rounding_equals_the_definition() {
        // Every E4M3 value, the midpoints between neighbours (ties), and a dense sweep.
        let mut xs: Vec<f32> = (0u8..=255).map(e4m3_decode).filter(|v| !v.is_nan()).collect();
        let mut sorted: Vec<f32> = xs.iter().copied().filter(|v| *v >= 0.0).collect();
        sorted.sort_by(f32::total_cmp);
        xs.extend(sorted.windows(2).map(|w| (w[0] + w[1]) / 2.0));
        let mut v = 1e-5f32;
        while v < 600.0 {
            xs.push(v);
            v *= 1.000_37;
        }
        xs.extend([0.0, -0.0, 448.0, 460.0, 464.0, 1e9, f32::INFINITY]);
        for x in xs {
            for x in [x, -x] {
                let (got, want) = (round_e4m3(x), round_e4m3_reference(x));
                assert!(got == want && got.is_sign_negative() == want.is_sign_negative(), "{x}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn encode_decode_agree_on_every_finite_pattern() {
        for b in 0u8..=255 {
            let v = e4m3_decode(b);
            if v.is_nan() {
                continue;
            }
            assert_eq!(round_e4m3(v), v, "pattern {b:#04x} = {v} is not a fixed point");
            let back = e4m3_encode(v);
            // ±0 both decode to 0.
            assert_eq!(e4m3_decode(back), v, "pattern {b:#04x}");
        }
        assert_eq!(e4m3_decode(0x7e), 448.0);
        assert_eq!(e4m3_decode(0x01), (2.0f32).powi(-9));
        assert_eq!(round_e4m3(1000.0), 448.0);
        assert_eq!(round_e4m3(-1000.0), -448.0);
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        // Between 1.0 and 1.125 (quantum 1/8): the midpoint 1.0625 goes to the even 1.0.
        assert_eq!(round_e4m3(1.0625), 1.0);
        // 1.1875 is the midpoint of 1.125 (odd mantissa 1) and 1.25 (even 2).
        assert_eq!(round_e4m3(1.1875), 1.25);
        assert_eq!(round_e4m3(1.07), 1.125);
    }

    /// A deterministic spread of magnitudes over several decades, both signs.
    fn values(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i as f32 * 0.37).sin() * 3.0) * (1.0 + (i % 17) as f32)).collect()
    }

    #[test]
    fn weight_block_round_trips_within_e4m3_relative_error() {
        let (rows, cols) = (130, 200); // edge blocks narrower than 128 on both axes
        let w = values(rows * cols);
        let q = Fp8Blocks::quantize_weight(&w, rows, cols);
        assert_eq!(q.scales.len(), 2 * 2);
        let back = q.dequantize();
        let mut qdq = w.clone();
        weight_qdq(&mut qdq, rows, cols);
        for (i, ((&x, &y), &z)) in w.iter().zip(&back).zip(&qdq).enumerate() {
            assert_eq!(y, z, "dequantize and qdq disagree at {i}");
            let s = q.scales[(i / cols / BLOCK) * 2 + (i % cols) / BLOCK];
            // Normal range: relative error at most half a quantum, 2^-4. Values that land
            // in the subnormal range (tiny next to their block's absmax) have an absolute
            // error of at most 2^-10 · scale.
            let tol = (x.abs() * (2.0f32).powi(-4)).max(s * (2.0f32).powi(-10)) * 1.0001;
            assert!((x - y).abs() <= tol, "at {i}: {x} -> {y} (tol {tol})");
        }
    }

    #[test]
    fn activation_tiles_scale_per_row() {
        let (rows, cols) = (3, 256);
        let mut x = values(rows * cols);
        x[0] = 1e4; // one outlier only widens its own tile
        let q = Fp8Blocks::quantize_activation(&x, rows, cols);
        assert_eq!(q.scales.len(), rows * 2);
        assert_eq!(q.scales[0], 1e4 / E4M3_MAX);
        assert!(q.scales[1] < 1.0);
        let back = q.dequantize();
        for (a, b) in x.iter().zip(&back).skip(BLOCK) {
            assert!((a - b).abs() <= a.abs() * 0.0626 + 1e-3, "{a} -> {b}");
        }
    }
}
