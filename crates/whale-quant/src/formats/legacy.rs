//! The 32-element "legacy" block formats of ggml: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0.
//!
//! Layouts (ggml-common.h): Q4_0 = f16 d + 16 nibble bytes; Q4_1 = f16 d, f16 m + 16 bytes;
//! Q5_0 = f16 d + u32 high bits + 16 bytes; Q5_1 = f16 d, f16 m + u32 + 16 bytes;
//! Q8_0 = f16 d + 32 i8. Element j < 16 sits in the low nibble of byte j, element j + 16 in
//! its high nibble; bit j of the u32 is element j's fifth bit.
//! Quantizers follow ggml's `quantize_row_*_ref` (the deterministic ones used to write model
//! files), including their truncating `(int8_t)(x + 8.5f)` rounding; dequantizers compute in
//! the same order as ggml so results are bit-identical.

use super::scalar::{f16_at, put_f16, roundf};

pub(crate) const QK: usize = 32;

// ---- dequantization -------------------------------------------------------------------------

pub(crate) fn dequantize_q4_0(b: &[u8], out: &mut [f32]) {
    for (blk, y) in b.chunks_exact(18).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(blk, 0);
        for j in 0..16 {
            let q = blk[2 + j];
            y[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
            y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

pub(crate) fn dequantize_q4_1(b: &[u8], out: &mut [f32]) {
    for (blk, y) in b.chunks_exact(20).zip(out.chunks_exact_mut(QK)) {
        let (d, m) = (f16_at(blk, 0), f16_at(blk, 2));
        for j in 0..16 {
            let q = blk[4 + j];
            y[j] = (q & 0x0f) as f32 * d + m;
            y[j + 16] = (q >> 4) as f32 * d + m;
        }
    }
}

#[inline]
fn qh_at(blk: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([blk[off], blk[off + 1], blk[off + 2], blk[off + 3]])
}

pub(crate) fn dequantize_q5_0(b: &[u8], out: &mut [f32]) {
    for (blk, y) in b.chunks_exact(22).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(blk, 0);
        let qh = qh_at(blk, 2);
        for j in 0..16 {
            let q = blk[6 + j];
            let h0 = ((qh >> j) & 1) << 4;
            let h1 = ((qh >> (j + 16)) & 1) << 4;
            y[j] = (((q & 0x0f) as u32 | h0) as i32 - 16) as f32 * d;
            y[j + 16] = (((q >> 4) as u32 | h1) as i32 - 16) as f32 * d;
        }
    }
}

pub(crate) fn dequantize_q5_1(b: &[u8], out: &mut [f32]) {
    for (blk, y) in b.chunks_exact(24).zip(out.chunks_exact_mut(QK)) {
        let (d, m) = (f16_at(blk, 0), f16_at(blk, 2));
        let qh = qh_at(blk, 4);
        for j in 0..16 {
            let q = blk[8 + j];
            let h0 = ((qh >> j) & 1) << 4;
            let h1 = ((qh >> (j + 16)) & 1) << 4;
            y[j] = ((q & 0x0f) as u32 | h0) as f32 * d + m;
            y[j + 16] = ((q >> 4) as u32 | h1) as f32 * d + m;
        }
    }
}

pub(crate) fn dequantize_q8_0(b: &[u8], out: &mut [f32]) {
    for (blk, y) in b.chunks_exact(34).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(blk, 0);
        for j in 0..QK {
            y[j] = blk[2 + j] as i8 as f32 * d;
        }
    }
}

// ---- reference quantization -----------------------------------------------------------------

/// The element of largest magnitude, sign kept (the first one on ties, like ggml's `<` scan).
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// C's `(int8_t)(v)` truncation followed by `MIN(hi, ·)` and the store into a `uint8_t`.
#[inline]
fn trunc_clamp(v: f32, hi: i32) -> u8 {
    (v as i8 as i32).min(hi) as u8
}

pub(crate) fn quantize_q4_0(x: &[f32], out: &mut [u8]) {
    for (xb, blk) in x.chunks_exact(QK).zip(out.chunks_exact_mut(18)) {
        let d = signed_absmax(xb) / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(blk, 0, d);
        for j in 0..16 {
            let x0 = trunc_clamp(xb[j] * id + 8.5, 15);
            let x1 = trunc_clamp(xb[j + 16] * id + 8.5, 15);
            blk[2 + j] = x0 | (x1 << 4);
        }
    }
}

pub(crate) fn quantize_q4_1(x: &[f32], out: &mut [u8]) {
    for (xb, blk) in x.chunks_exact(QK).zip(out.chunks_exact_mut(20)) {
        let (min, max) = min_max(xb);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(blk, 0, d);
        put_f16(blk, 2, min);
        for j in 0..16 {
            let x0 = trunc_clamp((xb[j] - min) * id + 0.5, 15);
            let x1 = trunc_clamp((xb[j + 16] - min) * id + 0.5, 15);
            blk[4 + j] = x0 | (x1 << 4);
        }
    }
}

pub(crate) fn quantize_q5_0(x: &[f32], out: &mut [u8]) {
    for (xb, blk) in x.chunks_exact(QK).zip(out.chunks_exact_mut(22)) {
        let d = signed_absmax(xb) / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(blk, 0, d);
        let mut qh = 0u32;
        for j in 0..16 {
            let x0 = trunc_clamp(xb[j] * id + 16.5, 31);
            let x1 = trunc_clamp(xb[j + 16] * id + 16.5, 31);
            blk[6 + j] = (x0 & 0x0f) | ((x1 & 0x0f) << 4);
            qh |= ((x0 as u32 & 0x10) >> 4) << j;
            qh |= ((x1 as u32 & 0x10) >> 4) << (j + 16);
        }
        blk[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}

pub(crate) fn quantize_q5_1(x: &[f32], out: &mut [u8]) {
    for (xb, blk) in x.chunks_exact(QK).zip(out.chunks_exact_mut(24)) {
        let (min, max) = min_max(xb);
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(blk, 0, d);
        put_f16(blk, 2, min);
        let mut qh = 0u32;
        for j in 0..16 {
            // ggml casts straight to uint8_t here (no MIN); values stay within 0..=31.
            let x0 = ((xb[j] - min) * id + 0.5) as u8;
            let x1 = ((xb[j + 16] - min) * id + 0.5) as u8;
            blk[8 + j] = (x0 & 0x0f) | ((x1 & 0x0f) << 4);
            qh |= ((x0 as u32 & 0x10) >> 4) << j;
            qh |= ((x1 as u32 & 0x10) >> 4) << (j + 16);
        }
        blk[4..8].copy_from_slice(&qh.to_le_bytes());
    }
}

pub(crate) fn quantize_q8_0(x: &[f32], out: &mut [u8]) {
    for (xb, blk) in x.chunks_exact(QK).zip(out.chunks_exact_mut(34)) {
        let amax = xb.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(blk, 0, d);
        for j in 0..QK {
            blk[2 + j] = roundf(xb[j] * id) as i8 as u8;
        }
    }
}
