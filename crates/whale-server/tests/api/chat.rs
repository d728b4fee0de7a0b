//! Chat completions: shape, reasoning split, usage and cost, streaming, cache hits, stop
//! strings, limits, logprobs, JSON mode, chat-prefix completion, thinking budget.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn chat_completion_has_the_deepseek_shape() {
    let s = server();
    let (status, v) = post(&s.app, "/v1/chat/completions", &chat_body(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], MODEL);
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(choice["message"]["content"].is_string());
    // The R1 template opens <think>, so the output has a reasoning part.
    assert!(choice["message"]["reasoning_content"].is_string(), "{v}");
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    let u = &v["usage"];
    let n = |k: &str| u[k].as_u64().unwrap();
    assert_eq!(
        n("total_tokens"),
        n("prompt_tokens") + n("completion_tokens")
    );
    assert_eq!(
        n("prompt_cache_hit_tokens") + n("prompt_cache_miss_tokens"),
        n("prompt_tokens")
    );
    assert_eq!(
        u["prompt_tokens_details"]["cached_tokens"],
        u["prompt_cache_hit_tokens"]
    );
    assert!(
        u["completion_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap()
            <= n("completion_tokens")
    );
    assert!(n("completion_tokens") <= 24);
    // Default prices: R1's ¥4 per million missed input tokens and ¥16 per million output.
    assert_eq!(u["cost"]["currency"], "CNY");
    let expect = (n("prompt_cache_miss_tokens") * 4
        + n("prompt_cache_hit_tokens")
        + n("completion_tokens") * 16) as f64
        / 1e6;
    assert!(
        (u["cost"]["total"].as_f64().unwrap() - expect).abs() < 1e-12,
        "{u}"
    );
}

/// Reasoning and content of a stream, concatenated, and its chunks.
fn join_stream(chunks: &[Value]) -> (String, String, Option<String>) {
    let (mut r, mut c, mut finish) = (String::new(), String::new(), None);
    for ch in chunks {
        assert_eq!(ch["object"], "chat.completion.chunk");
        for choice in ch["choices"].as_array().unwrap() {
            r += choice["delta"]["reasoning_content"].as_str().unwrap_or("");
            c += choice["delta"]["content"].as_str().unwrap_or("");
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
    }
    (r, c, finish)
}

#[tokio::test]
async fn greedy_stream_equals_non_stream() {
    let s = server();
    let body = chat_body(json!({"max_tokens": 40}));
    let (_, whole) = post(&s.app, "/v1/chat/completions", &body).await;
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    sbody["stream_options"] = json!({"include_usage": true});
    let chunks = stream(&s.app, "/v1/chat/completions", &sbody).await;
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let (r, c, finish) = join_stream(&chunks);
    let m = &whole["choices"][0]["message"];
    assert_eq!(r, m["reasoning_content"].as_str().unwrap());
    assert_eq!(c, m["content"].as_str().unwrap());
    assert_eq!(
        finish.as_deref(),
        whole["choices"][0]["finish_reason"].as_str()
    );
    // include_usage: `usage: null` on every chunk, then one with empty choices and the usage.
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"]["completion_tokens"],
        whole["usage"]["completion_tokens"]
    );
    assert_eq!(
        last["usage"]["prompt_tokens"],
        whole["usage"]["prompt_tokens"]
    );
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["usage"].is_null()));
    // Without include_usage no chunk carries a usage field.
    sbody["stream_options"] = Value::Null;
    let chunks = stream(&s.app, "/v1/chat/completions", &sbody).await;
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(join_stream(&chunks).1, c);
}

