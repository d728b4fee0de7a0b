//! AVX-512 VNNI (`vpdpbusd` / `vpdpwssd` on 256-bit registers, AVX512-VL) dot products,
//! selected at run time on CPUs that have it (Intel since Ice Lake, AMD since Zen 4): the
//! 32-element formats here, the K-quants through `avx2::k_quant_kernels`.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes and sums groups of four straight into i32,
//! replacing AVX2's `vpmaddubsw` + `vpmaddwd` pair. Weights are fed as unsigned levels with
//! a constant offset instead of through the `vpsignb` trick: Q4_0 stores `q + 8`, Q5_0
//! `q + 16`, and Q8_0's signed bytes become `q + 128` by flipping the top bit. The offset's
//! contribution, `offset · Σ activations`, comes from the activation block's exact integer
//! sum, so the integer sums equal the AVX2 and portable kernels' exactly.

#![allow(clippy::missing_safety_doc)]

use std::arch::x86_64::*;

use super::avx2::{bits_32, f16_at, hsum, k_quant_kernels, nibbles_32};
use crate::activation::{BlockQ8, BlockQ8K};

/// `unpack(block) -> (weight scale, 32 unsigned levels, level offset)`; `N` activation rows
/// share each unpacked block, as in `avx2::dot_32`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
unsafe fn dot_32<const N: usize, const TS: usize>(
    w: &[u8],
    a: [&[BlockQ8]; N],
    offset: i32,
    unpack: impl Fn(*const u8) -> (f32, __m256i),
) -> [f32; N] {
    // Even and odd blocks accumulate apart (see `avx2::dot_32`).
    let (mut even, mut odd) = ([_mm256_setzero_ps(); N], [_mm256_setzero_ps(); N]);
    let step = |acc: &mut [__m256; N], b: usize, blk: &[u8]| {
        let (dw, qx) = unpack(blk.as_ptr());
        for i in 0..N {
            let ab = a[i].get_unchecked(b);
            let qy = _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i);
            // The offset's share starts lane 0 of the integer sum (the other lanes zero), so
            // it is taken away exactly, with no scalar float work per block.
            let init = _mm256_zextsi128_si256(_mm_cvtsi32_si128(-offset * ab.sum));
            let dot = _mm256_dpbusd_epi32(init, qx, qy);
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

#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
pub(crate) unsafe fn dot_q8_0_n<const N: usize>(w: &[u8], a: [&[BlockQ8]; N]) -> [f32; N] {
    dot_32::<N, 34>(w, a, 128, |p| unsafe {
        let q = _mm256_loadu_si256(p.add(2) as *const __m256i);
        (f16_at(p), _mm256_xor_si256(q, _mm256_set1_epi8(-128)))
    })
}

#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
pub(crate) unsafe fn dot_q4_0_n<const N: usize>(w: &[u8], a: [&[BlockQ8]; N]) -> [f32; N] {
    dot_32::<N, 18>(w, a, 8, |p| unsafe { (f16_at(p), nibbles_32(p.add(2))) })
}

#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
pub(crate) unsafe fn dot_q5_0_n<const N: usize>(w: &[u8], a: [&[BlockQ8]; N]) -> [f32; N] {
    dot_32::<N, 22>(w, a, 16, |p| unsafe {
        let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
        let hi = _mm256_and_si256(bits_32(qh), _mm256_set1_epi8(0x10));
        (f16_at(p), _mm256_or_si256(nibbles_32(p.add(6)), hi))
    })
}

/// `acc + vpmaddwd(p, s)` in one `vpdpwssd` (the K-quant kernels' accumulation).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
unsafe fn madd_add(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
    _mm256_dpwssd_epi32(acc, p, s)
}

// Q4_K, Q5_K and Q6_K: the AVX2 kernels with each `vpmaddwd` + `vpaddd` pair fused.
k_quant_kernels!("avx2,fma,f16c,avx512vnni,avx512vl", madd_add);

macro_rules! one_row {
    ($($name:ident => $n:ident : $blk:ty),*) => {$(
        #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
        pub(crate) unsafe fn $name(w: &[u8], a: &[$blk]) -> f32 {
            $n::<1>(w, [a])[0]
        }
    )*};
}
one_row!(dot_q8_0 => dot_q8_0_n: BlockQ8, dot_q4_0 => dot_q4_0_n: BlockQ8, dot_q5_0 => dot_q5_0_n: BlockQ8);
