//! `exp` over a whole logits row, and its sum, fast and bit-identical on every platform.
//!
//! Why not `f32::exp`: it calls the platform's libm, one element at a time (~5 ns each, most
//! of the sampler's time at a 150k vocabulary), and libms may round differently, which would
//! make a seeded draw near a cumulative boundary platform-dependent. This is Cephes' `expf`
//! (Cody–Waite reduction by ln 2 and a degree-5 minimax polynomial, ≤ 2 ulp), written with
//! plain IEEE `+ - ×` (Rust never fuses them into FMAs implicitly) and a branch-free body,
//! so it is reproducible bit for bit and the compiler vectorizes the loop.
//!
//! Domain: the sampler, softmax and cross-entropy only exponentiate `x - max ≤ 0`.
//! Arguments below ln of the smallest normal f32 (≈ -87.34), including -inf and NaN, give 0:
//! such a token is 1e-38 times less likely than the top one, and flushing subnormals keeps
//! the code simple.

/// Below this `exp` is subnormal (or 0): the result is flushed to 0.
const MIN_ARG: f32 = -87.336_55;
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n × LN2_HI` is exact for |n| ≤ 2^10 (Cody–Waite).
const LN2_HI: f32 = 0.693_359_4; // = 0.693359375 exactly
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5 × 2^23 rounds an f32 of magnitude < 2^22 to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `exp(x)` for `x ≤ 0`; 0 for `x < -87.34`, -inf and NaN. Positive inputs are clamped to 0
/// (result 1): callers never pass them. Written with compare-selects only (no `f32::min`, no
/// float→int cast) so that the loop over a row vectorizes.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    // Clamp first so that every lane computes something finite (NaN and -inf → MIN_ARG).
    let c = if x >= MIN_ARG { x } else { MIN_ARG };
    let c = if c < 0.0 { c } else { 0.0 };
    // n = round(c / ln 2), read off the bits of the magic sum (an exact small integer).
    let shifted = c * LOG2E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let r = c - n * LN2_HI - n * LN2_LO;
    let z = r * r;
    // Cephes' coefficients, written as the shortest literals of the same f32 values.
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_6e-1)
        * r
        + 0.5;
    let y = p * z + r + 1.0;
    // 2^n by building the exponent field; n ∈ [-126, 0] so the result is a normal number.
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let scale = f32::from_bits((n_int.wrapping_add(127) as u32) << 23);
    let keep = if x >= MIN_ARG { 1.0 } else { 0.0 };
    y * scale * keep
}

/// Writes `exp(x)` of every element of `xs` into `out` (resized to match) and returns their
/// sum, accumulated in f64 over eight fixed lanes (a fixed order, so the sum is reproducible).
pub fn exp_row(xs: &[f32], out: &mut Vec<f32>) -> f64 {
    out.resize(xs.len(), 0.0);
    for (o, &x) in out.iter_mut().zip(xs) {
        *o = exp_nonpositive(x);
    }
    sum_f64(out)
}

/// Replaces each `x` of `xs` by `exp(x - shift)` (`shift` at least every `x`: a row's max)
/// and returns their sum as [`exp_row`] does.
pub fn exp_shifted_in_place(xs: &mut [f32], shift: f32) -> f64 {
    xs.iter_mut().for_each(|x| *x = exp_nonpositive(*x - shift));
    sum_f64(xs)
}

/// The largest element (NaNs ignored; -inf for an empty or all-NaN slice), over eight lanes so
/// that it vectorizes.
pub fn max_f32(xs: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = if x > *lane { x } else { *lane };
        }
    }
    lanes.iter().chain(rest).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// Sum in f64 over eight interleaved lanes, then the lanes in order, then the remainder.
pub fn sum_f64(xs: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += f64::from(x);
        }
    }
    lanes.iter().sum::<f64>() + rest.iter().map(|&x| f64::from(x)).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_f64_exp_within_two_ulp() {
        let mut worst = 0.0f64;
        let mut x = -87.3f32;
        while x <= 0.0 {
            let got = f64::from(exp_nonpositive(x));
            let want = f64::from(x).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_37;
        }
        // One f32 ulp is 2^-23 ≈ 1.19e-7 relative at most.
        assert!(worst < 2.0 * 1.19e-7, "worst relative error {worst:e}");
    }

    #[test]
    fn exact_at_zero_and_flushes_below_range() {
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-0.0), 1.0);
        assert_eq!(exp_nonpositive(-88.0), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(f32::NAN), 0.0);
        assert!(exp_nonpositive(-87.3) > 0.0);
        assert_eq!(exp_nonpositive(5.0), 1.0, "positive inputs clamp to 0");
    }

    #[test]
    fn max_ignores_nan() {
        assert_eq!(max_f32(&[1.0, f32::NAN, 3.0, -2.0]), 3.0);
        let mut v: Vec<f32> = (0..19).map(|i| i as f32).collect();
        v[3] = f32::INFINITY;
        assert_eq!(max_f32(&v), f32::INFINITY);
        assert_eq!(max_f32(&[f32::NAN]), f32::NEG_INFINITY);
        assert_eq!(max_f32(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn row_and_sum() {
        let xs: Vec<f32> = (0..21).map(|i| -(i as f32) * 0.5).collect();
        let mut out = Vec::new();
        let total = exp_row(&xs, &mut out);
        let want: f64 = xs.iter().map(|&x| f64::from(x).exp()).sum();
        assert_eq!(out.len(), 21);
        assert!((total - want).abs() < 1e-6);
        assert_eq!(sum_f64(&[]), 0.0);
    }
}
