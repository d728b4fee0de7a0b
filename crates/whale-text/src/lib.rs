//! Text around the model: tokenizers, chat templates, and the streaming views of generated
//! text (the `<think>` reasoning split, stop strings).
//!
//! - [`Tokenizer`]: HF `tokenizer.json` (+ side files) or GGUF metadata → encode/decode, special
//!   ids, chat template; [`StreamDecoder`] for incremental detokenization.
//! - [`ChatTemplate`]: HF Jinja chat templates rendered with minijinja.

pub mod bpe_train;
pub mod chat_template;
pub mod error;
pub mod gguf_export;
mod gguf_spm;
mod gguf_vocab;
mod hf_config;
mod jinja_ext;
mod pretokenize;
pub mod output;
pub mod reasoning;
pub mod stop;
pub mod stream;
pub mod tokenizer;

pub use chat_template::{
    ChatMessage, ChatTemplate, RenderOptions, RenderedChat, ToolCall, ToolCallFunction,
};
pub use bpe_train::{save_r1_tokenizer, train_bpe, BpeTrainConfig};
pub use error::TextError;
pub use gguf_export::gguf_metadata;
pub use stream::StreamDecoder;
pub use tokenizer::{SpecialTokens, Tokenizer};
