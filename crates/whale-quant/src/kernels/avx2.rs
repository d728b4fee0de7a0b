//! AVX2/FMA/F16C row·activation dot products (x86-64), selected at run time.
//!
//! The integer products follow llama.cpp's x86 kernels: unsigned weight levels times signed
//! 8-bit activations with `vpmaddubsw` (pairs summed into i16), `vpmaddwd` by the sub-block
//! scale (into i32), and one float FMA per super-block; signed×signed formats (Q8_0, Q4_0,
//! Q5_0) use the `vpsignb` trick to make one side unsigned. Offsets and minimums (Q4_K/Q5_K
//! mins, Q6_K's −32) are applied through the activation block sums. The integer sums equal
//! those of `portable.rs` exactly; only the float accumulation order differs.
//!
//! Every function here requires AVX2, FMA and F16C; callers check with
//! `is_x86_feature_detected!` (see `kernels/mod.rs`).

#![allow(clippy::missing_safety_doc)]

use std::arch::x86_64::*;

use crate::activation::{BlockQ8, BlockQ8K};
use crate::formats::q4k;

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_at(p: *const u8) -> f32 {
    let bits = u16::from_le_bytes([*p, *p.add(1)]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Σ x·y over 32 signed bytes, as 8 i32 partial sums converted to float.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_i8_pairs(x: __m256i, y: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    let dot = _mm256_maddubs_epi16(ax, sy);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)))
}

/// 16 nibble bytes → 32 bytes: low nibbles first (elements 0..16), then high nibbles.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles_32(p: *const u8) -> __m256i {
    let t = _mm_loadu_si128(p as *const __m128i);
    let b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    _mm256_and_si256(b, _mm256_set1_epi8(0x0f))
}

