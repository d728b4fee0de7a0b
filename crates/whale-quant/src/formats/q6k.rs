//! Q6_K: 256-element super-blocks of 6-bit levels in 16 sub-blocks of 16 with signed 8-bit
//! scales (ggml-common.h `block_q6_K`, 210 bytes): `ql[128]` (low 4 bits), `qh[64]` (high 2
//! bits), `scales[16]` (i8), `f16 d`; value = d·scale·(q − 32). In each 128-element half,
//! `ql[l]` holds elements l (low nibble) and l+64 (high), `ql[l+32]` elements l+32 and l+96,
//! and `qh[l]` the high bit pairs of l, l+32, l+64, l+96.
//! Quantization follows ggml `quantize_row_q6_K_ref`.

use super::fit::make_qx_quants;
use super::scalar::{f16_at, nearest_int, put_f16};

pub(crate) const BYTES: usize = 210;

/// The 6-bit level (0..64) of element `k` (0..256) of a block.
#[inline]
pub(crate) fn level(blk: &[u8], k: usize) -> u8 {
    let (half, r) = (k / 128, k % 128);
    let (quarter, l) = (r / 32, r % 32);
    let ql = blk[64 * half + l + 32 * (quarter & 1)];
    let low = if quarter < 2 { ql & 0x0f } else { ql >> 4 };
    let high = (blk[128 + 32 * half + l] >> (2 * quarter)) & 3;
    low | (high << 4)
}

pub(crate) fn dequantize(b: &[u8], out: &mut [f32]) {
    for (blk, y) in b.chunks_exact(BYTES).zip(out.chunks_exact_mut(256)) {
        let d = f16_at(blk, 208);
        for (k, yk) in y.iter_mut().enumerate() {
            let sc = blk[192 + k / 16] as i8;
            let q = level(blk, k) as i32 - 32;
            *yk = d * sc as f32 * q as f32;
        }
    }
}

pub(crate) fn quantize(x: &[f32], out: &mut [u8]) {
    for (xb, blk) in x.chunks_exact(256).zip(out.chunks_exact_mut(BYTES)) {
        let mut levels = [0i8; 256];
        let mut scales = [0.0f32; 16];
        let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
        for ib in 0..16 {
            let s = make_qx_quants(32, &xb[16 * ib..16 * ib + 16], &mut levels[16 * ib..16 * ib + 16]);
            scales[ib] = s;
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = s;
            }
        }
        if max_abs_scale < 1e-15 {
            blk.fill(0);
            continue;
        }
        let iscale = -128.0f32 / max_scale;
        put_f16(blk, 208, 1.0 / iscale);
        for ib in 0..16 {
            blk[192 + ib] = nearest_int(iscale * scales[ib]).min(127) as i8 as u8;
        }
        let d_all = f16_at(blk, 208);
        for j in 0..16 {
            let d = d_all * blk[192 + j] as i8 as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let l = nearest_int(xb[16 * j + ii] / d).clamp(-32, 31);
                levels[16 * j + ii] = (l + 32) as i8;
            }
        }
        for half in 0..2 {
            let (j, ql, qh) = (128 * half, 64 * half, 128 + 32 * half);
            for l in 0..32 {
                let q = |o: usize| levels[j + l + o] as u8;
                blk[ql + l] = (q(0) & 0x0f) | ((q(64) & 0x0f) << 4);
                blk[ql + l + 32] = (q(32) & 0x0f) | ((q(96) & 0x0f) << 4);
                blk[qh + l] = (q(0) >> 4) | ((q(32) >> 4) << 2) | ((q(64) >> 4) << 4) | ((q(96) >> 4) << 6);
            }
        }
    }
}
