//! What every handler shares: the engine handle, the tokenizer, the served model names, the
//! price table, the API keys and the metrics. Cheap to clone (one `Arc`).

use crate::auth::ApiKeys;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::pricing::PriceTable;
use std::sync::{Arc, OnceLock};
use whale_engine::EngineHandle;
use whale_text::Tokenizer;

/// Settings of the HTTP layer (the engine has its own `EngineConfig`).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Names `model` may take; the first is the one `/v1/models` lists first. Responses echo
    /// the name the request used.
    pub model_names: Vec<String>,
    pub prices: PriceTable,
    /// `None`: no authentication (the default, for a loopback server).
    pub api_keys: Option<ApiKeys>,
    /// Larger bodies get 413 before they are parsed.
    pub max_body_bytes: usize,
    /// `max_tokens` of chat requests that give none (DeepSeek's default output is 4K).
    pub default_max_tokens: usize,
    /// Most `stop` strings per request (DeepSeek allows 16).
    pub max_stops: usize,
}

impl ServerConfig {
    pub fn new(model_names: Vec<String>) -> Self {
        ServerConfig {
            model_names,
            prices: PriceTable::default(),
            api_keys: None,
            max_body_bytes: 4 << 20,
            default_max_tokens: 4096,
            max_stops: 16,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    engine: EngineHandle,
    tokenizer: Tokenizer,
    config: ServerConfig,
    metrics: Metrics,
    created: u64,
    /// Every token's text, built on the first JSON-mode request (a pass over the vocabulary).
    token_texts: OnceLock<Arc<Vec<String>>>,
}

impl AppState {
    pub fn new(engine: EngineHandle, tokenizer: Tokenizer, config: ServerConfig) -> Self {
        AppState {
            inner: Arc::new(Inner {
                engine,
                tokenizer,
                config,
                metrics: Metrics::default(),
                created: crate::api::common::unix_now(),
                token_texts: OnceLock::new(),
            }),
        }
    }

    pub fn engine(&self) -> &EngineHandle {
        &self.inner.engine
    }
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner.tokenizer
    }
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
    /// When the server started (the `created` of its models).
    pub fn created(&self) -> u64 {
        self.inner.created
    }

    /// Checks that `model` is served.
    pub fn check_model(&self, model: &str) -> Result<(), ApiError> {
        if self.inner.config.model_names.iter().any(|m| m == model) {
            Ok(())
        } else {
            Err(ApiError::UnknownModel(model.to_string()))
        }
    }

    /// Identifies the weights behind the answers (OpenAI's `system_fingerprint`).
    pub fn system_fingerprint(&self) -> String {
        format!(
            "whale-{}-{}",
            env!("CARGO_PKG_VERSION"),
            self.inner.engine.model_info().model_type
        )
    }

    pub fn token_texts(&self) -> Arc<Vec<String>> {
        self.inner
            .token_texts
            .get_or_init(|| {
                let vocab = self.inner.engine.model_info().vocab_size;
                let tok = &self.inner.tokenizer;
                // Special tokens and ids the tokenizer does not know (model vocab padding) get
                // no text: JSON mode never allows them.
                let text = |id: u32| {
                    if tok.is_special(id) {
                        String::new()
                    } else {
                        tok.decode(&[id], true).unwrap_or_default()
                    }
                };
                Arc::new((0..vocab as u32).map(text).collect())
            })
            .clone()
    }
}
