//! 8-bit activation blocks for the integer dot products (llama.cpp's `block_q8_0`/`q8_1` and
//! `block_q8_K`, kept in memory only, so scales are f32 rather than f16).
//!
//! Why: multiplying 4-6 bit weights with 8-bit activations lets the kernels sum integer
//! products (`vpmaddubsw`/`vpmaddwd`) and apply the float scales once per sub-block, which is
//! what makes llama.cpp's CPU matmuls fast. Quantizing an activation row costs O(cols); the
//! matmul reads it once per weight row.

use crate::formats::scalar::nearest_int;

/// 32 activations: `x ≈ d * qs`, `s = d * Σ qs` (for the minimum term of Q4_1/Q5_1), and
/// `sum = Σ qs` exactly (for the level offsets of the VNNI kernels).
///
/// `qs` comes first and blocks are 32-byte aligned, so the kernels' 32-byte loads of the
/// levels never straddle two cache lines (a split load costs two).
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub(crate) struct BlockQ8 {
    pub qs: [i8; 32],
    pub d: f32,
    pub s: f32,
    pub sum: i32,
}

/// 256 activations: `x ≈ d * qs`; `bsums[i]` = Σ of `qs[16i..16i+16]` (for K-quant minimums
/// and offsets), `bsums32[j]` = Σ of `qs[32j..32j+32]` (the sub-block sums of Q4_K/Q5_K's
/// minimums, kept so the kernels need no horizontal add per block and row).
///
/// Laid out like [`BlockQ8`]: levels first, 32-byte aligned.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
pub(crate) struct BlockQ8K {
    pub qs: [i8; 256],
    pub d: f32,
    pub bsums: [i16; 16],
    pub bsums32: [i16; 8],
}

/// Symmetric 8-bit quantization of one block into `qs` (range ±127); returns the scale.
#[inline]
fn quantize_block(x: &[f32], qs: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    if amax == 0.0 {
        qs.fill(0);
        return 0.0;
    }
    let id = 127.0 / amax;
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = nearest_int(v * id).clamp(-127, 127) as i8;
    }
    amax / 127.0
}

pub(crate) fn quantize_q8(x: &[f32], out: &mut [BlockQ8]) {
    for (xb, b) in x.chunks_exact(32).zip(out.iter_mut()) {
        b.d = quantize_block(xb, &mut b.qs);
        b.sum = b.qs.iter().map(|&q| q as i32).sum::<i32>();
        b.s = b.d * b.sum as f32;
    }
}

pub(crate) fn quantize_q8k(x: &[f32], out: &mut [BlockQ8K]) {
    for (xb, b) in x.chunks_exact(256).zip(out.iter_mut()) {
        b.d = quantize_block(xb, &mut b.qs);
        for (i, s) in b.bsums.iter_mut().enumerate() {
            *s = b.qs[16 * i..16 * i + 16].iter().map(|&q| q as i16).sum();
        }
        for (j, s) in b.bsums32.iter_mut().enumerate() {
            *s = b.bsums[2 * j] + b.bsums[2 * j + 1];
        }
    }
}

impl Default for BlockQ8 {
    fn default() -> Self {
        BlockQ8 { qs: [0; 32], d: 0.0, s: 0.0, sum: 0 }
    }
}

impl Default for BlockQ8K {
    fn default() -> Self {
        BlockQ8K { qs: [0; 256], d: 0.0, bsums: [0; 16], bsums32: [0; 8] }
    }
}
