//! The DeepSeek/OpenAI-compatible HTTP API over the engine.
//!
//! Request path: JSON ([`json`], [`api`]) → validation ([`validation`], [`prompt`]: chat
//! template → token ids) → engine request ([`generation`]) → events → reasoning split and
//! stop strings (whale-text) → JSON or SSE ([`sse`]). JSON lives only in this crate; the
//! engine sees token ids and structs.
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models` (also
//! without the `/v1` prefix, as DeepSeek's base URL allows), `GET /health`, `GET /metrics`.
//! DeepSeek's extensions: `reasoning_content`, the cache-hit/miss usage split, chat-prefix
//! completion, `thinking_budget`; Whale's: `usage.cost` at the price table ([`pricing`]).

pub mod api;
pub mod auth;
pub mod error;
pub mod fim;
pub mod generation;
pub mod json;
pub mod json_mode;
pub mod metrics;
pub mod pricing;
pub mod prompt;
mod routes;
pub mod serve;
pub mod sse;
pub mod state;
pub mod tool_parser;
pub mod tools;
pub mod validation;

pub use auth::ApiKeys;
pub use error::ApiError;
pub use pricing::{PriceTable, Prices};
pub use serve::{bind, run, serve, serve_until, spawn, Background, ServerError};
pub use state::{AppState, ServerConfig};

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;

/// The whole API. Authentication (when keys are configured) covers the model routes, not
/// `/health` and `/metrics`, which monitoring reads without a key.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(routes::chat::chat_completions))
        .route("/chat/completions", post(routes::chat::chat_completions))
        .route("/v1/completions", post(routes::completions::completions))
        .route("/completions", post(routes::completions::completions))
        .route("/v1/models", get(routes::models::list_models))
        .route("/models", get(routes::models::list_models))
        .route_layer(from_fn_with_state(state.clone(), auth::require_key));
    Router::new()
        .merge(api)
        .route("/health", get(routes::health::health))
        .route("/metrics", get(routes::metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
}
