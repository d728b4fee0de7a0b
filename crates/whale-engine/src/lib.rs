//! Token ids in, tokens out: sampling, the thinking budget and the one-sequence generation
//! loop now; the batching scheduler and prefix caches come later.
//!
//! - [`Sampler`]: one row of logits + the [`TokenHistory`] → the next token, with penalties,
//!   logit bias, temperature, top-k / top-p / min-p, seeded reproducibility and logprobs.
//! - [`ThinkingBudget`]: caps the reasoning tokens of an R1-style think block by forcing the
//!   closing tag.

pub mod error;
mod fast_exp;
pub mod generate;
pub mod penalties;
pub mod sampling;
pub mod sampling_params;
pub mod thinking_budget;
pub mod token_history;
mod top_p;
mod truncation;

pub use error::SamplingError;
pub use generate::{FinishReason, GenerateError, GeneratedToken, GenerationOptions, Generator};
pub use sampling::{Sampled, Sampler};
pub use sampling_params::SamplingParams;
pub use thinking_budget::{ThinkingBudget, ThinkingBudgetError, ThinkingPhase};
pub use token_history::TokenHistory;
