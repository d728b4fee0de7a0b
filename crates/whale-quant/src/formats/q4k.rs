//! Q4_K: 256-element super-blocks of 4-bit levels in 8 sub-blocks of 32, each with a 6-bit
//! scale and 6-bit minimum (ggml-common.h `block_q4_K`, 144 bytes): `f16 d`, `f16 dmin`,
//! `scales[12]`, `qs[128]`; value = d·scale·q − dmin·min. Each 64-element chunk is 32 bytes:
//! low nibbles are its first 32 elements, high nibbles the next 32.
//! The 12-byte scale packing (shared with Q5_K) is ggml's `get_scale_min_k4`.
//! Quantization follows ggml `quantize_row_q4_K_ref`.

use super::fit::{make_qkx2_quants, Sweep};
use super::scalar::{f16_at, nearest_int, put_f16};

pub(crate) const BYTES: usize = 144;

/// Scale and minimum of sub-block `j` (0..8) from the 12 packed bytes.
#[inline]
pub(crate) fn scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// All eight (scale, min) pairs.
#[inline]
pub(crate) fn scales_mins(q: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut s, mut m) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        (s[j], m[j]) = scale_min(j, q);
    }
    (s, m)
}

/// Packs 6-bit scales and mins into 12 bytes (inverse of [`scale_min`]).
pub(crate) fn pack_scales(ls: &[u8; 8], lm: &[u8; 8], q: &mut [u8]) {
    q[..12].fill(0);
    for j in 0..8 {
        if j < 4 {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = (ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4);
            q[j - 4] |= (ls[j] >> 4) << 6;
            q[j] |= (lm[j] >> 4) << 6;
        }
    }
}

pub(crate) fn dequantize(b: &[u8], out: &mut [f32]) {
    for (blk, y) in b.chunks_exact(BYTES).zip(out.chunks_exact_mut(256)) {
        let d = f16_at(blk, 0);
        let min = f16_at(blk, 2);
        let (sc, m) = scales_mins(&blk[4..16]);
        for c in 0..4 {
            let q = &blk[16 + 32 * c..48 + 32 * c];
            let (d1, m1) = (d * sc[2 * c] as f32, min * m[2 * c] as f32);
            let (d2, m2) = (d * sc[2 * c + 1] as f32, min * m[2 * c + 1] as f32);
            for l in 0..32 {
                y[64 * c + l] = d1 * (q[l] & 0x0f) as f32 - m1;
                y[64 * c + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

/// Steps shared by the Q4_K and Q5_K reference quantizers: per 32-element sub-block an
/// asymmetric fit with weights `rms + |x|`, then 6-bit scales/mins relative to the largest,
/// stored at `blk[0..16]` (d, dmin, 12 scale bytes), then the final levels (0..=nmax) against
/// the rounded scales.
pub(crate) fn quantize_superblock(xb: &[f32], nmax: i32, sweep: &Sweep, blk: &mut [u8]) -> [u8; 256] {
    let mut levels = [0u8; 256];
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &xb[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut weights = [0.0f32; 32];
        for l in 0..32 {
            weights[l] = av_x + xs[l].abs();
        }
        let (s, m) = make_qkx2_quants(nmax, xs, &weights, &mut levels[32 * j..32 * j + 32], sweep);
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    pack_scales(&ls, &lm, &mut blk[4..16]);
    put_f16(blk, 0, max_scale / 63.0);
    put_f16(blk, 2, max_min / 63.0);
    let (d_all, dmin_all) = (f16_at(blk, 0), f16_at(blk, 2));
    for j in 0..8 {
        let (sc, m) = scale_min(j, &blk[4..16]);
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * m as f32;
        for ii in 0..32 {
            let l = nearest_int((xb[32 * j + ii] + dm) / d).clamp(0, nmax);
            levels[32 * j + ii] = l as u8;
        }
    }
    levels
}

pub(crate) fn quantize(x: &[f32], out: &mut [u8]) {
    let sweep = Sweep { rmin: -1.0, rdelta: 0.1, nstep: 20, use_mad: false };
    for (xb, blk) in x.chunks_exact(256).zip(out.chunks_exact_mut(BYTES)) {
        let levels = quantize_superblock(xb, 15, &sweep, blk);
        for c in 0..4 {
            for l in 0..32 {
                blk[16 + 32 * c + l] = levels[64 * c + l] | (levels[64 * c + 32 + l] << 4);
            }
        }
    }
}
