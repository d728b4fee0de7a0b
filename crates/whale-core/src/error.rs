//! The one error type of Whale's libraries.
//!
//! Every variant names what is wrong in terms a user can act on: the file, the field or
//! tensor, what was expected and what was found. Nothing that comes from a file on disk may
//! panic; it becomes one of these.

use std::path::PathBuf;

pub type Result<T, E = WhaleError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum WhaleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not a valid config: {message}")]
    ConfigParse { path: PathBuf, message: String },

    #[error("{path}: unknown model_type {found:?}; Whale supports {supported}")]
    UnknownModelType {
        path: PathBuf,
        found: String,
        supported: String,
    },

    #[error("invalid config value `{field}`: {reason}")]
    InvalidConfig { field: String, reason: String },

    #[error("missing tensor `{name}` in {location}")]
    MissingTensor { name: String, location: String },

    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("tensor `{name}` has unsupported dtype {dtype}; supported: f32, f16, bf16")]
    UnsupportedDtype { name: String, dtype: String },

    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },

    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },

    #[error("invalid input: {0}")]
    InvalidInput(String),

    #[error(transparent)]
    Tensor(#[from] candle_core::Error),

    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
}

impl WhaleError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WhaleError::Io { path: path.into(), source }
    }

    pub fn invalid_config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        WhaleError::InvalidConfig { field: field.into(), reason: reason.into() }
    }
}
