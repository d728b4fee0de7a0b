//! Per-token log-probabilities of sampled completions under a model, for the GRPO ratio and
//! KL terms: prompt + completion sequences are right-padded into one batch (causal attention
//! makes right padding harmless), run through the training forward, and the log-softmax of
//! each completion token is gathered. Mask marks completion tokens.

use candle_core::{DType, Device, Tensor, D};
use whale_core::Result;
use whale_model::CausalLm;

/// A batch of (prompt, completion) pairs laid out for one forward.
pub struct SeqBatch {
    /// `(b, L)` u32 ids: prompt then completion, right-padded with 0.
    pub ids: Tensor,
    /// `(b, L-1)` f32: 1 where position t predicts a completion token (target = ids[t+1]).
    pub mask: Tensor,
    /// `(b, L-1)` u32: ids[t+1].
    pub targets: Tensor,
    pub completion_tokens: usize,
}

impl SeqBatch {
    pub fn new(pairs: &[(&[u32], &[u32])], device: &Device) -> Result<Self> {
        let len = pairs.iter().map(|(p, c)| p.len() + c.len()).max().unwrap_or(1).max(2);
        let b = pairs.len();
        let mut ids = vec![0u32; b * len];
        let mut mask = vec![0f32; b * (len - 1)];
        let mut completion_tokens = 0;
        for (i, (p, c)) in pairs.iter().enumerate() {
            let row = &mut ids[i * len..(i + 1) * len];
            row[..p.len()].copy_from_slice(p);
            row[p.len()..p.len() + c.len()].copy_from_slice(c);
            // Position t predicts token t+1: completion token j sits at p.len()+j.
            for j in 0..c.len() {
                mask[i * (len - 1) + p.len() + j - 1] = 1.0;
            }
            completion_tokens += c.len();
        }
        let ids = Tensor::from_vec(ids, (b, len), device)?;
        let targets = ids.narrow(1, 1, len - 1)?.contiguous()?;
        let mask = Tensor::from_vec(mask, (b, len - 1), device)?;
        Ok(SeqBatch { ids, mask, targets, completion_tokens })
    }
}

/// Per-token log-probabilities `(b, L-1)` (f32) of the batch's next tokens under the
/// model's distribution at `temperature` (softmax of logits / T: the one rollouts sampled
/// from), and the mean entropy of those distributions at completion positions (detached,
/// for logging).
pub fn token_logprobs(model: &dyn CausalLm, batch: &SeqBatch, temperature: f64) -> Result<(Tensor, f64)> {
    if !(temperature > 0.0) {
        return Err(whale_core::WhaleError::invalid_config("temperature", format!("log-probs need T > 0, got {temperature}")));
    }
    let out = model.forward_train(&batch.ids)?;
    let (b, l, v) = out.logits.dims3()?;
    let mut logits = out.logits.narrow(1, 0, l - 1)?.to_dtype(DType::F32)?;
    if temperature != 1.0 {
        logits = (logits / temperature)?;
    }
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let picked = logp.gather(&batch.targets.unsqueeze(2)?, 2)?.squeeze(2)?;
    let entropy = {
        let lp = logp.detach();
        let h = (lp.exp()? * &lp)?.sum(D::Minus1)?.neg()?; // (b, L-1)
        let masked = (h * &batch.mask)?.sum_all()?.to_scalar::<f32>()? as f64;
        masked / batch.completion_tokens.max(1) as f64
    };
    debug_assert_eq!((b, v), (picked.dim(0)?, v));
    Ok((picked, entropy))
}
