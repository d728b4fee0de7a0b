//! What a caller asks the engine for: token ids and structs only (no JSON, no text).

use crate::constraint::LogitConstraint;
use crate::{GenerationOptions, SamplingParams};

/// One generation request.
pub struct Request {
    /// The prompt, already templated and tokenized.
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    pub options: GenerationOptions,
    /// Restricts which tokens may be chosen (e.g. JSON mode); applied before sampling.
    pub constraint: Option<Box<dyn LogitConstraint>>,
    /// Look the prompt's prefix up in (and add it to) the prefix cache.
    pub use_prefix_cache: bool,
}

impl Request {
    pub fn new(prompt: Vec<u32>, params: SamplingParams, options: GenerationOptions) -> Self {
        Request { prompt, params, options, constraint: None, use_prefix_cache: true }
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("prompt_len", &self.prompt.len())
            .field("params", &self.params)
            .field("options", &self.options)
            .field("constrained", &self.constraint.is_some())
            .field("use_prefix_cache", &self.use_prefix_cache)
            .finish()
    }
}