/// The 32 bits of `x` → 32 bytes, 0xFF where the bit is set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bits_32(x: u32) -> __m256i {
    let shuf = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0x0000_0000_0000_0000,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x as i32), shuf);
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q8_0(w: &[u8], a: &[BlockQ8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (blk, ab) in w.chunks_exact(34).zip(a) {
        let d = _mm256_set1_ps(f16_at(blk.as_ptr()) * ab.d);
        let qx = _mm256_loadu_si256(blk.as_ptr().add(2) as *const __m256i);
        let qy = _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i);
        acc = _mm256_fmadd_ps(d, dot_i8_pairs(qx, qy), acc);
    }
    hsum(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q4_0(w: &[u8], a: &[BlockQ8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (blk, ab) in w.chunks_exact(18).zip(a) {
        let d = _mm256_set1_ps(f16_at(blk.as_ptr()) * ab.d);
        let qx = _mm256_sub_epi8(nibbles_32(blk.as_ptr().add(2)), _mm256_set1_epi8(8));
        let qy = _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i);
        acc = _mm256_fmadd_ps(d, dot_i8_pairs(qx, qy), acc);
    }
    hsum(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q5_0(w: &[u8], a: &[BlockQ8]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (blk, ab) in w.chunks_exact(22).zip(a) {
        let d = _mm256_set1_ps(f16_at(blk.as_ptr()) * ab.d);
        let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
        let hi = _mm256_and_si256(bits_32(qh), _mm256_set1_epi8(0x10));
        let qx = _mm256_or_si256(nibbles_32(blk.as_ptr().add(6)), hi);
        let qx = _mm256_sub_epi8(qx, _mm256_set1_epi8(16));
        let qy = _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i);
        acc = _mm256_fmadd_ps(d, dot_i8_pairs(qx, qy), acc);
    }
    hsum(acc)
}

/// Σ over the 8 sub-blocks of mins × (pair of 16-element activation sums).
#[inline]
fn kmins(mn: &[u8; 8], bsums: &[i16; 16]) -> i32 {
    (0..8).map(|j| mn[j] as i32 * (bsums[2 * j] as i32 + bsums[2 * j + 1] as i32)).sum()
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q4_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0f);
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = 0.0f32;
    for (blk, ab) in w.chunks_exact(144).zip(a) {
        let p = blk.as_ptr();
        let d = ab.d * f16_at(p);
        let dmin = ab.d * f16_at(p.add(2));
        let (sc, mn) = q4k::scales_mins(&blk[4..16]);
        acc_m += dmin * kmins(&mn, &ab.bsums) as f32;
        let mut sumi = _mm256_setzero_si256();
        for c in 0..4 {
            let q4 = _mm256_loadu_si256(p.add(16 + 32 * c) as *const __m256i);
            let q4l = _mm256_and_si256(q4, m4);
            let q4h = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            let q8l = _mm256_loadu_si256(ab.qs.as_ptr().add(64 * c) as *const __m256i);
            let q8h = _mm256_loadu_si256(ab.qs.as_ptr().add(64 * c + 32) as *const __m256i);
            let pl = _mm256_madd_epi16(_mm256_maddubs_epi16(q4l, q8l), _mm256_set1_epi16(sc[2 * c] as i16));
            let ph = _mm256_madd_epi16(_mm256_maddubs_epi16(q4h, q8h), _mm256_set1_epi16(sc[2 * c + 1] as i16));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum(acc) - acc_m
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q5_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0f);
    let one = _mm256_set1_epi8(1);
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = 0.0f32;
    for (blk, ab) in w.chunks_exact(176).zip(a) {
        let p = blk.as_ptr();
        let d = ab.d * f16_at(p);
        let dmin = ab.d * f16_at(p.add(2));
        let (sc, mn) = q4k::scales_mins(&blk[4..16]);
        acc_m += dmin * kmins(&mn, &ab.bsums) as f32;
        let qh = _mm256_loadu_si256(p.add(16) as *const __m256i);
        let mut sumi = _mm256_setzero_si256();
        for c in 0..4 {
            let q5 = _mm256_loadu_si256(p.add(48 + 32 * c) as *const __m256i);
            // Bit k of each byte → 0x10 (16-bit shifts keep bits within their byte for k < 8).
            let hl = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c as i32)), one), 4);
            let hh = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c as i32 + 1)), one), 4);
            let ql = _mm256_or_si256(_mm256_and_si256(q5, m4), hl);
            let qhh = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q5, 4), m4), hh);
            let q8l = _mm256_loadu_si256(ab.qs.as_ptr().add(64 * c) as *const __m256i);
            let q8h = _mm256_loadu_si256(ab.qs.as_ptr().add(64 * c + 32) as *const __m256i);
            let pl = _mm256_madd_epi16(_mm256_maddubs_epi16(ql, q8l), _mm256_set1_epi16(sc[2 * c] as i16));
            let ph = _mm256_madd_epi16(_mm256_maddubs_epi16(qhh, q8h), _mm256_set1_epi16(sc[2 * c + 1] as i16));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum(acc) - acc_m
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q6_k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let m4 = _mm256_set1_epi8(0x0f);
    let m2 = _mm256_set1_epi8(3);
    let mut acc = _mm256_setzero_ps();
    let mut acc_off = 0.0f32;
    for (blk, ab) in w.chunks_exact(210).zip(a) {
        let p = blk.as_ptr();
        let d = ab.d * f16_at(p.add(208));
        let sc = &blk[192..208];
        // The −32 offset of every level, through the 16-element activation sums.
        let off: i32 = (0..16).map(|i| sc[i] as i8 as i32 * ab.bsums[i] as i32).sum();
        acc_off += d * (32 * off) as f32;
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let ql0 = _mm256_loadu_si256(p.add(64 * h) as *const __m256i);
            let ql1 = _mm256_loadu_si256(p.add(64 * h + 32) as *const __m256i);
            let qh = _mm256_loadu_si256(p.add(128 + 32 * h) as *const __m256i);
            let q = [
                _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4)),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, m4),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4),
                ),
            ];
            for (quarter, qv) in q.iter().enumerate() {
                let is = 8 * h + 2 * quarter;
                let q8 = _mm256_loadu_si256(ab.qs.as_ptr().add(128 * h + 32 * quarter) as *const __m256i);
                let prod = _mm256_maddubs_epi16(*qv, q8);
                let scv = _mm256_set_m128i(
                    _mm_set1_epi16(sc[is + 1] as i8 as i16),
                    _mm_set1_epi16(sc[is] as i8 as i16),
                );
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(prod, scv));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum(acc) - acc_off
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_f32(w: &[u8], a: &[f32]) -> f32 {
    let n = a.len().min(w.len() / 4);
    let (wp, ap) = (w.as_ptr() as *const f32, a.as_ptr());
    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(wp.add(i)), _mm256_loadu_ps(ap.add(i)), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(wp.add(i + 8)), _mm256_loadu_ps(ap.add(i + 8)), s1);
        i += 16;
    }
    let mut sum = hsum(_mm256_add_ps(s0, s1));
    while i < n {
        sum += (wp.add(i)).read_unaligned() * a[i];
        i += 1;
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_f16(w: &[u8], a: &[f32]) -> f32 {
    let n = a.len().min(w.len() / 2);
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    while i + 16 <= n {
        let w0 = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(2 * i) as *const __m128i));
        let w1 = _mm256_cvtph_ps(_mm_loadu_si128(wp.add(2 * i + 16) as *const __m128i));
        s0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(ap.add(i)), s0);
        s1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(ap.add(i + 8)), s1);
        i += 16;
    }
    let mut sum = hsum(_mm256_add_ps(s0, s1));
    while i < n {
        sum += f16_at(wp.add(2 * i)) * a[i];
        i += 1;
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_bf16(w: &[u8], a: &[f32]) -> f32 {
    let n = a.len().min(w.len() / 2);
    let (wp, ap) = (w.as_ptr(), a.as_ptr());
    let mut s0 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 8 <= n {
        let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(wp.add(2 * i) as *const __m128i));
        let wv = _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
        s0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(ap.add(i)), s0);
        i += 8;
    }
    let mut sum = hsum(s0);
    while i < n {
        let bits = u16::from_le_bytes([w[2 * i], w[2 * i + 1]]);
        sum += f32::from_bits((bits as u32) << 16) * a[i];
        i += 1;
    }
    sum
}
