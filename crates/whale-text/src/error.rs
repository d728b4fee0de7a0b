//! The error type of the text layer.
//!
//! Tokenizer and template files come from outside, so every failure to load or use them is a
//! [`TextError`] naming the file (or the template line) and what is wrong; nothing panics.

use std::path::PathBuf;

use whale_core::gguf::GgufError;

#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A tokenizer file that is missing or unreadable.
    #[error("{}: cannot read tokenizer file: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (tokenizer.json, tokenizer_config.json, ...) that is not valid JSON.
    #[error("{}: invalid JSON: {message}", path.display())]
    Json { path: PathBuf, message: String },

    /// Valid JSON (or GGUF) that does not describe a usable tokenizer.
    #[error("{}: not a valid tokenizer: {message}", path.display())]
    InvalidTokenizer { path: PathBuf, message: String },

    /// The GGUF file itself is malformed.
    #[error(transparent)]
    Gguf(#[from] GgufError),

    /// A `tokenizer.ggml.model` this crate cannot build.
    #[error(
        "{}: unsupported GGUF tokenizer model tokenizer.ggml.model = {model:?}; supported: {supported}",
        path.display()
    )]
    UnsupportedGgufModel { path: PathBuf, model: String, supported: String },

    /// A `tokenizer.ggml.pre` (pre-tokenizer regex set) this crate does not know.
    #[error(
        "{}: unsupported GGUF pre-tokenizer tokenizer.ggml.pre = {pre:?}; supported: {supported}",
        path.display()
    )]
    UnsupportedGgufPre { path: PathBuf, pre: String, supported: String },

    /// Encoding or decoding failed inside the tokenizer.
    #[error("tokenizer: {0}")]
    Tokenize(String),

    /// A chat template that does not compile or fails to render.
    #[error("chat template: {0}")]
    Template(String),

    /// A request value the text layer cannot use (e.g. an empty stop string).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A chat template was needed but the tokenizer has none.
    #[error("no chat template: neither tokenizer_config.json, chat_template.jinja nor the GGUF has one")]
    NoChatTemplate,
}

impl TextError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TextError::Io { path: path.into(), source }
    }
    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TextError::InvalidTokenizer { path: path.into(), message: message.into() }
    }
}
