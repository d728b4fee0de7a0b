//! Q3_K: 256-element super-blocks of 3-bit levels in 16 sub-blocks of 16 with signed 6-bit
//! scales (ggml-common.h `block_q3_K`, 110 bytes): `hmask[32]` (the third bit), `qs[64]`
//! (the low two bits, packed as in Q2_K), `scales[12]` (sixteen 6-bit values: low nibbles in
//! bytes 0..8, top bit pairs in bytes 8..12), `f16 d`. value = d·(scale−32)·(q − 4·!hbit).
//! Quantization follows ggml `quantize_row_q3_K_ref`.

use super::fit::make_q3_quants;
use super::scalar::{f16_at, nearest_int, put_f16};

pub(crate) const BYTES: usize = 110;

/// The 16 signed scales (already minus 32).
pub(crate) fn unpack_scales(s: &[u8]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let lo = if j < 8 { s[j] & 0x0f } else { s[j - 8] >> 4 };
        let hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (lo | (hi << 4)) as i8 - 32;
    }
    out
}

pub(crate) fn dequantize(b: &[u8], out: &mut [f32]) {
    for (blk, y) in b.chunks_exact(BYTES).zip(out.chunks_exact_mut(256)) {
        let d_all = f16_at(blk, 108);
        let scales = unpack_scales(&blk[96..108]);
        let hm = &blk[0..32];
        for half in 0..2 {
            let q = &blk[32 + 32 * half..64 + 32 * half];
            for j in 0..4 {
                let shift = 2 * j;
                let m = 1u8 << (4 * half + j);
                for part in 0..2 {
                    let dl = d_all * scales[8 * half + 2 * j + part] as f32;
                    let base = 128 * half + 32 * j + 16 * part;
                    for l in 0..16 {
                        let k = l + 16 * part;
                        let low = ((q[k] >> shift) & 3) as i32;
                        let sub = if hm[k] & m != 0 { 0 } else { 4 };
                        y[base + l] = dl * (low - sub) as f32;
                    }
                }
            }
        }
    }
}

pub(crate) fn quantize(x: &[f32], out: &mut [u8]) {
    for (xb, blk) in x.chunks_exact(256).zip(out.chunks_exact_mut(BYTES)) {
        let mut levels = [0i8; 256];
        let mut scales = [0.0f32; 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for j in 0..16 {
            scales[j] = make_q3_quants(4, &xb[16 * j..16 * j + 16], &mut levels[16 * j..16 * j + 16]);
            if scales[j].abs() > amax {
                amax = scales[j].abs();
                max_scale = scales[j];
            }
        }
        blk[96..108].fill(0);
        if max_scale != 0.0 {
            let iscale = -32.0f32 / max_scale;
            for j in 0..16 {
                let l = (nearest_int(iscale * scales[j]) as i8).clamp(-32, 31) as i32 + 32;
                if j < 8 {
                    blk[96 + j] = (l & 0x0f) as u8;
                } else {
                    blk[96 + j - 8] |= ((l & 0x0f) << 4) as u8;
                }
                blk[96 + 8 + j % 4] |= ((l >> 4) << (2 * (j / 4))) as u8;
            }
            put_f16(blk, 108, 1.0 / iscale);
        } else {
            put_f16(blk, 108, 0.0);
        }
        let d_all = f16_at(blk, 108);
        let sc = unpack_scales(&blk[96..108]);
        for j in 0..16 {
            let d = d_all * sc[j] as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let l = nearest_int(xb[16 * j + ii] / d).clamp(-4, 3);
                levels[16 * j + ii] = (l + 4) as i8;
            }
        }
        blk[0..32].fill(0);
        let (mut m, mut hm) = (0usize, 1u8);
        for l in levels.iter_mut() {
            if *l > 3 {
                blk[m] |= hm;
                *l -= 4;
            }
            m += 1;
            if m == 32 {
                m = 0;
                hm = hm.wrapping_shl(1);
            }
        }
        for half in 0..2 {
            let (j, q) = (128 * half, 32 + 32 * half);
            for l in 0..32 {
                blk[q + l] = (levels[j + l]
                    | (levels[j + l + 32] << 2)
                    | (levels[j + l + 64] << 4)
                    | (levels[j + l + 96] << 6)) as u8;
            }
        }
    }
}
