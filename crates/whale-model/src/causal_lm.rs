//! The interface the rest of Whale (generation, serving, training, RL) uses for any model.

use crate::decoder::DecoderOutput;
use candle_core::{DType, Device, Tensor, D};
use whale_core::{Result, WhaleError};
use whale_nn::moe::Routing;
use whale_nn::KvCache;

#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub model_type: &'static str,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub max_position_embeddings: usize,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// Multi-token-prediction depth D (0 when the model has no MTP module loaded).
    pub mtp_depth: usize,
}

/// A training forward: next-token logits, MTP logits per depth, and the MoE routing of
/// every MoE layer (for load statistics and balance losses).
pub struct TrainOutput {
    /// `(b, t, vocab)`.
    pub logits: Tensor,
    /// Depth k (1-based) at index k-1: `(b, t - k, vocab)`; row i predicts token `i + k + 1`.
    pub mtp_logits: Vec<Tensor>,
    pub routing: Vec<(usize, Routing)>,
}

/// One sequence's part of a batched forward: its new tokens and its own cache.
pub struct SeqStep<'a> {
    pub ids: &'a [u32],
    pub cache: &'a mut KvCache,
    /// The ids are prompt tokens (see `Segment::prompt`); `false` for generated ones.
    pub prompt: bool,
}

pub trait CausalLm: Send + Sync {
    fn info(&self) -> &ModelInfo;
    fn device(&self) -> &Device;
    fn dtype(&self) -> DType;

    /// An empty cache for one sequence.
    fn new_cache(&self) -> KvCache;

    /// `ids: (b, t)` u32 → the final-normed hidden states `(b, t, hidden)` and per-layer
    /// details. Without a cache the positions start at 0; with one (only for `b = 1`) they
    /// continue from `cache.seq_len()`.
    fn forward_hidden(&self, ids: &Tensor, cache: Option<&mut KvCache>) -> Result<DecoderOutput>;

    /// Several sequences of any lengths, each with its own cache, in one forward (linear
    /// layers and experts batched over all tokens): the logits of each sequence's last new
    /// token, `(n, vocab)`.
    fn forward_seqs(&self, steps: &mut [SeqStep<'_>]) -> Result<Tensor>;

    /// `hidden: (b, t, hidden)` → `(b, t, vocab)`.
    fn lm_head(&self, hidden: &Tensor) -> Result<Tensor>;

    /// Logits at every new position: `(b, t, vocab)`.
    fn forward(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let out = self.forward_hidden(ids, Some(cache))?;
        self.lm_head(&out.hidden)
    }

    /// Logits of the last new position only, `(b, vocab)`: what decoding needs, without
    /// paying the output head for every prompt token.
    fn forward_last(&self, ids: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let out = self.forward_hidden(ids, Some(cache))?;
        let t = out.hidden.dim(1)?;
        let last = out.hidden.narrow(1, t - 1, 1)?;
        // One last token per sequence: the same head kernels as `forward_seqs`.
        Ok(whale_quant::decode_kernels(|| self.lm_head(&last))?.squeeze(1)?)
    }

    /// Training forward over whole sequences, no cache.
    fn forward_train(&self, ids: &Tensor) -> Result<TrainOutput> {
        let out = self.forward_hidden(ids, None)?;
        Ok(TrainOutput { logits: self.lm_head(&out.hidden)?, mtp_logits: vec![], routing: out.routing })
    }

    /// Multi-token prediction module `depth` (1-based): `hidden: (b, t, d)` (the main model's
    /// final-normed hidden states, or module depth-1's output) and `next_ids: (b, t)` (the
    /// token after each position) → (logits `(b, t, vocab)`, this module's hidden states).
    fn forward_mtp(
        &self,
        depth: usize,
        _hidden: &Tensor,
        _next_ids: &Tensor,
        _cache: Option<&mut KvCache>,
    ) -> Result<(Tensor, Tensor)> {
        Err(WhaleError::InvalidInput(format!(
            "{} has no multi-token-prediction module (asked for depth {depth})",
            self.info().model_type
        )))
    }

    /// An empty cache for the MTP modules (one layer per depth).
    fn new_mtp_cache(&self) -> Option<KvCache> {
        None
    }
}

/// Greedy argmax over the last dim of `(b, vocab)` logits.
pub fn argmax_last(logits: &Tensor) -> Result<Vec<u32>> {
    Ok(logits.argmax(D::Minus1)?.to_vec1::<u32>()?)
}
