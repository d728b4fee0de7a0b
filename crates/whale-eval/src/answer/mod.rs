//! Answers: extraction from model output, normalization, and equality.

mod expr;
mod extract;
mod normalize;

pub use expr::eval;
pub use extract::{after_reasoning, extract_answer, last_boxed, last_number, AnswerSource, Extracted};
pub use normalize::{answers_match, normalize, parse_answer, Answer};
