//! The built-in task generators, user datasets, and lookup by name.

mod arithmetic;
mod countdown;
mod dataset;
mod linear;
mod word_problems;
mod worked;

pub use arithmetic::Arithmetic;
pub use countdown::Countdown;
pub use dataset::{gold_answer, Dataset};
pub use linear::Linear;
pub use word_problems::WordProblems;
pub use worked::worked_solution;

use crate::task::{Generated, Task};
use crate::EvalError;
use std::path::Path;

/// Size of every built-in task's fixed held-out split.
pub const TEST_SIZE: usize = 500;

/// The names `task_by_name` knows, with their difficulty knob.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("arithmetic[:DIGITS]", "a op b, op in + - *, DIGITS-digit operands (default 2)"),
    ("addsub[:DIGITS]", "a + b or a - b with DIGITS-digit operands (default 2)"),
    ("countdown[:COUNT]", "reach a target with COUNT numbers (default 4)"),
    ("linear[:MAX]", "solve a*x + b = c, coefficients up to MAX (default 9)"),
    ("word[:MAX]", "one- or two-step word problems, quantities up to MAX (default 20)"),
];

/// `arithmetic:3`, `countdown`, … or a `.jsonl` / `.parquet` file (with its question/answer
/// field names).
pub fn task_by_name(spec: &str, question_field: &str, answer_field: &str) -> Result<Box<dyn Task>, EvalError> {
    if spec.ends_with(".jsonl") || spec.ends_with(".parquet") || Path::new(spec).is_file() {
        return Ok(Box::new(Dataset::new(Path::new(spec), question_field, answer_field)));
    }
    let (name, knob) = match spec.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (spec, None),
    };
    let num = |default: i64, lo: i64, hi: i64| -> Result<i64, EvalError> {
        let v = match knob {
            None => default,
            Some(k) => k.parse::<i64>().map_err(|_| EvalError::Task(format!("task {spec:?}: {k:?} is not a number")))?,
        };
        if !(lo..=hi).contains(&v) {
            return Err(EvalError::Task(format!("task {spec:?}: difficulty {v} is outside {lo}..={hi}")));
        }
        Ok(v)
    };
    Ok(match name {
        // From 2 digits: 1-digit problems are too few (300) for a 500-problem held-out split.
        "arithmetic" => Box::new(Generated::new(Arithmetic { digits: num(2, 2, 9)? as u32, multiply: true }, TEST_SIZE)),
        "addsub" => Box::new(Generated::new(Arithmetic { digits: num(2, 2, 9)? as u32, multiply: false }, TEST_SIZE)),
        "countdown" => Box::new(Generated::new(Countdown { count: num(4, 3, 6)? as usize }, TEST_SIZE)),
        "linear" => Box::new(Generated::new(Linear { max_coefficient: num(9, 2, 1000)? }, TEST_SIZE)),
        "word" => Box::new(Generated::new(WordProblems { max_quantity: num(20, 4, 100000)? }, TEST_SIZE)),
        _ => {
            let known = BUILT_IN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
            return Err(EvalError::Task(format!("unknown task {spec:?}: use one of {known}, or a .jsonl or .parquet file")));
        }
    })
}
