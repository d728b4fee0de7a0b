//! Errors of the quantization crate: shapes and byte lengths that do not fit a GGML format.
//!
//! Quantized bytes usually come from a file, so every mismatch names what was expected and
//! what was found; `From<QuantError> for WhaleError` lets callers use `?` in model code.

use whale_core::gguf::GgmlType;
use whale_core::WhaleError;

#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// The format has no dequantizer/kernel in this crate (e.g. the IQ formats).
    #[error("ggml type {ty} is not supported by whale-quant (supported: {supported})")]
    Unsupported { ty: GgmlType, supported: String },

    /// The row length is not a whole number of blocks.
    #[error("{ty}: {what} {found} is not a multiple of the block size {block}")]
    NotBlockMultiple { ty: GgmlType, what: &'static str, found: usize, block: usize },

    /// A byte buffer of the wrong length.
    #[error("{ty}: {what}: expected {expected} bytes, found {found}")]
    ByteLength { ty: GgmlType, what: String, expected: usize, found: usize },

    /// An f32 buffer or tensor of the wrong shape.
    #[error("{what}: expected {expected}, found {found}")]
    Shape { what: String, expected: String, found: String },

    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

impl From<QuantError> for WhaleError {
    fn from(e: QuantError) -> Self {
        match e {
            QuantError::Tensor(t) => WhaleError::Tensor(t),
            other => WhaleError::InvalidInput(other.to_string()),
        }
    }
}
