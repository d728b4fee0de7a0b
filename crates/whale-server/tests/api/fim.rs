//! Fill-in-the-middle through `/v1/completions` with `suffix`: Qwen's FIM tokens (the
//! R1-Distill-Qwen tokenizer) make a PSM prompt the model completes; a tokenizer without FIM
//! tokens gets a 400 naming them.

use crate::common::*;
use crate::scripted::Scripted;
use axum::http::StatusCode;
use serde_json::json;
use whale_engine::EngineConfig;

#[tokio::test]
async fn suffix_makes_a_fim_prompt_with_qwen_tokens() {
    let tok = whale_text::Tokenizer::from_dir(fixture("tokenizer_r1_distill")).unwrap();
    let middle = "c = a + b";
    let script = tok.encode(middle, false).unwrap();
    let eos = *tok.eos_ids().iter().next().unwrap();
    let vocab = tok.vocab_size();
    let dir = model_dir();
    let inner = whale_model::load_model(
        dir.path(),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let model = Box::new(Scripted::with_vocab(inner, script, eos, Some(vocab)));
    let engine = EngineConfig {
        prefix_cache: None,
        ..Default::default()
    };
    let s = server_from(model, tok.clone(), dir, engine, |_| {});
    let (prefix, suffix) = ("def add(a, b):\n    ", "\n    return c\n");
    let body = json!({"model": MODEL, "prompt": prefix, "suffix": suffix, "max_tokens": 32, "temperature": 0});
    let (status, v) = post(&s.app, "/v1/completions", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["text"], middle);
    let expected = whale_server::fim::fim_prompt(&tok, prefix, suffix).unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], expected.len());
    // Token-id prompts cannot be combined with a suffix.
    let ids = json!({"model": MODEL, "prompt": [1, 2], "suffix": "x"});
    let (status, v) = post(&s.app, "/v1/completions", &ids).await;
    assert_eq!(
        (status, v["error"]["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("prompt"))
    );
}

#[tokio::test]
async fn suffix_without_fim_tokens_names_them() {
    let s = server();
    let (status, v) = post(
        &s.app,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "x", "suffix": "y"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["param"], "suffix");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("<｜fim▁begin｜>") && msg.contains("<|fim_middle|>"),
        "{msg}"
    );
    // An empty suffix is no FIM: a plain completion.
    let (status, _) = post(
        &s.app,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "x", "suffix": "", "max_tokens": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
