//! Types shared by chat and text completions: `stop`, `stream_options`, `usage` (with
//! DeepSeek's cache split and Whale's `cost` extension), token logprobs.

use serde::{Deserialize, Serialize};

/// `stop`: one string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with empty `choices` and the request's `usage`.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// OpenAI's usage object with DeepSeek's fields; `cost` is Whale's extension (clients that do
/// not know it ignore it).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UsageBody {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    /// DeepSeek: prompt tokens whose KV came from the context cache.
    pub prompt_cache_hit_tokens: usize,
    /// DeepSeek: prompt tokens computed (`prompt_tokens - prompt_cache_hit_tokens`).
    pub prompt_cache_miss_tokens: usize,
    pub prompt_tokens_details: PromptTokensDetails,
    pub completion_tokens_details: CompletionTokensDetails,
    pub cost: Cost,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PromptTokensDetails {
    pub cached_tokens: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CompletionTokensDetails {
    pub reasoning_tokens: usize,
}

/// What the request cost at the served model's prices, split like DeepSeek's bill.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cost {
    pub currency: String,
    pub input_cache_hit: f64,
    pub input_cache_miss: f64,
    pub output: f64,
    pub total: f64,
}

/// One token with its log-probability, as text (chat completions' `logprobs.content[i]`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

/// The unix time now, for `created`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A response id: a per-process counter plus the start time, unique enough for logs.
pub fn response_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{prefix}-{t:x}{n:06x}")
}
