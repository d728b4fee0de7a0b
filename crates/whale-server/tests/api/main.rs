//! In-process tests of every route and every error, on the tiny DeepSeek-V3 fixture with the
//! 512-token R1-style chat tokenizer, through `tower::ServiceExt::oneshot` (no sockets).

mod common;

mod cache_fault;
mod chat;
mod completions;
mod errors;
mod fim;
mod ops;
mod scripted;
mod tools;
