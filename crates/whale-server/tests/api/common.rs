//! A served fixture model and request helpers.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use candle_core::{DType, Device};
use serde_json::{json, Value};
use std::path::PathBuf;
use tower::ServiceExt;
use whale_engine::{Engine, EngineConfig, PrefixCacheConfig};
use whale_server::{AppState, ServerConfig};

pub const MODEL: &str = "whale-tiny";

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

pub struct Server {
    pub app: Router,
    pub state: AppState,
    _dir: tempfile::TempDir,
}

/// The model folder as `whale serve` would get it: weights and tokenizer side by side.
pub fn model_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (src, name) in [
        ("deepseek_v3_tiny", "config.json"),
        ("deepseek_v3_tiny", "model.safetensors"),
        ("tiny_chat_tokenizer", "tokenizer.json"),
        ("tiny_chat_tokenizer", "tokenizer_config.json"),
    ] {
        std::fs::copy(fixture(src).join(name), dir.path().join(name)).unwrap();
    }
    dir
}

pub fn engine_config() -> EngineConfig {
    EngineConfig {
        prefix_cache: Some(PrefixCacheConfig {
            ram_bytes: 64 << 20,
            disk: None,
            fingerprint: "test".into(),
        }),
        ..Default::default()
    }
}

pub fn server() -> Server {
    server_with(engine_config(), |_| {})
}

pub fn server_with(engine: EngineConfig, tweak: impl FnOnce(&mut ServerConfig)) -> Server {
    server_with_model(|m| m, engine, tweak)
}

/// The fixture server with its model wrapped (by a scripted model, say).
pub fn server_with_model(
    wrap: impl FnOnce(Box<dyn whale_model::CausalLm>) -> Box<dyn whale_model::CausalLm>,
    engine: EngineConfig,
    tweak: impl FnOnce(&mut ServerConfig),
) -> Server {
    let dir = model_dir();
    let model = wrap(whale_model::load_model(dir.path(), DType::F32, &Device::Cpu).unwrap());
    let tokenizer = whale_text::Tokenizer::from_dir(dir.path()).unwrap();
    server_from(model, tokenizer, dir, engine, tweak)
}

/// A server of `model` with `tokenizer` (`dir` lives as long as the server).
pub fn server_from(
    model: Box<dyn whale_model::CausalLm>,
    tokenizer: whale_text::Tokenizer,
    dir: tempfile::TempDir,
    engine: EngineConfig,
    tweak: impl FnOnce(&mut ServerConfig),
) -> Server {
    let handle = Engine::start(model, engine).unwrap();
    let mut cfg = ServerConfig::new(vec![MODEL.into(), "deepseek-reasoner".into()]);
    tweak(&mut cfg);
    let state = AppState::new(handle, tokenizer, cfg);
    Server {
        app: whale_server::router(state.clone()),
        state,
        _dir: dir,
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

pub fn post_req(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

pub async fn post(app: &Router, path: &str, body: &Value) -> (StatusCode, Value) {
    let (status, _, text) = send(app, post_req(path, body.to_string())).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

pub async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    let (status, _, text) = send(app, Request::get(path).body(Body::empty()).unwrap()).await;
    (status, text)
}

/// The `data:` payloads of an SSE response; checks the framing and the final `[DONE]`.
pub async fn stream(app: &Router, path: &str, body: &Value) -> Vec<Value> {
    let (status, headers, text) = send(app, post_req(path, body.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(headers["content-type"], "text/event-stream");
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"), "{text}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").expect("data: event")).unwrap())
        .collect()
}

/// A long system prompt (more than one 64-token cache block) and a user turn.
pub fn long_messages(user: &str) -> Value {
    let system =
        "You are a careful assistant. Answer briefly and check every step twice. ".repeat(4);
    json!([{"role": "system", "content": system}, {"role": "user", "content": user}])
}

pub fn chat_body(extra: Value) -> Value {
    let mut body = json!({"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 24, "temperature": 0});
    if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
        b.extend(e);
    }
    body
}
