//! Row·activation dot kernels and their selection: AVX2/FMA/F16C when the CPU has them
//! (checked once at run time), portable Rust otherwise, and the reference twin
//! ([`reference_matmul`]: dequantize to f32, dot in f64) that tests hold both against.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod vnni;
mod portable;

use crate::activation::{BlockQ8, BlockQ8K};
use crate::formats::dequantize_unchecked;
use whale_core::gguf::GgmlType;

/// Which implementation of the kernels to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// x86-64 AVX-512 VNNI (on 256-bit registers) for Q8_0/Q4_0/Q5_0 and the K-quants Q4_K,
    /// Q5_K, Q6_K, AVX2 for the rest.
    Vnni,
    /// x86-64 AVX2 + FMA + F16C (formats without an AVX2 kernel use the portable one).
    Avx2,
    /// Plain Rust, any CPU.
    Portable,
    /// candle's quantized CPU matmul (its own kernels and thread pool).
    Candle,
}

impl Backend {
    /// The fastest backend this CPU supports.
    pub fn best() -> Backend {
        if Backend::Vnni.is_available() {
            Backend::Vnni
        } else if Backend::Avx2.is_available() {
            Backend::Avx2
        } else {
            Backend::Portable
        }
    }

    /// The implementation `QMatrix::matmul` runs for `ty`, as measured by
    /// `examples/qbench.rs` (docs/benchmarks.md): candle's kernels for the formats where they
    /// win (Q8_0, Q4_K, Q2_K, Q3_K, thanks to its AMX/VNNI repacking on x86), Whale's
    /// elsewhere (candle has no SIMD Q5_0, Q4_1, Q5_1, and is slower for Q4_0 and Q5_K).
    ///
    /// The choice depends on the format only, never on the number of rows: a row's
    /// result must not depend on what else is in the batch, or a request would get other
    /// tokens at temperature 0 when served beside others than alone. Q6_K is Whale's for
    /// that reason: candle multiplies one row through its compact weights and two or more
    /// through repacked ones, which round differently (`tests/kernels.rs` checks every
    /// backend row by row).
    ///
    /// The shape counts for Q8_0 only: candle repacks it (and is several times faster) when
    /// the rows are a multiple of 16 and the columns of 256; other shapes, such as Gemma 3's
    /// 640-wide embedding that is also its output head, take candle's plain kernel, which is
    /// a third of Whale's speed from 4 rows on. A matrix's shape is fixed, so the choice still
    /// never depends on the batch.
    ///
    /// `WHALE_QUANT_BACKEND=candle|vnni|avx2|portable` forces one (for comparisons and
    /// debugging; an unavailable choice falls back to the portable kernels).
    pub fn auto(ty: GgmlType, rows: usize, cols: usize) -> Backend {
        use GgmlType as T;
        if let Some(forced) = forced_backend() {
            return forced;
        }
        let candle_repacks = rows % 16 == 0 && cols % 256 == 0;
        if matches!(ty, T::Q4_K | T::Q2_K | T::Q3_K) || (ty == T::Q8_0 && candle_repacks) {
            Backend::Candle
        } else {
            Backend::best()
        }
    }

    /// The implementation decode rows take (inside [`crate::decode_kernels`]): Whale's SIMD
    /// kernels for every format that has them, which stream large weights faster than
    /// candle's at one to a few rows (docs/benchmarks.md); [`Backend::auto`] otherwise.
    pub fn for_decode(ty: GgmlType, rows: usize, cols: usize) -> Backend {
        if let Some(forced) = forced_backend() {
            return forced;
        }
        if has_simd_kernel(ty) && Backend::Avx2.is_available() {
            Backend::best()
        } else {
            Backend::auto(ty, rows, cols)
        }
    }

