//! Whale's foundation: errors, typed model configs, weights on disk.

pub mod config;
pub mod error;
pub mod gguf;
pub mod weights;

pub use error::{Result, WhaleError};
pub use weights::Weights;
