//! The block formats: which GGML types this crate reads and writes, and row-level
//! dequantization / reference quantization dispatched on the type.
//!
//! Every function here is the exact (bit-for-bit) counterpart of ggml's `dequantize_row_*`
//! and `quantize_row_*_ref`; the fast matmul kernels live in `crate::kernels`.

mod fit;
pub(crate) mod float;
pub(crate) mod legacy;
pub(crate) mod q2k;
pub(crate) mod q3k;
pub(crate) mod q4k;
pub(crate) mod q5k;
pub(crate) mod q6k;
pub(crate) mod scalar;

use crate::QuantError;
use whale_core::gguf::GgmlType;

/// The types this crate dequantizes, quantizes and multiplies.
pub const SUPPORTED: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

pub(crate) fn check_supported(ty: GgmlType) -> Result<(), QuantError> {
    if SUPPORTED.contains(&ty) {
        Ok(())
    } else {
        Err(QuantError::Unsupported {
            ty,
            supported: SUPPORTED.iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
        })
    }
}

/// Bytes of `n` elements of `ty` (`n` a multiple of the block size), checking the multiple.
pub(crate) fn row_bytes(ty: GgmlType, n: usize, what: &'static str) -> Result<usize, QuantError> {
    check_supported(ty)?;
    let block = ty.block_size() as usize;
    if n % block != 0 {
        return Err(QuantError::NotBlockMultiple { ty, what, found: n, block });
    }
    Ok(n / block * ty.type_size() as usize)
}

/// Dequantizes whole blocks: `out.len()` elements from exactly as many bytes as they take.
pub fn dequantize_row(ty: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
    let expected = row_bytes(ty, out.len(), "output length")?;
    if bytes.len() != expected {
        return Err(QuantError::ByteLength {
            ty,
            what: format!("{} elements", out.len()),
            expected,
            found: bytes.len(),
        });
    }
    dequantize_unchecked(ty, bytes, out);
    Ok(())
}

/// Quantizes whole blocks with ggml's reference quantizer for `ty`.
pub fn quantize_row(ty: GgmlType, x: &[f32], out: &mut [u8]) -> Result<(), QuantError> {
    let expected = row_bytes(ty, x.len(), "input length")?;
    if out.len() != expected {
        return Err(QuantError::ByteLength {
            ty,
            what: format!("output for {} elements", x.len()),
            expected,
            found: out.len(),
        });
    }
    use GgmlType as T;
    match ty {
        T::F32 => float::quantize_f32(x, out),
        T::F16 => float::quantize_f16(x, out),
        T::BF16 => float::quantize_bf16(x, out),
        T::Q8_0 => legacy::quantize_q8_0(x, out),
        T::Q4_0 => legacy::quantize_q4_0(x, out),
        T::Q4_1 => legacy::quantize_q4_1(x, out),
        T::Q5_0 => legacy::quantize_q5_0(x, out),
        T::Q5_1 => legacy::quantize_q5_1(x, out),
        T::Q2_K => q2k::quantize(x, out),
        T::Q3_K => q3k::quantize(x, out),
        T::Q4_K => q4k::quantize(x, out),
        T::Q5_K => q5k::quantize(x, out),
        T::Q6_K => q6k::quantize(x, out),
        _ => unreachable!("checked by row_bytes"),
    }
    Ok(())
}

/// Dequantization once lengths are known to match (`bytes` = whole blocks of `out`).
pub(crate) fn dequantize_unchecked(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
    use GgmlType as T;
    match ty {
        T::F32 => float::dequantize_f32(bytes, out),
        T::F16 => float::dequantize_f16(bytes, out),
        T::BF16 => float::dequantize_bf16(bytes, out),
        T::Q8_0 => legacy::dequantize_q8_0(bytes, out),
        T::Q4_0 => legacy::dequantize_q4_0(bytes, out),
        T::Q4_1 => legacy::dequantize_q4_1(bytes, out),
        T::Q5_0 => legacy::dequantize_q5_0(bytes, out),
        T::Q5_1 => legacy::dequantize_q5_1(bytes, out),
        T::Q2_K => q2k::dequantize(bytes, out),
        T::Q3_K => q3k::dequantize(bytes, out),
        T::Q4_K => q4k::dequantize(bytes, out),
        T::Q5_K => q5k::dequantize(bytes, out),
        T::Q6_K => q6k::dequantize(bytes, out),
        _ => unreachable!("only supported types reach here"),
    }
}
