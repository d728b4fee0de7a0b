//! A problem with a verifiable answer, and the verdict on one attempt at it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable within its task and split (used to resume runs).
    pub id: String,
    pub question: String,
    pub check: Check,
}

/// How an answer is judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Check {
    /// The extracted answer must equal this gold answer (after normalization).
    Value { gold: String },
    /// The answer is an expression that must use each given number at most once and evaluate
    /// to the target.
    Countdown { numbers: Vec<i64>, target: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Correct,
    Wrong,
    /// The output states no answer that could be read: wrong, and counted separately.
    Unparseable,
    /// The gold answer itself could not be read: never a reward, counted separately.
    GoldError,
}

impl Verdict {
    pub fn is_correct(self) -> bool {
        self == Verdict::Correct
    }
}
