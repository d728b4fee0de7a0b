//! Function calling through the router: tools in the prompt (DeepSeek's templates do not read
//! `tools`, so they go into the system prompt), DeepSeek-V3's call format parsed back into
//! `message.tool_calls` and streamed `delta.tool_calls`, `finish_reason: "tool_calls"`,
//! `tool_choice`, past calls and tool outputs rendered, and the errors. The model outputs are
//! crafted with the scripted model.

use crate::common::*;
use crate::scripted::Scripted;
use axum::http::StatusCode;
use serde_json::{json, Value};
use whale_engine::EngineConfig;
use whale_server::api::chat::InputMessage;
use whale_server::tool_parser::{CALLS_BEGIN, CALLS_END, CALL_BEGIN, CALL_END, SEP};

fn call(name: &str, args: &str) -> String {
    format!("{CALL_BEGIN}function{SEP}{name}\n```json\n{args}\n```{CALL_END}")
}

/// A server whose model writes `text` (then EOS), without a prefix cache.
fn scripted(text: &str) -> Server {
    let tok = whale_text::Tokenizer::from_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/tiny_chat_tokenizer"),
    )
    .unwrap();
    let ids = tok.encode(text, false).unwrap();
    assert_eq!(
        tok.decode(&ids, false).unwrap(),
        text,
        "the script must round-trip"
    );
    let eos = *tok.eos_ids().iter().next().unwrap();
    let engine = EngineConfig {
        prefix_cache: None,
        ..Default::default()
    };
    server_with_model(
        move |m| Box::new(Scripted::new(m, ids, eos)),
        engine,
        |_| {},
    )
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

