//! One handler per endpoint.

pub mod chat;
pub mod completions;
pub mod health;
pub mod metrics;
pub mod models;