#[tokio::test]
async fn repeated_prompt_hits_the_prefix_cache() {
    let s = server();
    let body = chat_body(json!({"messages": long_messages("What is 2+2?"), "max_tokens": 4}));
    let (_, first) = post(&s.app, "/v1/chat/completions", &body).await;
    assert!(
        first["usage"]["prompt_tokens"].as_u64().unwrap() > 64,
        "{first}"
    );
    assert_eq!(first["usage"]["prompt_cache_hit_tokens"], 0);
    let (_, second) = post(&s.app, "/v1/chat/completions", &body).await;
    let u = &second["usage"];
    let hit = u["prompt_cache_hit_tokens"].as_u64().unwrap();
    assert!(hit >= 64, "{u}");
    assert_eq!(
        u["prompt_tokens_details"]["cached_tokens"].as_u64(),
        Some(hit)
    );
    assert_eq!(
        u["prompt_cache_miss_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() - hit
    );
    // Cache hits are billed at ¥1 instead of ¥4 per million.
    assert!(u["cost"]["input_cache_hit"].as_f64().unwrap() > 0.0);
    assert!(second["usage"]["cost"]["total"].as_f64() < first["usage"]["cost"]["total"].as_f64());
    // A different question after the same system prompt still shares its blocks.
    let other = chat_body(json!({"messages": long_messages("And 3+3?"), "max_tokens": 4}));
    let (_, third) = post(&s.app, "/v1/chat/completions", &other).await;
    assert!(
        third["usage"]["prompt_cache_hit_tokens"].as_u64().unwrap() >= 64,
        "{third}"
    );
}

#[tokio::test]
async fn stop_string_cuts_the_output() {
    let s = server();
    let body = chat_body(json!({"max_tokens": 40}));
    let (_, whole) = post(&s.app, "/v1/chat/completions", &body).await;
    let reasoning = whole["choices"][0]["message"]["reasoning_content"]
        .as_str()
        .unwrap()
        .to_string();
    let chars: Vec<char> = reasoning.chars().collect();
    assert!(
        chars.len() > 8,
        "the fixture should reason for a while: {whole}"
    );
    let stop: String = chars[4..7].iter().collect();
    let cut = &reasoning[..reasoning.find(&stop).unwrap()];
    for (stop_value, streamed) in [(json!(stop), false), (json!(["zzzz-never", stop]), true)] {
        let mut b = chat_body(json!({"max_tokens": 40, "stop": stop_value}));
        if streamed {
            b["stream"] = json!(true);
            let (r, c, finish) = join_stream(&stream(&s.app, "/v1/chat/completions", &b).await);
            assert_eq!(
                (r.as_str(), c.as_str(), finish.as_deref()),
                (cut, "", Some("stop"))
            );
        } else {
            let (_, v) = post(&s.app, "/v1/chat/completions", &b).await;
            assert_eq!(v["choices"][0]["message"]["reasoning_content"], cut);
            assert_eq!(v["choices"][0]["finish_reason"], "stop");
            assert!(
                v["usage"]["completion_tokens"].as_u64()
                    < whole["usage"]["completion_tokens"].as_u64()
            );
        }
    }
}

#[tokio::test]
async fn max_tokens_ends_with_length() {
    let s = server();
    // Banning the end-of-sequence id makes the limit the only way to stop.
    let body = chat_body(json!({"max_tokens": 3, "logit_bias": {"1": -100}}));
    let (_, v) = post(&s.app, "/v1/chat/completions", &body).await;
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    let (_, v) = post(
        &s.app,
        "/v1/chat/completions",
        &chat_body(json!({"max_completion_tokens": 2, "logit_bias": {"1": -100}})),
    )
    .await;
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn seeded_sampling_is_reproducible() {
    let s = server();
    let body = chat_body(
        json!({"temperature": 1.0, "top_p": 0.9, "seed": 7, "frequency_penalty": 0.5, "presence_penalty": 0.2}),
    );
    let (_, a) = post(&s.app, "/v1/chat/completions", &body).await;
    let (_, b) = post(&s.app, "/v1/chat/completions", &body).await;
    assert_eq!(a["choices"][0]["message"], b["choices"][0]["message"]);
}

#[tokio::test]
async fn logprobs_cover_every_token() {
    let s = server();
    let body = chat_body(json!({"max_tokens": 8, "logprobs": true, "top_logprobs": 2}));
    let (status, v) = post(&s.app, "/v1/chat/completions", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(
        content.len() as u64,
        v["usage"]["completion_tokens"].as_u64().unwrap()
    );
    for t in content {
        assert!(t["token"].is_string() && t["bytes"].is_array());
        assert_eq!(t["top_logprobs"].as_array().unwrap().len(), 2);
        // Greedy: the chosen token is the most likely one.
        assert_eq!(t["logprob"], t["top_logprobs"][0]["logprob"]);
    }
    let mut sb = body.clone();
    sb["stream"] = json!(true);
    let chunks = stream(&s.app, "/v1/chat/completions", &sb).await;
    let streamed: usize = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["logprobs"]["content"].as_array())
        .map(Vec::len)
        .sum();
    assert_eq!(streamed, content.len());
    let (_, v) = post(&s.app, "/v1/chat/completions", &chat_body(json!({}))).await;
    assert!(v["choices"][0]["logprobs"].is_null());
}

#[tokio::test]
async fn json_mode_answers_with_an_object() {
    let s = server();
    // The thinking budget closes the think block early; JSON mode then constrains the answer.
    let body = chat_body(
        json!({"max_tokens": 60, "thinking_budget": 4, "response_format": {"type": "json_object"}}),
    );
    let (status, v) = post(&s.app, "/v1/chat/completions", &body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap()
            <= 4,
        "{v}"
    );
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.trim_start().starts_with('{'), "{v}");
    if v["choices"][0]["finish_reason"] == "stop" {
        let parsed: Value =
            serde_json::from_str(content).unwrap_or_else(|e| panic!("{e}: {content:?}"));
        assert!(parsed.is_object());
    }
}

#[tokio::test]
async fn thinking_budget_caps_reasoning() {
    let s = server();
    let body =
        chat_body(json!({"max_tokens": 40, "thinking_budget": 3, "logit_bias": {"1": -100}}));
    let (_, v) = post(&s.app, "/v1/chat/completions", &body).await;
    let u = &v["usage"];
    assert!(
        u["completion_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap()
            <= 3,
        "{v}"
    );
    assert!(
        !v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty(),
        "{v}"
    );
}

#[tokio::test]
async fn prefix_completion_continues_the_assistant() {
    let s = server();
    let messages = json!([{"role": "user", "content": "Write a word"}, {"role": "assistant", "content": "The word is", "prefix": true}]);
    let (status, v) = post(
        &s.app,
        "/v1/chat/completions",
        &chat_body(json!({"messages": messages, "max_tokens": 6})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // The think block was closed before the prefix: everything generated is answer.
    assert!(
        v["choices"][0]["message"]
            .get("reasoning_content")
            .is_none(),
        "{v}"
    );
    let plain = json!([{"role": "user", "content": "Write a word"}]);
    let (_, p) = post(
        &s.app,
        "/v1/chat/completions",
        &chat_body(json!({"messages": plain, "max_tokens": 6})),
    )
    .await;
    assert!(v["usage"]["prompt_tokens"].as_u64() > p["usage"]["prompt_tokens"].as_u64());
    // prefix only on the last assistant message.
    let bad = json!([{"role": "user", "content": "x", "prefix": true}]);
    let (status, e) = post(
        &s.app,
        "/v1/chat/completions",
        &chat_body(json!({"messages": bad})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["param"], "messages[0].prefix");
}

#[tokio::test]
async fn content_parts_and_aliases_work() {
    let s = server();
    let messages = json!([{"role": "developer", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}]}]);
    let (status, v) = post(
        &s.app,
        "/chat/completions",
        &chat_body(json!({"model": "deepseek-reasoner", "messages": messages})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["model"], "deepseek-reasoner");
}

#[tokio::test]
async fn stopped_request_still_reports_cache_hits() {
    let s = server();
    let body = chat_body(json!({"messages": long_messages("What is 2+2?"), "max_tokens": 30}));
    let (_, first) = post(&s.app, "/v1/chat/completions", &body).await;
    let reasoning = first["choices"][0]["message"]["reasoning_content"]
        .as_str()
        .unwrap()
        .to_string();
    let stop: String = reasoning.chars().skip(2).take(3).collect();
    assert_eq!(stop.chars().count(), 3, "{first}");
    let mut b = body.clone();
    b["stop"] = json!(stop);
    // Ended by the stop string (the engine request is cancelled, no Done event), the usage
    // still has the prompt's cache hits.
    let (_, v) = post(&s.app, "/v1/chat/completions", &b).await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    assert!(
        v["usage"]["prompt_cache_hit_tokens"].as_u64().unwrap() >= 64,
        "{v}"
    );
}