fn body(extra: Value) -> Value {
    let mut b = json!({"model": MODEL, "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [weather_tool()], "max_tokens": 400, "temperature": 0});
    if let (Some(o), Value::Object(e)) = (b.as_object_mut(), extra) {
        o.extend(e);
    }
    b
}

#[tokio::test]
async fn calls_are_parsed_into_tool_calls() {
    let out = format!(
        "Need data.</think>\n\nLet me look.{CALLS_BEGIN}{}\n{}{CALLS_END}",
        call("get_weather", r#"{"city": "Paris"}"#),
        call("get_weather", r#"{"city": "Lyon"}"#)
    );
    let s = scripted(&out);
    let (status, v) = post(&s.app, "/v1/chat/completions", &body(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let m = &choice["message"];
    assert_eq!(m["reasoning_content"], "Need data.");
    assert_eq!(m["content"], "Let me look.");
    let calls = m["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], r#"{"city": "Paris"}"#);
    assert_eq!(calls[1]["function"]["arguments"], r#"{"city": "Lyon"}"#);
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_ne!(calls[0]["id"], calls[1]["id"]);
}

#[tokio::test]
async fn streamed_calls_arrive_as_delta_tool_calls() {
    let out = format!(
        "Hmm.</think>\n\nOne moment.{CALLS_BEGIN}{}{CALLS_END}",
        call("get_weather", r#"{"city": "Oslo"}"#)
    );
    let s = scripted(&out);
    let events = stream(
        &s.app,
        "/v1/chat/completions",
        &body(json!({"stream": true})),
    )
    .await;
    let deltas: Vec<&Value> = events.iter().map(|e| &e["choices"][0]["delta"]).collect();
    let content: String = deltas
        .iter()
        .filter_map(|d| d["content"].as_str())
        .collect();
    assert_eq!(content, "One moment.", "markers never leak into content");
    let calls: Vec<&Value> = deltas
        .iter()
        .filter_map(|d| d["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(calls.len(), 1, "{events:?}");
    assert_eq!(calls[0]["index"], 0);
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["function"]["arguments"], r#"{"city": "Oslo"}"#);
    assert_eq!(
        events.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn a_named_tool_choice_forces_the_call() {
    // The prompt already opened the call and named the function: the model writes the rest.
    let s = scripted(&format!("{{\"city\": \"Rome\"}}\n```{CALL_END}{CALLS_END}"));
    let choice = json!({"type": "function", "function": {"name": "get_weather"}});
    let (status, v) = post(
        &s.app,
        "/v1/chat/completions",
        &body(json!({"tool_choice": choice})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let m = &v["choices"][0]["message"];
    assert_eq!(
        m["content"],
        Value::Null,
        "an answer of only calls has null content"
    );
    assert_eq!(m["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        r#"{"city": "Rome"}"#
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    // "required" prefills only the opener; the model picks the function.
    let s = scripted(&format!(
        "get_weather\n```json\n{{}}\n```{CALL_END}{CALLS_END}"
    ));
    let (_, v) = post(
        &s.app,
        "/v1/chat/completions",
        &body(json!({"tool_choice": "required"})),
    )
    .await;
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
}

#[tokio::test]
async fn without_tools_or_with_tool_choice_none_nothing_is_parsed() {
    let out = format!(
        "x</think>\n\n{CALLS_BEGIN}{}{CALLS_END}",
        call("get_weather", "{}")
    );
    let s = scripted(&out);
    let (_, v) = post(
        &s.app,
        "/v1/chat/completions",
        &body(json!({"tool_choice": "none"})),
    )
    .await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("get_weather"));
}

#[tokio::test]
async fn tools_and_past_calls_are_rendered_in_deepseeks_format() {
    let s = server();
    let tok = s.state.tokenizer();
    let msgs: Vec<InputMessage> = serde_json::from_value(json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"}
    ]))
    .unwrap();
    let req: whale_server::api::chat::ChatCompletionRequest =
        serde_json::from_value(json!({"model": MODEL, "messages": [], "tools": [weather_tool()]}))
            .unwrap();
    let setup = whale_server::tools::setup(&req).unwrap().unwrap();
    let p = whale_server::prompt::chat_prompt_with_tools(tok, &msgs, Some(&setup)).unwrap();
    let text = tok.decode(&p.ids, false).unwrap();
    assert!(
        text.contains("### get_weather\nWeather in a city."),
        "{text}"
    );
    assert!(
        text.contains(&format!("<｜Assistant｜>{CALLS_BEGIN}{CALL_BEGIN}function{SEP}get_weather\n```json\n{{\"city\": \"Paris\"}}\n```{CALL_END}")),
        "{text}"
    );
    assert!(
        text.contains("<｜tool▁output▁begin｜>18C, sunny<｜tool▁output▁end｜>"),
        "{text}"
    );
    // The tool list goes first, as the system prompt (the template has no `tools` variable).
    assert!(
        text.starts_with("<｜begin▁of▁sentence｜>## Tools"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_tool_requests_are_400_naming_the_field() {
    let s = server();
    let cases = [
        (
            json!({"tools": [{"type": "retrieval", "function": {"name": "f"}}]}),
            "tools[0].type",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "has space"}}]}),
            "tools[0].function.name",
        ),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}]}),
            "tools[0].function.parameters",
        ),
        (json!({"tool_choice": "sometimes"}), "tool_choice"),
        (
            json!({"tool_choice": {"type": "function", "function": {"name": "nope"}}}),
            "tool_choice.function.name",
        ),
        (
            json!({"tools": [], "tool_choice": "required"}),
            "tool_choice",
        ),
        (
            json!({"response_format": {"type": "json_object"}}),
            "response_format",
        ),
    ];
    for (extra, param) in cases {
        let (status, v) = post(&s.app, "/v1/chat/completions", &body(extra.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}: {v}");
        assert_eq!(v["error"]["param"], param, "{extra}: {v}");
    }
    let too_many: Vec<Value> = (0..129)
        .map(|i| json!({"type": "function", "function": {"name": format!("f{i}")}}))
        .collect();
    let (status, v) = post(
        &s.app,
        "/v1/chat/completions",
        &body(json!({"tools": too_many})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 128"),
        "{v}"
    );
}

/// The tiny tokenizer with DeepSeek-V3's tool markers added as special tokens (ids 512..),
/// as V3's own vocabulary has them: the decoder drops special tokens, so the server must keep
/// their text for the parser.
fn tokenizer_with_special_markers() -> (tempfile::TempDir, whale_text::Tokenizer) {
    let src = fixture("tiny_chat_tokenizer");
    let mut json: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer.json")).unwrap())
            .unwrap();
    let added = json["added_tokens"].as_array_mut().unwrap();
    for (i, m) in whale_server::tool_parser::MARKERS.iter().enumerate() {
        added.push(
            json!({"id": 512 + i, "content": m, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true}),
        );
    }
    let dir = model_dir();
    std::fs::write(dir.path().join("tokenizer.json"), json.to_string()).unwrap();
    let tok = whale_text::Tokenizer::from_dir(dir.path()).unwrap();
    (dir, tok)
}

#[tokio::test]
async fn calls_written_with_special_marker_tokens_are_parsed() {
    let (dir, tok) = tokenizer_with_special_markers();
    let begin = tok.token_to_id(CALLS_BEGIN).unwrap();
    assert!(tok.is_special(begin));
    let out = format!(
        "ok</think>\n\nSure.{CALLS_BEGIN}{}{CALLS_END}",
        call("get_weather", r#"{"city": "Nice"}"#)
    );
    let ids = tok.encode(&out, false).unwrap();
    assert!(ids.contains(&begin), "the markers are single tokens");
    assert!(
        !tok.decode(&ids, true).unwrap().contains("tool"),
        "and the decoder drops them"
    );
    let eos = *tok.eos_ids().iter().next().unwrap();
    let inner = whale_model::load_model(
        dir.path(),
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let model = Box::new(Scripted::with_vocab(
        inner,
        ids,
        eos,
        Some(tok.vocab_size()),
    ));
    let engine = EngineConfig {
        prefix_cache: None,
        ..Default::default()
    };
    let s = server_from(model, tok, dir, engine, |_| {});
    let (status, v) = post(&s.app, "/v1/chat/completions", &body(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], "Sure.");
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        r#"{"city": "Nice"}"#
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let events = stream(
        &s.app,
        "/v1/chat/completions",
        &body(json!({"stream": true})),
    )
    .await;
    let calls: Vec<&Value> = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["function"]["name"], "get_weather");
}
