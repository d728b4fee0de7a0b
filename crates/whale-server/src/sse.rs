//! Server-sent events: a generation streamed as `data: {json}\n\n` events, ending with
//! `data: [DONE]\n\n` (OpenAI's and DeepSeek's framing). The body stream owns the
//! generation, so when the client disconnects hyper drops the body, which drops the engine
//! request and cancels it at the next token.
//!
//! An error after the headers went out cannot change the status any more; it is sent as an
//! `{"error": ...}` event (the `openai` package raises it as an `APIError`).

use crate::error::ApiError;
use crate::generation::{Finish, Piece, Step, TextGen};
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::VecDeque;
use std::convert::Infallible;

/// How one route turns a generation into events.
pub trait ChunkFormat: Send + 'static {
    /// Events before the first token (chat sends the assistant role).
    fn start(&mut self) -> Vec<Bytes>;
    fn piece(&mut self, piece: Piece) -> Vec<Bytes>;
    /// The finish event(s), and the usage event when asked for.
    fn finish(&mut self, finish: Finish) -> Vec<Bytes>;
}

/// One `data:` event with a JSON payload.
pub fn event(payload: &impl Serialize) -> Bytes {
    match serde_json::to_string(payload) {
        Ok(json) => Bytes::from(format!("data: {json}\n\n")),
        Err(e) => error_event(&ApiError::Internal(format!("serializing a chunk: {e}"))),
    }
}

fn error_event(e: &ApiError) -> Bytes {
    Bytes::from(format!("data: {}\n\n", e.to_json()))
}

const DONE: &[u8] = b"data: [DONE]\n\n";

struct Driver<F> {
    gen: TextGen,
    format: F,
    outbox: VecDeque<Bytes>,
    ended: bool,
}

impl<F: ChunkFormat> Driver<F> {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.outbox.pop_front() {
                return Some(b);
            }
            if self.ended {
                return None;
            }
            match self.gen.next().await {
                Ok(Some(Step::Piece(p))) => self.outbox.extend(self.format.piece(p)),
                Ok(Some(Step::Finished(f))) => {
                    self.outbox.extend(self.format.finish(f));
                    self.end();
                }
                Ok(None) => self.end(),
                Err(e) => {
                    tracing::warn!("stream failed: {e}");
                    self.outbox.push_back(error_event(&e));
                    self.end();
                }
            }
        }
    }

    fn end(&mut self) {
        self.outbox.push_back(Bytes::from_static(DONE));
        self.ended = true;
    }
}

/// The streamed response of a generation.
pub fn response<F: ChunkFormat>(gen: TextGen, mut format: F) -> Response {
    let outbox = format.start().into();
    let driver = Driver {
        gen,
        format,
        outbox,
        ended: false,
    };
    let stream = futures_util::stream::unfold(driver, |mut d| async move {
        let bytes = d.next().await?;
        Some((Ok::<Bytes, Infallible>(bytes), d))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
