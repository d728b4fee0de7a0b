//! Text completions: raw continuation, streaming, token-id prompts, legacy logprobs.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn completion_streams_the_same_text() {
    let s = server();
    let body =
        json!({"model": MODEL, "prompt": "Once upon a time", "max_tokens": 12, "temperature": 0});
    let (status, v) = post(&s.app, "/v1/completions", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "text_completion");
    let text = v["choices"][0]["text"].as_str().unwrap();
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 12);
    let mut sb = body.clone();
    sb["stream"] = json!(true);
    sb["stream_options"] = json!({"include_usage": true});
    let chunks = stream(&s.app, "/v1/completions", &sb).await;
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(joined, text);
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, v["choices"][0]["finish_reason"].as_str());
    assert_eq!(
        chunks.last().unwrap()["usage"]["completion_tokens"],
        v["usage"]["completion_tokens"]
    );
}

#[tokio::test]
async fn default_max_tokens_is_16_and_ids_work() {
    let s = server();
    let body = json!({"model": MODEL, "prompt": [467, 413, 398, 67, 58], "temperature": 0, "logit_bias": {"1": -100}});
    let (status, v) = post(&s.app, "/v1/completions", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], 16);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let (status, v) = post(
        &s.app,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": ["a", "b"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["param"], "prompt");
    let (status, v) = post(
        &s.app,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": [9999]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("9999"));
}

#[tokio::test]
async fn legacy_logprobs() {
    let s = server();
    let body =
        json!({"model": MODEL, "prompt": "Hi", "max_tokens": 5, "temperature": 0, "logprobs": 3});
    let (_, v) = post(&s.app, "/v1/completions", &body).await;
    let lp = &v["choices"][0]["logprobs"];
    let n = v["usage"]["completion_tokens"].as_u64().unwrap() as usize;
    assert_eq!(lp["tokens"].as_array().unwrap().len(), n);
    assert_eq!(lp["token_logprobs"].as_array().unwrap().len(), n);
    assert_eq!(lp["text_offset"][0], 0);
    assert!(lp["top_logprobs"][0].as_object().unwrap().len() <= 3);
}
