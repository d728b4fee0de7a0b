//! Row·activation dot kernels and their selection: AVX2/FMA/F16C when the CPU has them
//! (checked once at run time), portable Rust otherwise, and the reference twin
//! ([`reference_matmul`]: dequantize to f32, dot in f64) that tests hold both against.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod portable;

use crate::activation::{BlockQ8, BlockQ8K};
use crate::formats::dequantize_unchecked;
use whale_core::gguf::GgmlType;

/// Which implementation of the kernels to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// x86-64 AVX2 + FMA + F16C (formats without an AVX2 kernel use the portable one).
    Avx2,
    /// Plain Rust, any CPU.
    Portable,
}

impl Backend {
    /// The fastest backend this CPU supports.
    pub fn best() -> Backend {
        if Backend::Avx2.is_available() {
            Backend::Avx2
        } else {
            Backend::Portable
        }
    }

    pub fn is_available(self) -> bool {
        match self {
            Backend::Portable => true,
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
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx2 => false,
        }
    }
}

/// A dot product of one weight row (raw bytes) with one activation row.
#[derive(Clone, Copy)]
pub(crate) enum RowDot {
    /// 32-element formats against 8-bit activation blocks.
    Q8(unsafe fn(&[u8], &[BlockQ8]) -> f32),
    /// K-quants against 256-element 8-bit activation blocks.
    Q8K(unsafe fn(&[u8], &[BlockQ8K]) -> f32),
    /// Float formats against f32 activations.
    F32(unsafe fn(&[u8], &[f32]) -> f32),
}

/// The kernel for `ty` on `backend`; `Backend::Avx2` must be available.
pub(crate) fn row_dot(ty: GgmlType, backend: Backend) -> RowDot {
    use GgmlType as T;
    #[cfg(target_arch = "x86_64")]
    if backend == Backend::Avx2 && Backend::Avx2.is_available() {
        match ty {
            T::Q8_0 => return RowDot::Q8(avx2::dot_q8_0),
            T::Q4_0 => return RowDot::Q8(avx2::dot_q4_0),
            T::Q5_0 => return RowDot::Q8(avx2::dot_q5_0),
            T::Q4_K => return RowDot::Q8K(avx2::dot_q4_k),
            T::Q5_K => return RowDot::Q8K(avx2::dot_q5_k),
            T::Q6_K => return RowDot::Q8K(avx2::dot_q6_k),
            T::F32 => return RowDot::F32(avx2::dot_f32),
            T::F16 => return RowDot::F32(avx2::dot_f16),
            T::BF16 => return RowDot::F32(avx2::dot_bf16),
            _ => {}
        }
    }
    let _ = backend;
    match ty {
        T::Q8_0 => RowDot::Q8(portable::dot_q8_0),
        T::Q4_0 => RowDot::Q8(portable::dot_q4_0),
        T::Q4_1 => RowDot::Q8(portable::dot_q4_1),
        T::Q5_0 => RowDot::Q8(portable::dot_q5_0),
        T::Q5_1 => RowDot::Q8(portable::dot_q5_1),
        T::Q2_K => RowDot::Q8K(portable::dot_q2_k),
        T::Q3_K => RowDot::Q8K(portable::dot_q3_k),
        T::Q4_K => RowDot::Q8K(portable::dot_q4_k),
        T::Q5_K => RowDot::Q8K(portable::dot_q5_k),
        T::Q6_K => RowDot::Q8K(portable::dot_q6_k),
        T::F16 => RowDot::F32(portable::dot_f16),
        T::BF16 => RowDot::F32(portable::dot_bf16),
        _ => RowDot::F32(portable::dot_f32),
    }
}

/// A short name of the kernel `ty` runs with on this CPU (for benchmarks and logs).
pub fn kernel_name(ty: GgmlType) -> &'static str {
    use GgmlType as T;
    let simd = matches!(ty, T::Q8_0 | T::Q4_0 | T::Q5_0 | T::Q4_K | T::Q5_K | T::Q6_K | T::F32 | T::F16 | T::BF16);
    match (Backend::best(), simd) {
        (Backend::Avx2, true) => "avx2",
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
