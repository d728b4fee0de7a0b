//! Token embedding table lookup. A block-quantized table (a GGUF file's Q8_0/Q6_K/...
//! `token_embd`) stays quantized and only the looked-up rows are dequantized, as llama.cpp's
//! `get_rows` does: a 150k-token vocabulary would otherwise take a gigabyte of f32.

use crate::linear::is_float;
use crate::Result;
use candle_core::{DType, Device, Tensor};
use std::sync::OnceLock;
use whale_core::Weights;
use whale_quant::QMatrix;

#[derive(Debug, Clone)]
enum Table {
    Dense(Tensor),
    /// `dense` is made only if the whole table is asked for ([`Embedding::table`]).
    Quant { q: QMatrix, dtype: DType, device: Device, dense: OnceLock<Tensor> },
}

#[derive(Debug, Clone)]
pub struct Embedding {
    table: Table,
}

impl Embedding {
    pub fn load(w: &Weights, name: &str, vocab: usize, dim: usize) -> Result<Self> {
        let w = w.pp(name);
        let table = match w.get_raw(&[vocab, dim], "weight")? {
            Some(raw) if !is_float(raw.ty) => Table::Quant {
                q: QMatrix::from_bytes(raw.ty, vocab, dim, &raw.data)?,
                dtype: w.dtype(),
                device: w.device().clone(),
                dense: OnceLock::new(),
            },
            _ => Table::Dense(w.get(&[vocab, dim], "weight")?),
        };
        Ok(Self { table })
    }

    /// `(vocab, dim)`; also the output head when embeddings are tied. A quantized table is
    /// dequantized on first call and kept.
    pub fn table(&self) -> &Tensor {
        match &self.table {
            Table::Dense(t) => t,
            Table::Quant { q, dtype, device, dense } => dense.get_or_init(|| {
                // QMatrix checked its byte length against rows × cols at construction.
                q.dequantize_tensor(device)
                    .and_then(|t| Ok(t.to_dtype(*dtype)?))
                    .expect("QMatrix::dequantize yields rows × cols values")
            }),
        }
    }

    fn dim(&self) -> usize {
        match &self.table {
            Table::Dense(t) => t.dims()[1],
            Table::Quant { q, .. } => q.cols(),
        }
    }

    /// `ids: (b, t)` u32 → `(b, t, dim)`. Ids must already be checked `< vocab`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let rows = match &self.table {
            Table::Dense(table) => table.index_select(&ids.flatten_all()?, 0)?,
            Table::Quant { q, dtype, device, .. } => {
                let ids = ids.flatten_all()?.to_vec1::<u32>()?;
                let dim = q.cols();
                let mut out = vec![0f32; ids.len() * dim];
                for (&id, row) in ids.iter().zip(out.chunks_exact_mut(dim)) {
                    q.dequantize_row_into(id as usize, row)?;
                }
                Tensor::from_vec(out, (ids.len(), dim), device)?.to_dtype(*dtype)?
            }
        };
        Ok(rows.reshape((b, t, self.dim()))?)
    }
}
