//! What the engine sends back for a request: its tokens as they are chosen, then one final
//! event with the finish reason and the usage (DeepSeek's cache-hit/miss split included).

use crate::{FinishReason, GeneratedToken};

#[derive(Debug, Clone)]
pub enum Event {
    Token(GeneratedToken),
    Done(Completion),
    /// The request failed inside the engine (a model error); nothing follows.
    Error(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub finish: FinishReason,
    pub usage: Usage,
    /// Present when the request was decoded speculatively with the model's MTP module.
    pub speculative: Option<SpecStats>,
    /// The sampler's seed (drawn when the request gave none), to replay the request.
    pub seed: u64,
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV came from the prefix cache (DeepSeek's
    /// `prompt_cache_hit_tokens`, OpenAI's `prompt_tokens_details.cached_tokens`).
    pub prompt_cache_hit_tokens: usize,
    pub completion_tokens: usize,
}

impl Usage {
    /// Prompt tokens that had to be computed (DeepSeek's `prompt_cache_miss_tokens`).
    pub fn prompt_cache_miss_tokens(&self) -> usize {
        self.prompt_tokens - self.prompt_cache_hit_tokens
    }
}

/// MTP self-speculative decoding of one request: draft tokens proposed and accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecStats {
    pub drafted: usize,
    pub accepted: usize,
}

impl SpecStats {
    pub fn acceptance_rate(&self) -> f64 {
        if self.drafted == 0 {
            0.0
        } else {
            self.accepted as f64 / self.drafted as f64
        }
    }
}
