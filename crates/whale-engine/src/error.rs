//! The error type of sampling.
//!
//! Sampling parameters come from API requests and logits from the model, so every failure is a
//! [`SamplingError`] naming the field (or the token), the value, and what was expected; nothing
//! panics on bad input.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    /// A sampling parameter outside its allowed range.
    #[error("invalid sampling parameter {field} = {value}: expected {expected}")]
    InvalidParam { field: String, value: String, expected: String },

    /// A logits row with no entries.
    #[error("logits row is empty; expected one logit per vocabulary entry")]
    EmptyLogits,

    /// A logits row longer than token ids (u32) can index.
    #[error("logits row has {len} entries; at most {max} token ids are supported", max = u32::MAX)]
    VocabTooLarge { len: usize },

    /// A `logit_bias` entry for a token the model does not have.
    #[error(
        "logit_bias token id {token} is out of range; expected an id below vocab size {vocab}"
    )]
    BiasTokenOutOfRange { token: u32, vocab: usize },

    /// Every logit is -inf or NaN after penalties and bias: no token can be chosen.
    #[error(
        "all {vocab} logits are -inf/NaN after penalties and logit_bias; expected a finite one"
    )]
    AllMasked { vocab: usize },
}
