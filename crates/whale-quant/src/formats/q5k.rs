//! Q5_K: like Q4_K with a fifth bit per element (ggml-common.h `block_q5_K`, 176 bytes):
//! `f16 d`, `f16 dmin`, `scales[12]` (packed as in Q4_K), `qh[32]`, `qs[128]`. For 64-element
//! chunk c, bit 2c of `qh[l]` is the high bit of its element l, bit 2c+1 that of element l+32.
//! Quantization follows ggml `quantize_row_q5_K_ref`.

use super::fit::Sweep;
use super::q4k::{quantize_superblock, scales_mins};
use super::scalar::f16_at;

pub(crate) const BYTES: usize = 176;

pub(crate) fn dequantize(b: &[u8], out: &mut [f32]) {
    for (blk, y) in b.chunks_exact(BYTES).zip(out.chunks_exact_mut(256)) {
        let d = f16_at(blk, 0);
        let min = f16_at(blk, 2);
        let (sc, m) = scales_mins(&blk[4..16]);
        let qh = &blk[16..48];
        for c in 0..4 {
            let ql = &blk[48 + 32 * c..80 + 32 * c];
            let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
            let (d1, m1) = (d * sc[2 * c] as f32, min * m[2 * c] as f32);
            let (d2, m2) = (d * sc[2 * c + 1] as f32, min * m[2 * c + 1] as f32);
            for l in 0..32 {
                let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                y[64 * c + l] = d1 * ((ql[l] & 0x0f) + h1) as f32 - m1;
                y[64 * c + 32 + l] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
            }
        }
    }
}

pub(crate) fn quantize(x: &[f32], out: &mut [u8]) {
    let sweep = Sweep { rmin: -0.5, rdelta: 0.1, nstep: 15, use_mad: false };
    for (xb, blk) in x.chunks_exact(256).zip(out.chunks_exact_mut(BYTES)) {
        let levels = quantize_superblock(xb, 31, &sweep, blk);
        blk[16..48].fill(0);
        for c in 0..4 {
            let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for j in 0..32 {
                let mut l1 = levels[64 * c + j];
                if l1 > 15 {
                    l1 -= 16;
                    blk[16 + j] |= m1;
                }
                let mut l2 = levels[64 * c + 32 + j];
                if l2 > 15 {
                    l2 -= 16;
                    blk[16 + j] |= m2;
                }
                blk[48 + 32 * c + j] = l1 | (l2 << 4);
            }
        }
    }
}
