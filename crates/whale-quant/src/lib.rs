//! Block quantization formats (GGML's F16/BF16, Q8_0 … Q6_K) and their CPU kernels.
//!
//! - [`dequantize_row`] / [`quantize_row`]: bit-exact with ggml's `dequantize_row_*` and
//!   `quantize_row_*_ref` (checked against gguf-py goldens in `tests/golden.rs`).
//! - [`QMatrix`]: a weight matrix in one format, rows as laid out in GGUF, multiplied with
//!   f32 activations by integer dot-product kernels (activations quantized to 8 bits as in
//!   llama.cpp), AVX2/FMA when the CPU has it, a portable version otherwise, and a reference
//!   twin (`reference_matmul`) that the tests compare both with.

mod activation;
mod decode_kernels;
mod error;
pub mod fp8;
mod formats;
mod kernels;
mod matmul;
mod qmatrix;
mod threads;

pub use decode_kernels::{decode_kernels, decoding};
pub use error::QuantError;
pub use formats::{dequantize_row, quantize_row, SUPPORTED};
pub use kernels::{kernel_name, reference_matmul, Backend};
pub use qmatrix::{candle_dtype, QMatrix};
pub use threads::{install, num_threads, set_num_threads};
pub use whale_core::gguf::GgmlType;
