//! Dequantization of GGUF block types to f32 (for tensors that are used dense: norms,
//! embeddings, the MLA up-projection), through whale-quant's ggml-exact `dequantize_row`.

use whale_core::weights::RawTensor;
use whale_core::{Result, WhaleError};

/// `raw` (any block type whale-quant knows) → `shape.product()` f32 values.
pub fn dequantize(name: &str, raw: &RawTensor<'_>) -> Result<Vec<f32>> {
    let n: usize = raw.shape.iter().product();
    let mut out = vec![0f32; n];
    whale_quant::dequantize_row(raw.ty, &raw.data, &mut out)
        .map_err(|e| WhaleError::InvalidInput(format!("tensor `{name}`: {e}")))?;
    Ok(out)
}
