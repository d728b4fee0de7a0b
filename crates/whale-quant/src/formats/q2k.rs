//! Q2_K: 256-element super-blocks of 2-bit levels with 16 sub-blocks of 16, each with a 4-bit
//! scale and a 4-bit minimum (ggml-common.h `block_q2_K`, 84 bytes):
//! `scales[16]` (low nibble scale, high nibble min), `qs[64]`, `f16 d`, `f16 dmin`;
//! value = d·scale·q − dmin·min. Within each 128-element half, byte l of `qs` holds elements
//! l, l+32, l+64, l+96 in bit pairs 0-1, 2-3, 4-5, 6-7.
//! Quantization follows ggml `quantize_row_q2_K_ref`.

use super::fit::{make_qkx2_quants, Sweep};
use super::scalar::{f16_at, nearest_int, put_f16};

pub(crate) const BYTES: usize = 84;

pub(crate) fn dequantize(b: &[u8], out: &mut [f32]) {
    for (blk, y) in b.chunks_exact(BYTES).zip(out.chunks_exact_mut(256)) {
        let d = f16_at(blk, 80);
        let dmin = f16_at(blk, 82);
        for half in 0..2 {
            let q = &blk[16 + 32 * half..16 + 32 * half + 32];
            for j in 0..4 {
                let shift = 2 * j;
                for part in 0..2 {
                    let is = 8 * half + 2 * j + part;
                    let sc = blk[is];
                    let dl = d * (sc & 0x0f) as f32;
                    let ml = dmin * (sc >> 4) as f32;
                    let base = 128 * half + 32 * j + 16 * part;
                    for l in 0..16 {
                        y[base + l] = dl * ((q[l + 16 * part] >> shift) & 3) as f32 - ml;
                    }
                }
            }
        }
    }
}

pub(crate) fn quantize(x: &[f32], out: &mut [u8]) {
    const Q4SCALE: f32 = 15.0;
    let sweep = Sweep { rmin: -0.5, rdelta: 0.1, nstep: 15, use_mad: true };
    for (xb, blk) in x.chunks_exact(256).zip(out.chunks_exact_mut(BYTES)) {
        let mut levels = [0u8; 256];
        let mut scales = [0.0f32; 16];
        let mut mins = [0.0f32; 16];
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for j in 0..16 {
            let xs = &xb[16 * j..16 * j + 16];
            let mut weights = [0.0f32; 16];
            for l in 0..16 {
                weights[l] = xs[l].abs();
            }
            let (s, m) =
                make_qkx2_quants(3, xs, &weights, &mut levels[16 * j..16 * j + 16], &sweep);
            scales[j] = s;
            mins[j] = m;
            if s > max_scale {
                max_scale = s;
            }
            if m > max_min {
                max_min = m;
            }
        }
        if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for j in 0..16 {
                blk[j] = nearest_int(iscale * scales[j]) as u8;
            }
            put_f16(blk, 80, max_scale / Q4SCALE);
        } else {
            blk[..16].fill(0);
            put_f16(blk, 80, 0.0);
        }
        if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for j in 0..16 {
                let l = nearest_int(iscale * mins[j]);
                blk[j] |= (l << 4) as u8;
            }
            put_f16(blk, 82, max_min / Q4SCALE);
        } else {
            put_f16(blk, 82, 0.0);
        }
        let (d_all, dmin_all) = (f16_at(blk, 80), f16_at(blk, 82));
        for j in 0..16 {
            let d = d_all * (blk[j] & 0x0f) as f32;
            if d == 0.0 {
                continue;
            }
            let dm = dmin_all * (blk[j] >> 4) as f32;
            for ii in 0..16 {
                let l = nearest_int((xb[16 * j + ii] + dm) / d).clamp(0, 3);
                levels[16 * j + ii] = l as u8;
            }
        }
        for half in 0..2 {
            let (j, q) = (128 * half, 16 + 32 * half);
            for l in 0..32 {
                blk[q + l] = levels[j + l]
                    | (levels[j + l + 32] << 2)
                    | (levels[j + l + 64] << 4)
                    | (levels[j + l + 96] << 6);
            }
        }
    }
}
