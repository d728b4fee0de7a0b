//! Every bad request gets the right status and an OpenAI-shaped error naming what to fix.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::{json, Value};

async fn raw(s: &Server, path: &str, body: &str) -> (StatusCode, Value) {
    let (status, _, text) = send(&s.app, post_req(path, body.to_string())).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

fn check(v: &Value, kind: &str) {
    let e = &v["error"];
    assert_eq!(e["type"], kind, "{v}");
    assert!(
        e["message"].is_string() && e.get("param").is_some() && e.get("code").is_some(),
        "{v}"
    );
}

#[tokio::test]
async fn malformed_json_is_400() {
    let s = server();
    let (status, v) = raw(&s, "/v1/chat/completions", "{\"model\": ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    check(&v, "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{v}"
    );
}

#[tokio::test]
async fn wrong_types_name_the_field() {
    let s = server();
    for (body, field) in [
        (
            json!({"model": MODEL, "messages": [], "max_tokens": "ten"}),
            "max_tokens",
        ),
        (json!({"messages": []}), "model"),
        (
            json!({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
            "temperature",
        ),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}),
            "max_tokens",
        ),
    ] {
        let (status, v) = post(&s.app, "/v1/chat/completions", &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        check(&v, "invalid_request_error");
        assert_eq!(v["error"]["param"], field, "{v}");
    }
}

#[tokio::test]
async fn out_of_range_values_are_400() {
    let s = server();
    for (extra, param) in [
        (json!({"temperature": 3.0}), "temperature"),
        (json!({"top_p": 0}), "top_p"),
        (json!({"presence_penalty": 9}), "presence_penalty"),
        (
            json!({"logprobs": true, "top_logprobs": 30}),
            "top_logprobs",
        ),
        (json!({"top_logprobs": 2}), "top_logprobs"),
        (json!({"n": 2}), "n"),
        (json!({"max_tokens": 0}), "max_tokens"),
        (json!({"stop": [""]}), "stop"),
        (json!({"logit_bias": {"x": 1}}), "logit_bias"),
        (json!({"logit_bias": {"100000": 1}}), "logit_bias"),
        (
            json!({"response_format": {"type": "xml"}}),
            "response_format.type",
        ),
        (json!({"messages": []}), "messages"),
    ] {
        let (status, v) = post(&s.app, "/v1/chat/completions", &chat_body(extra.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {v}");
        assert_eq!(v["error"]["param"], param, "{extra}: {v}");
    }
    let (status, v) = post(
        &s.app,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "x", "suffix": "y"}),
    )
    .await;
    assert_eq!(
        (status, v["error"]["param"].as_str()),
        (StatusCode::BAD_REQUEST, Some("suffix"))
    );
}

#[tokio::test]
async fn unknown_model_is_404() {
    let s = server();
    let (status, v) = post(
        &s.app,
        "/v1/chat/completions",
        &chat_body(json!({"model": "gpt-9"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(v["error"]["message"].as_str().unwrap().contains("gpt-9"));
    let (status, v) = post(
        &s.app,
        "/v1/completions",
        &json!({"model": "gpt-9", "prompt": "x"}),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("model_not_found"))
    );
    let (status, text) = get(&s.app, "/v1/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert!(text.contains("/v1/nothing"));
    let (status, text) = get(&s.app, "/v1/chat/completions").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{text}");
    assert!(
        text.contains("GET is not allowed on /v1/chat/completions"),
        "{text}"
    );
}

#[tokio::test]
async fn context_too_long_counts_tokens() {
    let s = server();
    let long = "word ".repeat(400);
    let (status, v) = post(
        &s.app,
        "/v1/chat/completions",
        &chat_body(json!({"messages": [{"role": "user", "content": long}]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("maximum context length is 256 tokens"),
        "{msg}"
    );
    assert!(
        msg.contains("the prompt is") && msg.contains("shorten it"),
        "{msg}"
    );
    let (status, v) = post(
        &s.app,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": long}),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("context_length_exceeded"))
    );
}

#[tokio::test]
async fn body_too_large_is_413() {
    let s = server_with(engine_config(), |c| c.max_body_bytes = 512);
    let body = chat_body(json!({"messages": [{"role": "user", "content": "x".repeat(2000)}]}));
    let (status, v) = post(&s.app, "/v1/chat/completions", &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("512 bytes"));
}

#[tokio::test]
async fn thinking_budget_needs_a_think_block() {
    let s = server();
    // Chat-prefix completion closes the think block, so there is nothing to budget.
    let messages = json!([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "prefix": true}]);
    let (status, v) = post(
        &s.app,
        "/v1/chat/completions",
        &chat_body(json!({"messages": messages, "thinking_budget": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["param"], "thinking_budget");
}
