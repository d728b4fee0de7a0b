//! Choosing one sequence's next token from its logits: the thinking budget's forced tokens,
//! the constraint's mask, then the sampler — the per-token logic shared by the one-sequence
//! [`Generator`](crate::Generator) and the batching scheduler, so both produce the same
//! tokens for the same request.

use crate::constraint::LogitConstraint;
use crate::{GeneratedToken, Sampled, Sampler, SamplingError, SamplingParams, ThinkingBudget, TokenHistory};
use std::collections::BTreeSet;

pub(crate) struct TokenChooser {
    sampler: Sampler,
    history: TokenHistory,
    budget: Option<ThinkingBudget>,
    constraint: Option<Box<dyn LogitConstraint>>,
    stop_ids: BTreeSet<u32>,
}

impl TokenChooser {
    pub fn new(
        params: SamplingParams,
        prompt: &[u32],
        budget: Option<ThinkingBudget>,
        constraint: Option<Box<dyn LogitConstraint>>,
        stop_ids: BTreeSet<u32>,
    ) -> Result<Self, SamplingError> {
        Ok(TokenChooser { sampler: Sampler::new(params)?, history: TokenHistory::new(prompt), budget, constraint, stop_ids })
    }

    pub fn seed(&self) -> u64 {
        self.sampler.seed()
    }

    pub fn budget(&self) -> Option<&ThinkingBudget> {
        self.budget.as_ref()
    }

    pub fn is_stop(&self, token: u32) -> bool {
        self.stop_ids.contains(&token)
    }

    /// Picks the next token (`logits` is modified by the constraint's mask) and records it.
    pub fn choose(&mut self, logits: &mut [f32]) -> Result<GeneratedToken, SamplingError> {
        let forced = self.budget.as_ref().and_then(|b| b.forced_token());
        let out = match forced {
            Some(token) => GeneratedToken { token, logprob: log_softmax_at(logits, token), top_logprobs: vec![], forced: true },
            None => {
                if let Some(c) = self.constraint.as_mut() {
                    if c.is_complete() {
                        // The constrained value is done: only an end of sequence may follow.
                        if !self.stop_ids.is_empty() {
                            for (id, l) in logits.iter_mut().enumerate() {
                                if !self.stop_ids.contains(&(id as u32)) {
                                    *l = f32::NEG_INFINITY;
                                }
                            }
                        }
                    } else {
                        c.mask(logits);
                        for &s in &self.stop_ids {
                            if let Some(l) = logits.get_mut(s as usize) {
                                *l = f32::NEG_INFINITY;
                            }
                        }
                    }
                }
                let Sampled { token, logprob, top_logprobs } = self.sampler.sample(logits, &self.history)?;
                GeneratedToken { token, logprob, top_logprobs, forced: false }
            }
        };
        self.record(out.token);
        Ok(out)
    }

    fn record(&mut self, token: u32) {
        if let Some(b) = self.budget.as_mut() {
            b.observe(token);
        }
        if let Some(c) = self.constraint.as_mut() {
            if !c.is_complete() {
                c.accept(token);
            }
        }
        self.history.push(token);
    }
}

/// `log softmax(logits)[token]`, computed stably.
pub(crate) fn log_softmax_at(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().filter(|x| x.is_finite()).fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().filter(|x| x.is_finite()).map(|&x| ((x - max) as f64).exp()).sum();
    logits.get(token as usize).map_or(f32::NEG_INFINITY, |&x| x - max - sum.ln() as f32)
}
