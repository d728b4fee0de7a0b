//! Token ids in, tokens out.
//!
//! - [`Engine`] / [`EngineHandle`]: one thread owns the model and its caches; callers submit
//!   [`Request`]s and read [`Event`]s. Continuous batching with chunked prefill, a prefix
//!   cache in RAM and on disk ([`prefix_cache`]), MTP self-speculative decoding.
//! - [`Generator`]: the one-sequence loop without a thread, for tools that own a model.
//! - [`Sampler`]: one row of logits + the [`TokenHistory`] → the next token, with penalties,
//!   logit bias, temperature, top-k / top-p / min-p, seeded reproducibility and logprobs.
//! - [`ThinkingBudget`]: caps the reasoning tokens of an R1-style think block by forcing the
//!   closing tag.

mod chooser;
pub mod constraint;
pub mod error;
pub mod event;
pub mod generate;
pub mod handle;
pub mod penalties;
pub mod prefix_cache;
pub mod request;
pub mod sampling;
pub mod sampling_params;
mod scheduler;
mod sequence;
mod speculative;
pub mod stats;
pub mod thinking_budget;
pub mod token_history;
mod top_p;
mod truncation;

pub use constraint::LogitConstraint;
pub use error::SamplingError;
pub use event::{Completion, Event, SpecStats, Usage};
pub use generate::{FinishReason, GenerateError, GeneratedToken, GenerationOptions, Generator};
pub use handle::{Engine, EngineConfig, EngineError, EngineHandle, RequestStream, SubmitError};
pub use prefix_cache::{DiskConfig, PrefixCacheConfig};
pub use request::Request;
pub use sampling::{Sampled, Sampler};
pub use sampling_params::SamplingParams;
pub use stats::{EngineStats, StatsSnapshot};
pub use thinking_budget::{ThinkingBudget, ThinkingBudgetError, ThinkingPhase};
pub use token_history::TokenHistory;
