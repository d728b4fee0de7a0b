//! MTP self-speculative decoding (DeepSeek-V3 §2.2 and §5.4.3: the MTP module, trained to
//! predict the token after next, doubles as a draft model at inference).
//!
//! Each step feeds the last accepted token `x` and the draft `d` in one forward. The main
//! model's choice at `x`'s position is compared with `d`: on a match both are kept and the
//! model's choice after `d` comes for free (two tokens per forward); otherwise `d` is dropped
//! from the cache. Tokens are always chosen from the main model's logits, so the output is
//! the output of plain decoding; only greedy requests are decoded this way (verifying a
//! sampled draft exactly needs rejection sampling over both distributions).
//!
//! The MTP module at position `i` combines the main model's hidden state `h_i` with the
//! embedding of token `i + 1` and predicts token `i + 2`; it keeps its own one-layer cache,
//! fed once per accepted position. After a prefix-cache hit the hidden states of the cached
//! positions are unknown, so the MTP cache starts after them: RoPE depends only on relative
//! positions, so drafts merely see less context (the output is unaffected).

use crate::sequence::Sequence;
use crate::GenerateError;
use candle_core::{DType, Tensor};
use whale_model::CausalLm;
use whale_nn::KvCache;

pub(crate) struct SpecState {
    mtp_cache: KvCache,
    /// The MTP module's guess for the token after the last known one.
    draft: Option<u32>,
    /// Main-model hidden states `(1, n, hidden)` of positions `mtp_fed..cache.seq_len()`.
    unfed_hidden: Option<Tensor>,
    mtp_fed: usize,
    pub drafted: usize,
    pub accepted: usize,
}

impl SpecState {
    pub fn new(mtp_cache: KvCache, start: usize) -> Self {
        SpecState { mtp_cache, draft: None, unfed_hidden: None, mtp_fed: start, drafted: 0, accepted: 0 }
    }

    fn push_hidden(&mut self, h: Tensor) -> Result<(), GenerateError> {
        self.unfed_hidden = Some(match self.unfed_hidden.take() {
            Some(prev) => Tensor::cat(&[&prev, &h], 1)?,
            None => h,
        });
        Ok(())
    }
}

fn row(model: &dyn CausalLm, hidden: &Tensor, i: usize) -> Result<Vec<f32>, GenerateError> {
    let h = hidden.narrow(1, i, 1)?;
    // One position's head, with the kernels plain decoding's head takes.
    let logits = whale_quant::decode_kernels(|| model.lm_head(&h))?;
    Ok(logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

/// One forward for a speculative sequence: a prefill chunk, or a verify step. Returns the
/// number of positions computed.
pub(crate) fn step(seq: &mut Sequence, model: &dyn CausalLm, chunk: usize) -> Result<usize, GenerateError> {
    let fed = seq.cache.seq_len();
    let pending = seq.pending();
    let draft = seq.spec.as_ref().and_then(|s| s.draft).filter(|_| pending == 1 && fed + 2 <= seq.max_positions);
    let input: Vec<u32> = match draft {
        Some(d) => vec![seq.tokens[fed], d],
        None => seq.tokens[fed..fed + pending.min(chunk)].to_vec(),
    };
    if seq.check_limits(if draft.is_some() { 1 } else { input.len() }) {
        return Ok(0);
    }
    let ids = Tensor::new(input.as_slice(), model.device())?.unsqueeze(0)?;
    let hidden = model.forward_hidden(&ids, Some(&mut seq.cache))?.hidden;
    let k = input.len();
    match draft {
        None => {
            seq.spec.as_mut().expect("speculative sequence").push_hidden(hidden.clone())?;
            if fed + k < seq.tokens.len() {
                return Ok(k); // more of the prompt to prefill
            }
            let mut logits = row(model, &hidden, k - 1)?;
            seq.take_token(&mut logits)?;
        }
        Some(d) => {
            let mut first = row(model, &hidden, 0)?;
            let y = seq.take_token(&mut first)?.token;
            let spec = seq.spec.as_mut().expect("speculative sequence");
            spec.drafted += 1;
            if y == d {
                spec.accepted += 1;
                spec.push_hidden(hidden.clone())?;
                if seq.finished.is_none() {
                    let mut second = row(model, &hidden, 1)?;
                    seq.take_token(&mut second)?;
                }
            } else {
                seq.cache.truncate(fed + 1);
                spec.push_hidden(hidden.narrow(1, 0, 1)?)?;
            }
        }
    }
    if seq.finished.is_none() {
        feed_mtp(seq, model)?;
    }
    Ok(k)
}

/// Feeds the MTP module every (hidden state, next token) pair now known and takes its argmax
/// at the last one as the next draft.
fn feed_mtp(seq: &mut Sequence, model: &dyn CausalLm) -> Result<(), GenerateError> {
    let upto = seq.cache.seq_len();
    let spec = seq.spec.as_mut().expect("speculative sequence");
    let Some(hidden) = spec.unfed_hidden.take() else { return Ok(()) };
    let next = &seq.tokens[spec.mtp_fed + 1..=upto];
    let next_ids = Tensor::new(next, model.device())?.unsqueeze(0)?;
    let (logits, _) = model.forward_mtp(1, &hidden, &next_ids, Some(&mut spec.mtp_cache))?;
    let n = next.len();
    let last = logits.narrow(1, n - 1, 1)?.flatten_all()?.to_dtype(DType::F32)?;
    spec.draft = Some(last.argmax(0)?.to_scalar::<u32>()?);
    spec.mtp_fed = upto;
    Ok(())
}
