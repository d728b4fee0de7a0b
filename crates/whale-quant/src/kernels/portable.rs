//! Portable row·activation dot products: plain Rust integer arithmetic, one function per
//! weight format, against 8-bit activations ([`BlockQ8`] for the 32-element formats,
//! [`BlockQ8K`] for the K-quants) or f32 activations for the float formats.
//!
//! They mirror ggml's generic `ggml_vec_dot_*` (integer sums per sub-block, one float
//! multiply per sub-block) and are the fallback on CPUs without AVX2; the SIMD kernels compute
//! the same integer sums, so the two agree up to float summation order.

use crate::activation::{BlockQ8, BlockQ8K};
use crate::formats::float::bf16_to_f32;
use crate::formats::scalar::f16_at;
use crate::formats::{q3k, q4k, q6k};

#[inline]
fn idot(a: impl Iterator<Item = i32>, b: &[i8]) -> i32 {
    a.zip(b).map(|(x, &y)| x * y as i32).sum()
}

pub(crate) fn dot_q8_0(w: &[u8], a: &[BlockQ8]) -> f32 {
    let mut sum = 0.0f32;
    for (blk, ab) in w.chunks_exact(34).zip(a) {
        let s = idot(blk[2..34].iter().map(|&q| q as i8 as i32), &ab.qs);
        sum += f16_at(blk, 0) * ab.d * s as f32;
    }
    sum
}

pub(crate) fn dot_q4_0(w: &[u8], a: &[BlockQ8]) -> f32 {
    let mut sum = 0.0f32;
    for (blk, ab) in w.chunks_exact(18).zip(a) {
        let q = &blk[2..18];
        let s = idot(q.iter().map(|&b| (b & 0x0f) as i32 - 8), &ab.qs[..16])
            + idot(q.iter().map(|&b| (b >> 4) as i32 - 8), &ab.qs[16..]);
        sum += f16_at(blk, 0) * ab.d * s as f32;
    }
    sum
}

pub(crate) fn dot_q4_1(w: &[u8], a: &[BlockQ8]) -> f32 {
    let mut sum = 0.0f32;
    for (blk, ab) in w.chunks_exact(20).zip(a) {
        let q = &blk[4..20];
        let s = idot(q.iter().map(|&b| (b & 0x0f) as i32), &ab.qs[..16])
            + idot(q.iter().map(|&b| (b >> 4) as i32), &ab.qs[16..]);
        sum += f16_at(blk, 0) * ab.d * s as f32 + f16_at(blk, 2) * ab.s;
    }
    sum
}

/// The 32 five-bit levels of a Q5_0/Q5_1 block (`qh` = the u32 of high bits, `q` the nibbles).
#[inline]
fn q5_levels(qh: u32, q: &[u8]) -> [i32; 32] {
    let mut l = [0i32; 32];
    for j in 0..16 {
        l[j] = ((q[j] & 0x0f) as u32 | (((qh >> j) & 1) << 4)) as i32;
        l[j + 16] = ((q[j] >> 4) as u32 | (((qh >> (j + 16)) & 1) << 4)) as i32;
    }
    l
}

pub(crate) fn dot_q5_0(w: &[u8], a: &[BlockQ8]) -> f32 {
    let mut sum = 0.0f32;
    for (blk, ab) in w.chunks_exact(22).zip(a) {
        let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
        let l = q5_levels(qh, &blk[6..22]);
        let s = idot(l.iter().map(|&v| v - 16), &ab.qs);
        sum += f16_at(blk, 0) * ab.d * s as f32;
    }
    sum
}

pub(crate) fn dot_q5_1(w: &[u8], a: &[BlockQ8]) -> f32 {
    let mut sum = 0.0f32;
    for (blk, ab) in w.chunks_exact(24).zip(a) {
        let qh = u32::from_le_bytes([blk[4], blk[5], blk[6], blk[7]]);
        let l = q5_levels(qh, &blk[8..24]);
        let s = idot(l.iter().copied(), &ab.qs);
        sum += f16_at(blk, 0) * ab.d * s as f32 + f16_at(blk, 2) * ab.s;
    }
    sum
}

pub(crate) fn dot_q2_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (blk, ab) in w.chunks_exact(84).zip(a) {
        let (d, dmin) = (f16_at(blk, 80), f16_at(blk, 82));
        let (mut isum, mut msum) = (0i32, 0i32);
        for half in 0..2 {
            let q = &blk[16 + 32 * half..48 + 32 * half];
            for j in 0..4 {
                for part in 0..2 {
                    let is = 8 * half + 2 * j + part;
                    let base = 128 * half + 32 * j + 16 * part;
                    let qs = q[16 * part..16 * part + 16].iter().map(|&b| ((b >> (2 * j)) & 3) as i32);
                    isum += (blk[is] & 0x0f) as i32 * idot(qs, &ab.qs[base..base + 16]);
                    msum += (blk[is] >> 4) as i32 * ab.bsums[is] as i32;
                }
            }
        }
        sum += ab.d * (d * isum as f32 - dmin * msum as f32);
    }
    sum
}

