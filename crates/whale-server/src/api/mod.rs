//! The wire types of the API: request structs as clients send them (DeepSeek's and OpenAI's
//! field names) and response structs as they are serialized. No logic beyond shape lives
//! here; `validation` turns requests into engine terms.

pub mod chat;
pub mod common;
pub mod completions;
pub mod models;
