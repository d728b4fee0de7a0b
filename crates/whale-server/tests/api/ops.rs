//! Health, models, metrics, API keys, overload and client disconnects.

use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tower::ServiceExt;
use whale_engine::{EngineConfig, GenerationOptions, Request as EngineRequest, SamplingParams};
use whale_server::ApiKeys;

#[tokio::test]
async fn health_and_models() {
    let s = server();
    let (status, text) = get(&s.app, "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["status"],
        "ok"
    );
    for path in ["/v1/models", "/models"] {
        let (status, text) = get(&s.app, path).await;
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["object"], "list");
        let ids: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [MODEL, "deepseek-reasoner"]);
        assert_eq!(v["data"][0]["object"], "model");
    }
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_cost() {
    let s = server();
    let (_, v) = post(&s.app, "/v1/chat/completions", &chat_body(json!({}))).await;
    post(
        &s.app,
        "/v1/chat/completions",
        &chat_body(json!({"model": "nope"})),
    )
    .await;
    let (status, text) = get(&s.app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("whale_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("whale_http_requests_total{route=\"/v1/chat/completions\",status=\"404\"} 1"),
        "{text}"
    );
    let completion = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(
        text.contains(&format!("whale_completion_tokens_total {completion}\n")),
        "{text}"
    );
    let cost = v["usage"]["cost"]["total"].as_f64().unwrap();
    assert!(
        text.contains(&format!("whale_cost_total{{currency=\"CNY\"}} {cost}\n")),
        "{text}"
    );
    for family in [
        "whale_queue_depth",
        "whale_batch_size",
        "whale_tokens_per_second",
        "whale_cache_hit_ratio",
        "whale_prompt_tokens_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family}: {text}"
        );
    }
}

#[tokio::test]
async fn api_keys_guard_the_model_routes() {
    let s = server_with(engine_config(), |c| {
        c.api_keys = Some(ApiKeys::new(vec!["sk-good".into()]))
    });
    let body = chat_body(json!({})).to_string();
    let with = |key: Option<&str>| {
        let mut r =
            Request::post("/v1/chat/completions").header("content-type", "application/json");
        if let Some(k) = key {
            r = r.header("authorization", format!("Bearer {k}"));
        }
        r.body(Body::from(body.clone())).unwrap()
    };
    for key in [None, Some("sk-bad")] {
        let (status, headers, text) = send(&s.app, with(key)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert!(text.contains("authentication_error"), "{text}");
    }
    // A refused request does no model work.
    assert_eq!(s.state.engine().stats().requests_submitted, 0);
    let (status, _, text) = send(&s.app, with(Some("sk-good"))).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, _, _) = send(
        &s.app,
        Request::get("/v1/models").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&s.app, "/health").await.0, StatusCode::OK);
    assert_eq!(get(&s.app, "/metrics").await.0, StatusCode::OK);
}

/// A request that runs until its token limit (end of sequence banned).
fn long_request() -> EngineRequest {
    let mut params = SamplingParams::greedy();
    params.logit_bias.insert(1, -100.0);
    EngineRequest::new(
        vec![5, 6, 7],
        params,
        GenerationOptions {
            max_tokens: Some(240),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn overload_is_429_with_retry_after() {
    let s = server_with(
        EngineConfig {
            max_batch: 1,
            max_queue: 1,
            ..engine_config()
        },
        |_| {},
    );
    let mut running = s.state.engine().submit(long_request()).unwrap();
    running.recv().await.unwrap(); // admitted: its first token arrived
    let _waiting = s.state.engine().submit(long_request()).unwrap();
    let (status, headers, text) = send(
        &s.app,
        post_req("/v1/chat/completions", chat_body(json!({})).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
    assert_eq!(headers["retry-after"], "1");
    assert!(text.contains("overloaded"), "{text}");
}

#[tokio::test]
async fn client_disconnect_cancels_the_request() {
    let s = server();
    let body = chat_body(json!({"max_tokens": 240, "logit_bias": {"1": -100}, "stream": true}));
    let resp = s
        .app
        .clone()
        .oneshot(post_req("/v1/chat/completions", body.to_string()))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut frames = resp.into_body().into_data_stream();
    frames.next().await.unwrap().unwrap();
    frames.next().await.unwrap().unwrap();
    drop(frames); // the client goes away mid-stream
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.state.engine().stats().requests_cancelled == 0 {
        assert!(
            Instant::now() < deadline,
            "the engine request was not cancelled: {:?}",
            s.state.engine().stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(s.state.engine().stats().requests_finished, 0);
}

#[tokio::test]
async fn dropped_non_stream_request_is_cancelled() {
    let s = server();
    let body = chat_body(json!({"max_tokens": 240, "logit_bias": {"1": -100}}));
    let mut fut = Box::pin(
        s.app
            .clone()
            .oneshot(post_req("/v1/chat/completions", body.to_string())),
    );
    // Drive the handler until its request reaches the engine, then drop it, as hyper does
    // when the connection closes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.state.engine().stats().requests_submitted == 0 {
        assert!(Instant::now() < deadline, "never submitted");
        tokio::select! {
            _ = &mut fut => panic!("a 240-token request finished before it could be dropped"),
            _ = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
    }
    drop(fut);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.state.engine().stats().requests_cancelled == 0 {
        assert!(
            Instant::now() < deadline,
            "not cancelled: {:?}",
            s.state.engine().stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn concurrent_requests_match_sequential_ones() {
    let s = server();
    let bodies: Vec<Value> = ["Hello there", "What is 2+2?", "Tell me a story"]
        .iter()
        .map(|q| chat_body(json!({"messages": [{"role": "user", "content": q}], "max_tokens": 20})))
        .collect();
    let mut alone = Vec::new();
    for b in &bodies {
        alone
            .push(post(&s.app, "/v1/chat/completions", b).await.1["choices"][0]["message"].clone());
    }
    let together = futures_util::future::join_all(
        bodies
            .iter()
            .map(|b| post(&s.app, "/v1/chat/completions", b)),
    )
    .await;
    for (a, (status, t)) in alone.iter().zip(&together) {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(a, &t["choices"][0]["message"]);
    }
}
