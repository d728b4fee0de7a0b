//! Mixture-of-experts dispatch: each token's hidden state goes to its chosen experts and
//! the weighted expert outputs are summed back (DeepSeekMoE, V3 §2.1.2). Tokens are grouped
//! per expert so each expert runs one batched MLP over all its tokens — never a loop over
//! tokens. How experts are chosen (the gate) is family-specific and lives with the family.

use crate::{Mlp, Result};
use candle_core::{DType, Tensor};

/// A router's decision for `n` tokens.
#[derive(Debug, Clone)]
pub struct Routing {
    /// `n * top_k` expert ids, token-major, best first.
    pub expert_ids: Vec<u32>,
    pub top_k: usize,
    /// `(n, top_k)` f32 gate weights aligned with `expert_ids` (differentiable).
    pub weights: Tensor,
    /// `(n, n_experts)` f32 router scores before selection (for balance losses).
    pub scores: Tensor,
}

impl Routing {
    pub fn num_tokens(&self) -> usize {
        self.expert_ids.len() / self.top_k.max(1)
    }

    /// Tokens routed to each expert.
    pub fn expert_loads(&self, n_experts: usize) -> Vec<usize> {
        let mut loads = vec![0; n_experts];
        for &e in &self.expert_ids {
            loads[e as usize] += 1;
        }
        loads
    }

    /// The chosen experts of token `i`.
    pub fn experts_of(&self, i: usize) -> &[u32] {
        &self.expert_ids[i * self.top_k..(i + 1) * self.top_k]
    }
}

/// `x: (n, d)` → `sum_k w[i,k] * expert[ids[i,k]](x[i])`, `(n, d)`.
pub fn dispatch(x: &Tensor, routing: &Routing, experts: &[Mlp]) -> Result<Tensor> {
    let (n, _d) = x.dims2()?;
    let k = routing.top_k;
    let mut rows: Vec<Vec<u32>> = vec![Vec::new(); experts.len()];
    let mut slots: Vec<Vec<u32>> = vec![Vec::new(); experts.len()];
    for (slot, &e) in routing.expert_ids.iter().enumerate() {
        rows[e as usize].push((slot / k) as u32);
        slots[e as usize].push(slot as u32);
    }
    let weights = routing.weights.flatten_all()?;
    let mut outs = Vec::new();
    let mut all_rows = Vec::with_capacity(n * k);
    for (e, expert) in experts.iter().enumerate() {
        if rows[e].is_empty() {
            continue;
        }
        let idx = Tensor::new(rows[e].as_slice(), x.device())?;
        let slot_idx = Tensor::new(slots[e].as_slice(), x.device())?;
        let y = expert.forward(&x.index_select(&idx, 0)?)?;
        let w = weights.index_select(&slot_idx, 0)?.to_dtype(y.dtype())?.unsqueeze(1)?;
        outs.push(y.broadcast_mul(&w)?);
        all_rows.extend_from_slice(&rows[e]);
    }
    let out = Tensor::zeros(x.shape(), x.dtype(), x.device())?;
    if outs.is_empty() {
        return Ok(out);
    }
    // One scatter-add for all experts: accumulate in f32 so bf16 models sum like the reference.
    let ys = Tensor::cat(&outs, 0)?;
    let idx = Tensor::new(all_rows.as_slice(), x.device())?;
    let acc = out.to_dtype(DType::F32)?.index_add(&idx, &ys.to_dtype(DType::F32)?, 0)?;
    Ok(acc.to_dtype(x.dtype())?)
}
