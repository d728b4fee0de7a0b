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

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16_at(p: *const u8) -> f32 {
    let bits = u16::from_le_bytes([*p, *p.add(1)]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// 16 nibble bytes → 32 bytes: low nibbles first (elements 0..16), then high nibbles.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn nibbles_32(p: *const u8) -> __m256i {
    let t = _mm_loadu_si128(p as *const __m128i);
    let b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    _mm256_and_si256(b, _mm256_set1_epi8(0x0f))
}

/// The 32 bits of `x` → 32 bytes, 0xFF where the bit is set.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn bits_32(x: u32) -> __m256i {
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

/// The 32-element formats: `unpack(block) -> (weight scale, 32 signed levels)`, then one
/// `vpsignb`/`vpmaddubsw` product per activation row. Generic over the number of activation
/// rows `N` so prefill unpacks each weight block once for `N` rows (and keeps `N`
/// independent accumulator chains busy), while decode runs the same code with `N = 1`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_32<const N: usize, const TS: usize>(
    w: &[u8],
    a: [&[BlockQ8]; N],
    unpack: impl Fn(*const u8) -> (f32, __m256i),
) -> [f32; N] {
    // Two accumulators per row (even and odd blocks): one block's work is short, and a single
    // chain would wait on the FMA latency every block. Two named arrays, not an array of two
    // indexed by the block parity, so they stay in registers.
    let (mut even, mut odd) = ([_mm256_setzero_ps(); N], [_mm256_setzero_ps(); N]);
    let step = |acc: &mut [__m256; N], b: usize, blk: &[u8]| {
        let (dw, qx) = unpack(blk.as_ptr());
        let ax = _mm256_sign_epi8(qx, qx);
        for i in 0..N {
            let ab = a[i].get_unchecked(b);
            let qy = _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i);
            let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, qx)), _mm256_set1_epi16(1));
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(dw * ab.d), _mm256_cvtepi32_ps(dot), acc[i]);
        }
    };
    let mut blocks = w.chunks_exact(TS).enumerate();
    while let Some((b, blk)) = blocks.next() {
        step(&mut even, b, blk);
        if let Some((b, blk)) = blocks.next() {
            step(&mut odd, b, blk);
        }
    }
    let mut out = [0.0f32; N];
    for i in 0..N {
        out[i] = hsum(_mm256_add_ps(even[i], odd[i]));
    }
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q8_0_n<const N: usize>(w: &[u8], a: [&[BlockQ8]; N]) -> [f32; N] {
    dot_32::<N, 34>(w, a, |p| unsafe { (f16_at(p), _mm256_loadu_si256(p.add(2) as *const __m256i)) })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q4_0_n<const N: usize>(w: &[u8], a: [&[BlockQ8]; N]) -> [f32; N] {
    dot_32::<N, 18>(w, a, |p| unsafe { (f16_at(p), _mm256_sub_epi8(nibbles_32(p.add(2)), _mm256_set1_epi8(8))) })
}

#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot_q5_0_n<const N: usize>(w: &[u8], a: [&[BlockQ8]; N]) -> [f32; N] {
    dot_32::<N, 22>(w, a, |p| unsafe {
        let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
        let hi = _mm256_and_si256(bits_32(qh), _mm256_set1_epi8(0x10));
        let qx = _mm256_or_si256(nibbles_32(p.add(6)), hi);
        (f16_at(p), _mm256_sub_epi8(qx, _mm256_set1_epi8(16)))
    })
}

