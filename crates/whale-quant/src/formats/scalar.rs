//! Scalar conversions shared by the block formats, bit-exact with ggml.
//!
//! `nearest_int` is ggml's magic-number rounding (round half to even, valid for |x| < 2^22);
//! `roundf` is C's `roundf` (half away from zero), which ggml's Q8_0 reference quantizer uses.
//! Half-precision conversions round to nearest even, like `GGML_FP32_TO_FP16` and numpy.

use half::f16;

/// ggml's `nearest_int`: adds 1.5 * 2^23 so the FPU rounds (half to even) into the mantissa.
#[inline]
pub(crate) fn nearest_int(v: f32) -> i32 {
    let val = v + 12_582_912.0f32;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// C `roundf`: rounds half away from zero (Rust's `f32::round` has exactly that rule).
#[inline]
pub(crate) fn roundf(v: f32) -> f32 {
    v.round()
}

#[inline]
pub(crate) fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

#[inline]
pub(crate) fn put_f16(b: &mut [u8], off: usize, v: f32) {
    b[off..off + 2].copy_from_slice(&f16::from_f32(v).to_bits().to_le_bytes());
}

