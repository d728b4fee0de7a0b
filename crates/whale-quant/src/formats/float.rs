//! Unquantized element types: F32, F16 (IEEE half) and BF16 (bfloat16), little-endian.
//!
//! BF16 rounding follows ggml's `ggml_compute_fp32_to_bf16` (and gguf-py): NaNs are made
//! quiet, everything else rounds to nearest even on the upper 16 bits.

use half::f16;

pub(crate) fn dequantize_f32(b: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
}

pub(crate) fn quantize_f32(x: &[f32], out: &mut [u8]) {
    for (v, c) in x.iter().zip(out.chunks_exact_mut(4)) {
        c.copy_from_slice(&v.to_le_bytes());
    }
}

pub(crate) fn dequantize_f16(b: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
    }
}

pub(crate) fn quantize_f16(x: &[f32], out: &mut [u8]) {
    for (v, c) in x.iter().zip(out.chunks_exact_mut(2)) {
        c.copy_from_slice(&f16::from_f32(*v).to_bits().to_le_bytes());
    }
}

#[inline]
pub(crate) fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

pub(crate) fn f32_to_bf16(v: f32) -> u16 {
    let n = v.to_bits();
    if n & 0x7fff_ffff > 0x7f80_0000 {
        // NaN: keep the sign and top mantissa bits, force the quiet bit.
        return ((n >> 16) | 64) as u16;
    }
    ((n as u64 + (0x7fff + ((n >> 16) & 1)) as u64) >> 16) as u16
}

pub(crate) fn dequantize_bf16(b: &[u8], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = bf16_to_f32(u16::from_le_bytes([c[0], c[1]]));
    }
}

pub(crate) fn quantize_bf16(x: &[f32], out: &mut [u8]) {
    for (v, c) in x.iter().zip(out.chunks_exact_mut(2)) {
        c.copy_from_slice(&f32_to_bf16(*v).to_le_bytes());
    }
}
