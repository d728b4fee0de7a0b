//! Token embedding table lookup.

use crate::Result;
use candle_core::Tensor;
use whale_core::Weights;

#[derive(Debug, Clone)]
pub struct Embedding {
    table: Tensor,
}

impl Embedding {
    pub fn load(w: &Weights, name: &str, vocab: usize, dim: usize) -> Result<Self> {
        Ok(Self { table: w.pp(name).get(&[vocab, dim], "weight")? })
    }

    /// `(vocab, dim)`; also the output head when embeddings are tied.
    pub fn table(&self) -> &Tensor {
        &self.table
    }

    /// `ids: (b, t)` u32 → `(b, t, dim)`. Ids must already be checked `< vocab`.
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let rows = self.table.index_select(&ids.flatten_all()?, 0)?;
        Ok(rows.reshape((b, t, self.table.dim(1)?))?)
    }
}
