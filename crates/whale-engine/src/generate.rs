//! Single-sequence generation: prefill the prompt into a KV cache, then produce one token
//! per step — sampled, or forced by the thinking budget — until an end-of-sequence id, the
//! token limit or the model's context ends it.
//!
//! Token ids in, token ids out: text concerns (detokenizing, stop strings, the reasoning
//! split) belong to the caller. The batching engine will drive many of these through one
//! `forward_seqs` per step; this is the one-sequence loop `whale generate` and `whale chat`
//! run today.

use crate::chooser::TokenChooser;
use crate::{SamplingError, SamplingParams, ThinkingBudget};
use candle_core::{DType, Tensor};
use std::collections::BTreeSet;
use whale_core::WhaleError;
use whale_model::CausalLm;
use whale_nn::KvCache;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("the prompt is empty: give at least one token")]
    EmptyPrompt,
    #[error("the prompt is {prompt} tokens, but the context is {limit} (the model's max_position_embeddings, or the engine's limit when lower): shorten it by at least {} tokens", prompt + 1 - limit)]
    PromptTooLong { prompt: usize, limit: usize },
    #[error("prompt token id {token} is out of range: the model's vocabulary has {vocab} ids")]
    TokenOutOfRange { token: u32, vocab: usize },
    #[error(transparent)]
    Sampling(#[from] SamplingError),
    #[error(transparent)]
    Model(#[from] WhaleError),
}

impl From<candle_core::Error> for GenerateError {
    fn from(e: candle_core::Error) -> Self {
        GenerateError::Model(e.into())
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence id was produced (it is part of the output).
    Stop,
    /// `max_tokens` were produced.
    Length,
    /// The model's context is full.
    ContextFull,
}

impl FinishReason {
    /// OpenAI's `finish_reason` string.
    pub fn as_str(&self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length | FinishReason::ContextFull => "length",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct GenerationOptions {
    /// Upper bound on produced tokens (`None`: until EOS or the context is full).
    pub max_tokens: Option<usize>,
    /// Ids that end generation (the model's / tokenizer's EOS ids).
    pub stop_ids: BTreeSet<u32>,
    /// Caps the think block, forcing its closing tag.
    pub thinking_budget: Option<ThinkingBudget>,
}

/// One produced token.
#[derive(Debug, Clone)]
pub struct GeneratedToken {
    pub token: u32,
    /// Log-probability under the sampling distribution (see `Sampler`); for a forced token
    /// the log-probability the model gave it.
    pub logprob: f32,
    pub top_logprobs: Vec<(u32, f32)>,
    /// Emitted by the thinking budget rather than sampled.
    pub forced: bool,
}

pub struct Generator<'m> {
    model: &'m dyn CausalLm,
    cache: KvCache,
    chooser: TokenChooser,
    /// Ids to feed at the next forward (the prompt first, then the last token).
    pending: Vec<u32>,
    max_tokens: Option<usize>,
    produced: usize,
    finished: Option<FinishReason>,
}

impl<'m> Generator<'m> {
    /// Checks the prompt against the context and the sampling parameters; no model work
    /// happens until the first `next_token`.
    pub fn new(
        model: &'m dyn CausalLm,
        prompt: &[u32],
        params: SamplingParams,
        opts: GenerationOptions,
    ) -> Result<Self, GenerateError> {
        if prompt.is_empty() {
            return Err(GenerateError::EmptyPrompt);
        }
        let limit = model.info().max_position_embeddings;
        if prompt.len() >= limit {
            return Err(GenerateError::PromptTooLong { prompt: prompt.len(), limit });
        }
        Ok(Self {
            model,
            cache: model.new_cache(),
            chooser: TokenChooser::new(params, prompt, opts.thinking_budget, None, opts.stop_ids)?,
            pending: prompt.to_vec(),
            max_tokens: opts.max_tokens,
            produced: 0,
            finished: None,
        })
    }

    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finished
    }

    /// Tokens produced so far.
    pub fn produced(&self) -> usize {
        self.produced
    }

    /// The seed the sampler uses (drawn at random when none was given), to replay a run.
    pub fn seed(&self) -> u64 {
        self.chooser.seed()
    }

    pub fn thinking_budget(&self) -> Option<&ThinkingBudget> {
        self.chooser.budget()
    }

    /// The next token, or `None` once generation has finished.
    pub fn next_token(&mut self) -> Result<Option<GeneratedToken>, GenerateError> {
        if self.finished.is_some() {
            return Ok(None);
        }
        if self.max_tokens.is_some_and(|m| self.produced >= m) {
            self.finished = Some(FinishReason::Length);
            return Ok(None);
        }
        let limit = self.model.info().max_position_embeddings;
        if self.cache.seq_len() + self.pending.len() > limit {
            self.finished = Some(FinishReason::ContextFull);
            return Ok(None);
        }
        let device = self.model.device();
        let input = Tensor::new(self.pending.as_slice(), device)?.unsqueeze(0)?;
        let mut logits = self.model.forward_last(&input, &mut self.cache)?.squeeze(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let out = self.chooser.choose(&mut logits)?;
        self.pending = vec![out.token];
        self.produced += 1;
        if self.chooser.is_stop(out.token) {
            self.finished = Some(FinishReason::Stop);
        }
        Ok(Some(out))
    }
}
