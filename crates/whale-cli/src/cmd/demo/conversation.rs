//! The demo's last stage: `whale serve` on a free loopback port, and a six-turn chat with
//! it over HTTP, the way any OpenAI/DeepSeek client talks to it. Each turn carries the whole
//! history, so the later turns' prompts start with the earlier ones and the prefix cache
//! answers part of them: the usage shows the cache-hit/miss split and the price.

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};
use std::net::SocketAddr;

pub struct Turn {
    pub question: String,
    pub reasoning: String,
    pub answer: String,
    pub usage: Value,
}

/// Serves the model that `serve_argv` (a `whale serve` command line) names and asks it each
/// of `questions` in one conversation.
pub fn chat(serve_argv: &[String], questions: &[String]) -> Result<Vec<Turn>> {
    let args = crate::serve_args(serve_argv)?;
    let (listener, state) = crate::cmd::serve::prepare(&args)?;
    let server = whale_server::spawn(listener, state)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the HTTP client")?;
    let turns = rt.block_on(converse(server.addr(), questions));
    server.stop()?;
    turns
}

async fn converse(addr: SocketAddr, questions: &[String]) -> Result<Vec<Turn>> {
    let mut messages: Vec<Value> = Vec::new();
    let mut turns = Vec::new();
    for q in questions {
        messages.push(json!({"role": "user", "content": q}));
        let body = json!({"model": "deepseek-reasoner", "messages": messages, "temperature": 0, "max_tokens": 160});
        let (status, resp) = post(addr, "/v1/chat/completions", &body).await?;
        if status != 200 {
            bail!("POST /v1/chat/completions answered {status}: {resp}");
        }
        let msg = &resp["choices"][0]["message"];
        let text = |k: &str| msg[k].as_str().unwrap_or_default().to_string();
        let (reasoning, answer) = (text("reasoning_content"), text("content"));
        // DeepSeek's multi-turn rule: the reasoning is not sent back, only the answer.
        messages.push(json!({"role": "assistant", "content": answer}));
        turns.push(Turn { question: q.clone(), reasoning, answer, usage: resp["usage"].clone() });
    }
    Ok(turns)
}

async fn post(addr: SocketAddr, path: &str, body: &Value) -> Result<(u16, Value)> {
    let stream = tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
    let resp = sender.send_request(req).await.with_context(|| format!("POST {path}"))?;
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.with_context(|| format!("reading the answer to POST {path}"))?.to_bytes();
    drop(sender);
    let _ = conn.await;
    let v = serde_json::from_slice(&bytes).with_context(|| format!("POST {path}: the answer is not JSON: {}", String::from_utf8_lossy(&bytes)))?;
    Ok((status, v))
}
