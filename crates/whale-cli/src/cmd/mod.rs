pub mod bench;
pub mod chat;
pub mod eval;
pub mod generate;
pub mod grpo;
pub mod logits;
pub mod tokenize;