/// The 8 scales and 8 mins of a Q4_K/Q5_K super-block, from their 12 packed bytes, as two
/// 8-byte words (byte j = sub-block j): scale j < 4 is `q[j] & 63`, min j < 4 `q[j+4] & 63`;
/// for j ≥ 4 the low 4 bits come from `q[j+4]` (scale: low nibble, min: high nibble) and the
/// top 2 bits from bits 6–7 of `q[j-4]` (scale) or `q[j]` (min). Word arithmetic, no loop.
#[inline]
pub(super) fn k4_scales_mins(q: &[u8]) -> (u64, u64) {
    let word = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (w0, w1, w2) = (word(0), word(1), word(2));
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const TOP2: u32 = 0x0303_0303;
    let sc_lo = w0 & LOW6;
    let sc_hi = (w2 & LOW4) | (((w0 >> 6) & TOP2) << 4);
    let mn_lo = w1 & LOW6;
    let mn_hi = ((w2 >> 4) & LOW4) | (((w1 >> 6) & TOP2) << 4);
    (sc_lo as u64 | (sc_hi as u64) << 32, mn_lo as u64 | (mn_hi as u64) << 32)
}

/// The K-quant kernels for the CPU features `$features`, with `$madd_add(acc, p, s)` =
/// `acc + vpmaddwd(p, s)`: AVX2 adds the product, AVX-512 VNNI fuses both into `vpdpwssd`
/// (`vnni.rs`). The integer sums are exact either way, so both give the same results bit for
/// bit; the macro only compiles the one text twice, for each instruction set.
macro_rules! k_quant_kernels {
    ($features:literal, $madd_add:path) => {
        /// Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins; `levels(p, c)` gives
        /// the unsigned levels of sub-blocks `2c` and `2c + 1` (`TS` bytes per super-block).
        ///
        /// Scales and mins stay in vectors: each sub-block's scale is spread over a register
        /// by one byte shuffle, and the mins meet the activation's 32-element sums in one
        /// `vpmaddwd` per row, so a super-block costs no scalar loop (that loop was half the
        /// time of a decode step's rows).
        ///
        /// Registers: one row alone sums even and odd sub-blocks apart (a fused multiply-add
        /// waits on the previous one, and one chain of eight would bound its speed); several
        /// rows are independent chains already, and two accumulators a row would not fit in
        /// the 16 AVX2 registers beside the levels and scales (at four rows the accumulators
        /// spilled to the stack; the unpacked levels still do, and are reread from L1 for each
        /// row). The minimum term goes into the same float accumulator for that reason.
        /// Integer sums are exact, so the split changes no bit of the result.
        #[inline]
        #[target_feature(enable = $features)]
        pub(super) unsafe fn dot_k_mins<const N: usize, const TS: usize>(
            w: &[u8],
            a: [&[BlockQ8K]; N],
            levels: impl Fn(*const u8, usize) -> (__m256i, __m256i),
        ) -> [f32; N] {
            use super::avx2::{f16_at, hsum, k4_scales_mins};
            let split = N == 1;
            let mut acc = [_mm256_setzero_ps(); N];
            // Byte masks spreading i16 lane k of a 128-bit half over all 8 lanes of that half.
            let spread = |k: i8| _mm256_set1_epi16(((2 * k + 1) as i16) << 8 | (2 * k) as i16);
            let masks = [spread(0), spread(1), spread(2), spread(3), spread(4), spread(5), spread(6), spread(7)];
            for (b, blk) in w.chunks_exact(TS).enumerate() {
                let p = blk.as_ptr();
                let (d, dmin) = (f16_at(p), f16_at(p.add(2)));
                let (sc, mn) = k4_scales_mins(&blk[4..16]);
                // 8 scales | 8 mins as i16.
                let sc_mn = _mm256_cvtepu8_epi16(_mm_set_epi64x(mn as i64, sc as i64));
                let scales = _mm256_permute2x128_si256(sc_mn, sc_mn, 0x00);
                let mins = _mm256_extracti128_si256(sc_mn, 1);
                let (mut even, mut odd) = ([_mm256_setzero_si256(); N], [_mm256_setzero_si256(); N]);
                for c in 0..4 {
                    let (ql, qh) = levels(p, c);
                    let sl = _mm256_shuffle_epi8(scales, masks[2 * c]);
                    let sh = _mm256_shuffle_epi8(scales, masks[2 * c + 1]);
                    for i in 0..N {
                        let q8 = a[i].get_unchecked(b).qs.as_ptr().add(64 * c);
                        let q8l = _mm256_loadu_si256(q8 as *const __m256i);
                        let q8h = _mm256_loadu_si256(q8.add(32) as *const __m256i);
                        even[i] = $madd_add(even[i], _mm256_maddubs_epi16(ql, q8l), sl);
                        let high = if split { &mut odd[i] } else { &mut even[i] };
                        *high = $madd_add(*high, _mm256_maddubs_epi16(qh, q8h), sh);
                    }
                }
                for i in 0..N {
                    let ab = a[i].get_unchecked(b);
                    let sumi = if split { _mm256_add_epi32(even[i], odd[i]) } else { even[i] };
                    // Σ_j min_j · (Σ of sub-block j's activations), in lanes 0-3.
                    let m = _mm_madd_epi16(mins, _mm_loadu_si128(ab.bsums32.as_ptr() as *const __m128i));
                    let m = _mm256_zextps128_ps256(_mm_cvtepi32_ps(m));
                    acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(ab.d * d), _mm256_cvtepi32_ps(sumi), acc[i]);
                    acc[i] = _mm256_fnmadd_ps(_mm256_set1_ps(ab.d * dmin), m, acc[i]);
                }
            }
            let mut out = [0.0f32; N];
            for i in 0..N {
                out[i] = hsum(acc[i]);
            }
            out
        }

        #[target_feature(enable = $features)]
        pub(crate) unsafe fn dot_q4_k_n<const N: usize>(w: &[u8], a: [&[BlockQ8K]; N]) -> [f32; N] {
            dot_k_mins::<N, 144>(w, a, |p, c| unsafe { super::avx2::q4_k_levels(p, c) })
        }

        #[target_feature(enable = $features)]
        pub(crate) unsafe fn dot_q5_k_n<const N: usize>(w: &[u8], a: [&[BlockQ8K]; N]) -> [f32; N] {
            dot_k_mins::<N, 176>(w, a, |p, c| unsafe { super::avx2::q5_k_levels(p, c) })
        }

        #[target_feature(enable = $features)]
        pub(crate) unsafe fn dot_q6_k_n<const N: usize>(w: &[u8], a: [&[BlockQ8K]; N]) -> [f32; N] {
            use super::avx2::{f16_at, hsum};
            let m4 = _mm256_set1_epi8(0x0f);
            let m2 = _mm256_set1_epi8(3);
            let mut acc = [_mm256_setzero_ps(); N];
            // Byte masks: the low 128-bit lane takes i16 lane 2q everywhere, the high lane 2q + 1.
            let spread = |k: i8| _mm_set1_epi16(((2 * k + 1) as i16) << 8 | (2 * k) as i16);
            let pair = |q: i8| _mm256_set_m128i(spread(2 * q + 1), spread(2 * q));
            let pair_masks = [pair(0), pair(1), pair(2), pair(3)];
            for (b, blk) in w.chunks_exact(210).enumerate() {
                let p = blk.as_ptr();
                let d = f16_at(p.add(208));
                // The 16 sub-block scales as i16 (signed), for the products and the offset.
                let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(192) as *const __m128i));
                // One row alone sums even and odd quarters apart, several rows one chain each
                // (see `dot_k_mins`).
                let split = N == 1;
                let (mut even, mut odd) = ([_mm256_setzero_si256(); N], [_mm256_setzero_si256(); N]);
                for h in 0..2 {
                    let ql0 = _mm256_loadu_si256(p.add(64 * h) as *const __m256i);
                    let ql1 = _mm256_loadu_si256(p.add(64 * h + 32) as *const __m256i);
                    let qh = _mm256_loadu_si256(p.add(128 + 32 * h) as *const __m256i);
                    let high = |shift: i32| {
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(shift)), m2), 4)
                    };
                    let q = [
                        _mm256_or_si256(_mm256_and_si256(ql0, m4), high(0)),
                        _mm256_or_si256(_mm256_and_si256(ql1, m4), high(2)),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), high(4)),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), high(6)),
                    ];
                    // This half's 8 scales in both 128-bit lanes, spread by a byte shuffle.
                    let half_scales = if h == 0 {
                        _mm256_permute2x128_si256(sc16, sc16, 0x00)
                    } else {
                        _mm256_permute2x128_si256(sc16, sc16, 0x11)
                    };
                    for (quarter, qv) in q.iter().enumerate() {
                        // Low lane: scale 2·quarter of this half, high lane: the next one.
                        let scv = _mm256_shuffle_epi8(half_scales, pair_masks[quarter]);
                        for i in 0..N {
                            let q8 = a[i].get_unchecked(b).qs.as_ptr().add(128 * h + 32 * quarter);
                            let q8 = _mm256_loadu_si256(q8 as *const __m256i);
                            let acc = if split && quarter % 2 == 1 { &mut odd[i] } else { &mut even[i] };
                            *acc = $madd_add(*acc, _mm256_maddubs_epi16(*qv, q8), scv);
                        }
                    }
                }
                for i in 0..N {
                    let ab = a[i].get_unchecked(b);
                    // The −32 offset of every level, through the 16-element activation sums,
                    // taken away in the integer sum (exact; no scalar work per block and row).
                    let bs = _mm256_loadu_si256(ab.bsums.as_ptr() as *const __m256i);
                    let off = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 5);
                    let sum = if split { _mm256_add_epi32(even[i], odd[i]) } else { even[i] };
                    let sumi = _mm256_sub_epi32(sum, off);
                    acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(ab.d * d), _mm256_cvtepi32_ps(sumi), acc[i]);
                }
            }
            let mut out = [0.0f32; N];
            for i in 0..N {
                out[i] = hsum(acc[i]);
            }
            out
        }
    };
}
pub(super) use k_quant_kernels;