    pub fn is_available(self) -> bool {
        match self {
            Backend::Portable | Backend::Candle => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => {
                use std::sync::OnceLock;
                static HAS: OnceLock<bool> = OnceLock::new();
                *HAS.get_or_init(|| {
                    is_x86_feature_detected!("avx2")
                        && is_x86_feature_detected!("fma")
                        && is_x86_feature_detected!("f16c")
                })
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Vnni => {
                use std::sync::OnceLock;
                static HAS: OnceLock<bool> = OnceLock::new();
                *HAS.get_or_init(|| {
                    Backend::Avx2.is_available()
                        && is_x86_feature_detected!("avx512vnni")
                        && is_x86_feature_detected!("avx512vl")
                })
            }
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx2 | Backend::Vnni => false,
        }
    }
}

/// A dot product of one weight row (raw bytes) with one activation row; where a kernel has
/// a four-row form (`four`), prefill uses it to unpack each weight block once per four
/// activation rows.
#[derive(Clone, Copy)]
pub(crate) enum RowDot {
    /// 32-element formats against 8-bit activation blocks.
    Q8(unsafe fn(&[u8], &[BlockQ8]) -> f32, Option<Four<BlockQ8>>),
    /// K-quants against 256-element 8-bit activation blocks.
    Q8K(unsafe fn(&[u8], &[BlockQ8K]) -> f32, Option<Four<BlockQ8K>>),
    /// Float formats against f32 activations.
    F32(unsafe fn(&[u8], &[f32]) -> f32),
}

fn forced_backend() -> Option<Backend> {
    use std::sync::OnceLock;
    static FORCED: OnceLock<Option<Backend>> = OnceLock::new();
    *FORCED.get_or_init(|| match std::env::var("WHALE_QUANT_BACKEND").ok()?.as_str() {
        "candle" => Some(Backend::Candle),
        "vnni" => Some(Backend::Vnni),
        "avx2" => Some(Backend::Avx2),
        "portable" => Some(Backend::Portable),
        _ => None,
    })
}

/// One weight row against four activation rows.
pub(crate) type Four<B> = unsafe fn(&[u8], [&[B]; 4]) -> [f32; 4];

/// The kernel for `ty` on `backend`; `Backend::Avx2` must be available.
pub(crate) fn row_dot(ty: GgmlType, backend: Backend) -> RowDot {
    use GgmlType as T;
    #[cfg(target_arch = "x86_64")]
    if backend == Backend::Vnni && Backend::Vnni.is_available() {
        match ty {
            T::Q8_0 => return RowDot::Q8(vnni::dot_q8_0, Some(vnni::dot_q8_0_n::<4>)),
            T::Q4_0 => return RowDot::Q8(vnni::dot_q4_0, Some(vnni::dot_q4_0_n::<4>)),
            T::Q5_0 => return RowDot::Q8(vnni::dot_q5_0, Some(vnni::dot_q5_0_n::<4>)),
            // K-quants: VNNI for four rows at a time (its fused multiply-adds pay where the
            // arithmetic bounds), AVX2 for a lone row (which streams weights, and where
            // VNNI measured slower); both give the same bits, so mixing them keeps every
            // row's result independent of the batch.
            T::Q4_K => return RowDot::Q8K(avx2::dot_q4_k, Some(vnni::dot_q4_k_n::<4>)),
            T::Q5_K => return RowDot::Q8K(avx2::dot_q5_k, Some(vnni::dot_q5_k_n::<4>)),
            T::Q6_K => return RowDot::Q8K(avx2::dot_q6_k, Some(vnni::dot_q6_k_n::<4>)),
            _ => {}
        }
    }
    #[cfg(target_arch = "x86_64")]
    if matches!(backend, Backend::Avx2 | Backend::Vnni) && Backend::Avx2.is_available() {
        match ty {
            T::Q8_0 => return RowDot::Q8(avx2::dot_q8_0, Some(avx2::dot_q8_0_n::<4>)),
            T::Q4_0 => return RowDot::Q8(avx2::dot_q4_0, Some(avx2::dot_q4_0_n::<4>)),
            T::Q5_0 => return RowDot::Q8(avx2::dot_q5_0, Some(avx2::dot_q5_0_n::<4>)),
            T::Q4_K => return RowDot::Q8K(avx2::dot_q4_k, Some(avx2::dot_q4_k_n::<4>)),
            T::Q5_K => return RowDot::Q8K(avx2::dot_q5_k, Some(avx2::dot_q5_k_n::<4>)),
            T::Q6_K => return RowDot::Q8K(avx2::dot_q6_k, Some(avx2::dot_q6_k_n::<4>)),
            T::F32 => return RowDot::F32(avx2::dot_f32),
            T::F16 => return RowDot::F32(avx2::dot_f16),
            T::BF16 => return RowDot::F32(avx2::dot_bf16),
            _ => {}
        }
    }
    let _ = backend;
    match ty {
        T::Q8_0 => RowDot::Q8(portable::dot_q8_0, None),
        T::Q4_0 => RowDot::Q8(portable::dot_q4_0, None),
        T::Q4_1 => RowDot::Q8(portable::dot_q4_1, None),
        T::Q5_0 => RowDot::Q8(portable::dot_q5_0, None),
        T::Q5_1 => RowDot::Q8(portable::dot_q5_1, None),
        T::Q2_K => RowDot::Q8K(portable::dot_q2_k, None),
        T::Q3_K => RowDot::Q8K(portable::dot_q3_k, None),
        T::Q4_K => RowDot::Q8K(portable::dot_q4_k, None),
        T::Q5_K => RowDot::Q8K(portable::dot_q5_k, None),
        T::Q6_K => RowDot::Q8K(portable::dot_q6_k, None),
        T::F16 => RowDot::F32(portable::dot_f16),
        T::BF16 => RowDot::F32(portable::dot_bf16),
        _ => RowDot::F32(portable::dot_f32),
    }
}

/// Whether Whale has an AVX2 (or VNNI) kernel for `ty`; the others run the portable one.
fn has_simd_kernel(ty: GgmlType) -> bool {
    use GgmlType as T;
    matches!(ty, T::Q8_0 | T::Q4_0 | T::Q5_0 | T::Q4_K | T::Q5_K | T::Q6_K | T::F32 | T::F16 | T::BF16)
}

/// A short name of the kernel a `rows × cols` matrix in `ty` runs with on this CPU (for
/// benchmarks).
pub fn kernel_name(ty: GgmlType, rows: usize, cols: usize) -> &'static str {
    use GgmlType as T;
    if Backend::auto(ty, rows, cols) == Backend::Candle {
        return "candle";
    }
    match (Backend::best(), has_simd_kernel(ty)) {
        (Backend::Vnni, true) if matches!(ty, T::Q8_0 | T::Q4_0 | T::Q5_0 | T::Q4_K | T::Q5_K | T::Q6_K) => "vnni",
        (Backend::Vnni | Backend::Avx2, true) => "avx2",
        _ => "portable",
    }
}

/// The reference twin of every kernel: dequantizes the weights exactly and accumulates
/// `x · wᵀ` in f64 from the unquantized f32 activations. `w`: `rows × cols` in `ty`,
/// `x`: `m × cols` row-major; returns `m × rows`. Slow; for tests.
pub fn reference_matmul(ty: GgmlType, w: &[u8], rows: usize, cols: usize, x: &[f32], m: usize) -> Vec<f32> {
    let row_bytes = cols / ty.block_size() as usize * ty.type_size() as usize;
    let mut wf = vec![0.0f32; cols];
    let mut out = vec![0.0f32; m * rows];
    for r in 0..rows {
        dequantize_unchecked(ty, &w[r * row_bytes..(r + 1) * row_bytes], &mut wf);
        for i in 0..m {
            let xi = &x[i * cols..(i + 1) * cols];
            let s: f64 = wf.iter().zip(xi).map(|(&a, &b)| a as f64 * b as f64).sum();
            out[i * rows + r] = s as f32;
        }
    }
    out
}
