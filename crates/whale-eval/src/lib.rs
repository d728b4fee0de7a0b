//! Evaluating reasoning the way R1 is evaluated: verifiable tasks (built-in generators and
//! user datasets), answer extraction and normalization, rule-based verifiers and rewards
//! (shared with RL), sampling through the engine, and pass@1 / pass@k / cons@k reports.

pub mod answer;
mod error;
pub mod pass_at_k;
pub mod problem;
pub mod prompt;
pub mod report;
pub mod reward;
pub mod runner;
pub mod task;
pub mod tasks;
pub mod verify;

pub use error::EvalError;
pub use problem::{Check, Problem, Verdict};
pub use prompt::PromptStyle;
pub use report::{Report, Settings};
pub use runner::{sample_problems, SampleConfig, SampleRecord};
pub use task::{Split, Task};
pub use tasks::task_by_name;
