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
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct BlockQ8 {
    pub d: f32,
    pub s: f32,
    pub sum: i32,
    pub qs: [i8; 32],
}

/// 256 activations: `x ≈ d * qs`; `bsums[i]` = Σ of `qs[16i..16i+16]` (for K-quant minimums
/// and offsets).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; 256],
    pub bsums: [i16; 16],
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
    }
}

impl Default for BlockQ8 {
    fn default() -> Self {
        BlockQ8 { d: 0.0, s: 0.0, sum: 0, qs: [0; 32] }
    }
}

impl Default for BlockQ8K {
    fn default() -> Self {
        BlockQ8K { d: 0.0, qs: [0; 256], bsums: [0; 16] }
    }
}
