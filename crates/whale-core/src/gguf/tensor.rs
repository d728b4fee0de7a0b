//! GGUF tensor infos (GGUF spec, "gguf_tensor_info_t") and the GGML tensor types.
//!
//! A tensor info is a name, up to four dimensions in GGML order (`dims[0]` varies fastest, i.e.
//! the reverse of a row-major shape), a GGML type id and an offset relative to the data section.
//! The block size and bytes per block of each GGML type (from ggml's type traits) give the
//! tensor's size in bytes, so its extent can be checked against the file before any of its
//! data is read. Dequantization lives elsewhere; this file only describes where the bytes are.

use super::error::GgufErrorKind;

/// GGML's `GGML_MAX_DIMS`.
pub const GGML_MAX_DIMS: usize = 4;

/// The GGML tensor types a GGUF file may hold (ids as in ggml.h; removed ids are unknown).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
}

/// (type, ggml id, name, elements per block, bytes per block)
const TABLE: &[(GgmlType, u32, &str, u64, u64)] = {
    use GgmlType::*;
    &[
        (F32, 0, "F32", 1, 4),
        (F16, 1, "F16", 1, 2),
        (Q4_0, 2, "Q4_0", 32, 18),
        (Q4_1, 3, "Q4_1", 32, 20),
        (Q5_0, 6, "Q5_0", 32, 22),
        (Q5_1, 7, "Q5_1", 32, 24),
        (Q8_0, 8, "Q8_0", 32, 34),
        (Q8_1, 9, "Q8_1", 32, 36),
        (Q2_K, 10, "Q2_K", 256, 84),
        (Q3_K, 11, "Q3_K", 256, 110),
        (Q4_K, 12, "Q4_K", 256, 144),
        (Q5_K, 13, "Q5_K", 256, 176),
        (Q6_K, 14, "Q6_K", 256, 210),
        (Q8_K, 15, "Q8_K", 256, 292),
        (IQ2_XXS, 16, "IQ2_XXS", 256, 66),
        (IQ2_XS, 17, "IQ2_XS", 256, 74),
        (IQ3_XXS, 18, "IQ3_XXS", 256, 98),
        (IQ1_S, 19, "IQ1_S", 256, 50),
        (IQ4_NL, 20, "IQ4_NL", 32, 18),
        (IQ3_S, 21, "IQ3_S", 256, 110),
        (IQ2_S, 22, "IQ2_S", 256, 82),
        (IQ4_XS, 23, "IQ4_XS", 256, 136),
        (I8, 24, "I8", 1, 1),
        (I16, 25, "I16", 1, 2),
        (I32, 26, "I32", 1, 4),
        (I64, 27, "I64", 1, 8),
        (F64, 28, "F64", 1, 8),
        (IQ1_M, 29, "IQ1_M", 256, 56),
        (BF16, 30, "BF16", 1, 2),
        (TQ1_0, 34, "TQ1_0", 256, 54),
        (TQ2_0, 35, "TQ2_0", 256, 66),
        (MXFP4, 39, "MXFP4", 32, 17),
    ]
};

impl GgmlType {
    pub fn from_id(id: u32) -> Option<Self> {
        TABLE.iter().find(|e| e.1 == id).map(|e| e.0)
    }
    fn entry(self) -> &'static (GgmlType, u32, &'static str, u64, u64) {
        // Every variant has exactly one row; the fallback is never taken.
        TABLE.iter().find(|e| e.0 == self).unwrap_or(&TABLE[0])
    }
    pub fn id(self) -> u32 {
        self.entry().1
    }
    pub fn name(self) -> &'static str {
        self.entry().2
    }
    /// Elements per quantization block (1 for plain types).
    pub fn block_size(self) -> u64 {
        self.entry().3
    }
    /// Bytes per block.
    pub fn type_size(self) -> u64 {
        self.entry().4
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where one tensor lives in a GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in GGML order: `dims[0]` is the innermost (contiguous) one.
    pub dims: Vec<u64>,
    /// The raw GGML type id from the file.
    pub type_id: u32,
    /// The type, if this reader knows the id.
    pub ggml_type: Option<GgmlType>,
    /// Offset of the first byte relative to the start of the data section.
    pub offset: u64,
    /// Size in bytes (known when the type is known).
    pub n_bytes: Option<u64>,
}

impl TensorInfo {
    pub(crate) fn new(
        name: String,
        dims: Vec<u64>,
        type_id: u32,
        ggml_type: Option<GgmlType>,
        offset: u64,
    ) -> Result<Self, GgufErrorKind> {
        let bad = |reason: String| GgufErrorKind::BadTensorShape { name: name.clone(), reason };
        let mut n_elements: u64 = 1;
        for &d in &dims {
            n_elements = n_elements
                .checked_mul(d)
                .filter(|&n| n <= i64::MAX as u64)
                .ok_or_else(|| bad(format!("shape {dims:?} overflows")))?;
        }
        let n_bytes = match ggml_type {
            None => None,
            Some(t) => {
                let row = dims.first().copied().unwrap_or(1);
                if row % t.block_size() != 0 {
                    return Err(bad(format!(
                        "innermost dimension {row} is not a multiple of the {t} block size {}",
                        t.block_size()
                    )));
                }
                Some((n_elements / t.block_size()).checked_mul(t.type_size()).ok_or_else(|| {
                    bad(format!("shape {dims:?} of type {t} overflows a byte count"))
                })?)
            }
        };
        Ok(TensorInfo { name, dims, type_id, ggml_type, offset, n_bytes })
    }

    /// Number of elements (product of the dimensions; 1 for a scalar).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// The shape in row-major (PyTorch/candle) order: the reverse of `dims`.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}