pub(crate) fn dot_q3_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (blk, ab) in w.chunks_exact(110).zip(a) {
        let scales = q3k::unpack_scales(&blk[96..108]);
        let hm = &blk[0..32];
        let mut isum = 0i32;
        for half in 0..2 {
            let q = &blk[32 + 32 * half..64 + 32 * half];
            for j in 0..4 {
                let m = 1u8 << (4 * half + j);
                for part in 0..2 {
                    let base = 128 * half + 32 * j + 16 * part;
                    let r = 16 * part..16 * part + 16;
                    let qs = q[r.clone()].iter().zip(&hm[r]).map(|(&b, &h)| {
                        ((b >> (2 * j)) & 3) as i32 - if h & m != 0 { 0 } else { 4 }
                    });
                    isum += scales[8 * half + 2 * j + part] as i32 * idot(qs, &ab.qs[base..base + 16]);
                }
            }
        }
        sum += ab.d * f16_at(blk, 108) * isum as f32;
    }
    sum
}

/// Σ_j min_j · (Σ of sub-block j's 32 activations): the minimum term of Q4_K/Q5_K.
#[inline]
fn min_sum(mn: &[u8; 8], ab: &BlockQ8K) -> i32 {
    mn.iter().zip(ab.bsums32).map(|(&m, s)| m as i32 * s as i32).sum()
}

pub(crate) fn dot_q4_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (blk, ab) in w.chunks_exact(144).zip(a) {
        let (sc, mn) = q4k::scales_mins(&blk[4..16]);
        let mut isum = 0i32;
        for c in 0..4 {
            let q = &blk[16 + 32 * c..48 + 32 * c];
            let lo = idot(q.iter().map(|&b| (b & 0x0f) as i32), &ab.qs[64 * c..64 * c + 32]);
            let hi = idot(q.iter().map(|&b| (b >> 4) as i32), &ab.qs[64 * c + 32..64 * c + 64]);
            isum += sc[2 * c] as i32 * lo + sc[2 * c + 1] as i32 * hi;
        }
        let msum = min_sum(&mn, ab);
        sum += ab.d * (f16_at(blk, 0) * isum as f32 - f16_at(blk, 2) * msum as f32);
    }
    sum
}

pub(crate) fn dot_q5_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (blk, ab) in w.chunks_exact(176).zip(a) {
        let (sc, mn) = q4k::scales_mins(&blk[4..16]);
        let qh = &blk[16..48];
        let mut isum = 0i32;
        for c in 0..4 {
            let q = &blk[48 + 32 * c..80 + 32 * c];
            let lo = q.iter().zip(qh).map(|(&b, &h)| ((b & 0x0f) | (((h >> (2 * c)) & 1) << 4)) as i32);
            let hi = q.iter().zip(qh).map(|(&b, &h)| ((b >> 4) | (((h >> (2 * c + 1)) & 1) << 4)) as i32);
            isum += sc[2 * c] as i32 * idot(lo, &ab.qs[64 * c..64 * c + 32])
                + sc[2 * c + 1] as i32 * idot(hi, &ab.qs[64 * c + 32..64 * c + 64]);
        }
        let msum = min_sum(&mn, ab);
        sum += ab.d * (f16_at(blk, 0) * isum as f32 - f16_at(blk, 2) * msum as f32);
    }
    sum
}

pub(crate) fn dot_q6_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut sum = 0.0f32;
    for (blk, ab) in w.chunks_exact(210).zip(a) {
        let mut isum = 0i32;
        for is in 0..16 {
            let qs = (16 * is..16 * is + 16).map(|k| q6k::level(blk, k) as i32 - 32);
            isum += blk[192 + is] as i8 as i32 * idot(qs, &ab.qs[16 * is..16 * is + 16]);
        }
        sum += ab.d * f16_at(blk, 208) * isum as f32;
    }
    sum
}

pub(crate) fn dot_f32(w: &[u8], a: &[f32]) -> f32 {
    w.chunks_exact(4).zip(a).map(|(c, &x)| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * x).sum()
}

pub(crate) fn dot_f16(w: &[u8], a: &[f32]) -> f32 {
    w.chunks_exact(2).zip(a).map(|(c, &x)| f16_at(c, 0) * x).sum()
}

pub(crate) fn dot_bf16(w: &[u8], a: &[f32]) -> f32 {
    w.chunks_exact(2).zip(a).map(|(c, &x)| bf16_to_f32(u16::from_le_bytes([c[0], c[1]])) * x).sum()
}
