pub mod bench;
pub mod generate;
pub mod logits;