/// `acc + vpmaddwd(p, s)` (the AVX2 form of `k_quant_kernels`'s accumulation).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn madd_add(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(p, s))
}

/// Q4_K levels of sub-blocks `2c` (low nibbles) and `2c + 1` (high nibbles).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q4_k_levels(p: *const u8, c: usize) -> (__m256i, __m256i) {
    let m4 = _mm256_set1_epi8(0x0f);
    let q4 = _mm256_loadu_si256(p.add(16 + 32 * c) as *const __m256i);
    (_mm256_and_si256(q4, m4), _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4))
}

/// Q5_K levels of sub-blocks `2c` and `2c + 1`: the nibbles plus the fifth bit from `qh`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q5_k_levels(p: *const u8, c: usize) -> (__m256i, __m256i) {
    let (m4, one) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(1));
    let qh = _mm256_loadu_si256(p.add(16) as *const __m256i);
    let q5 = _mm256_loadu_si256(p.add(48 + 32 * c) as *const __m256i);
    // Bit k of each byte → 0x10 (16-bit shifts keep bits within their byte for k < 8).
    let hl = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c as i32)), one), 4);
    let hh = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * c as i32 + 1)), one), 4);
    (_mm256_or_si256(_mm256_and_si256(q5, m4), hl), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q5, 4), m4), hh))
}

k_quant_kernels!("avx2,fma,f16c", madd_add);

macro_rules! one_row {
    ($($name:ident => $n:ident : $blk:ty),*) => {$(
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(crate) unsafe fn $name(w: &[u8], a: &[$blk]) -> f32 {
            $n::<1>(w, [a])[0]
        }
    )*};
}
one_row!(dot_q8_0 => dot_q8_0_n: BlockQ8, dot_q4_0 => dot_q4_0_n: BlockQ8, dot_q5_0 => dot_q5_0_n: BlockQ8,
         dot_q4_k => dot_q4_k_n: BlockQ8K, dot_q5_k => dot_q5_k_n: BlockQ8K, dot_q6_k => dot_q6_k_n: BlockQ8K);

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
