//! User datasets in JSONL (one object per line) with a question field and an answer field,
//! as GSM8K and MATH-500 ship them. The gold answer is read from the answer field the way
//! those datasets write it: after `####` (GSM8K), inside the last `\boxed{}` (MATH
//! solutions), or the whole field (MATH-500's `answer`). A file is one split: give the test
//! file to `whale eval` and the train file to `whale grpo`.

use crate::answer::last_boxed;
use crate::problem::{Check, Problem};
use crate::task::{Split, Task};
use crate::EvalError;
use std::path::{Path, PathBuf};

pub struct Dataset {
    path: PathBuf,
    question_field: String,
    answer_field: String,
}

impl Dataset {
    pub fn new(path: &Path, question_field: &str, answer_field: &str) -> Self {
        Dataset { path: path.to_path_buf(), question_field: question_field.into(), answer_field: answer_field.into() }
    }

    fn load(&self) -> Result<Vec<Problem>, EvalError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| EvalError::Io(self.path.clone(), e))?;
        let bad = |line: usize, msg: String| EvalError::Data { file: self.path.clone(), line, msg };
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(i + 1, format!("not valid JSON: {e}")))?;
            let field = |name: &str| -> Result<String, EvalError> {
                match v.get(name) {
                    Some(serde_json::Value::String(s)) => Ok(s.clone()),
                    Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
                    Some(other) => Err(bad(i + 1, format!("field {name:?} is {other}, expected a string or number"))),
                    None => Err(bad(i + 1, format!("no field {name:?} (fields: {})", keys(&v)))),
                }
            };
            let question = field(&self.question_field)?;
            let gold = gold_answer(&field(&self.answer_field)?);
            out.push(Problem { id: format!("line-{}", i + 1), question, check: Check::Value { gold } });
        }
        if out.is_empty() {
            return Err(bad(0, "no problems in the file".into()));
        }
        Ok(out)
    }
}

fn keys(v: &serde_json::Value) -> String {
    v.as_object().map_or_else(|| "none: not an object".into(), |o| o.keys().cloned().collect::<Vec<_>>().join(", "))
}

/// The gold answer written in an answer field (an unreadable one stays as is; the verifier
/// counts it as a gold error).
pub fn gold_answer(field: &str) -> String {
    if let Some(i) = field.rfind("####") {
        return field[i + 4..].trim().to_string();
    }
    if let Some(b) = last_boxed(field) {
        return b;
    }
    field.trim().to_string()
}

impl Task for Dataset {
    fn name(&self) -> String {
        self.path.file_stem().map_or_else(|| "dataset".into(), |s| s.to_string_lossy().to_string())
    }

    fn problems(&self, _split: Split, n: usize) -> Result<Vec<Problem>, EvalError> {
        let mut all = self.load()?;
        all.truncate(n);
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Task;

    #[test]
    fn reads_gsm8k_and_math_style_answers_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        std::fs::write(
            &p,
            "{\"question\":\"q1\",\"answer\":\"3 + 4 = 7\\n#### 7\"}\n\n{\"question\":\"q2\",\"answer\":\"so \\\\boxed{\\\\frac{1}{2}}.\"}\n{\"question\":\"q3\",\"answer\":42}\n",
        )
        .unwrap();
        let d = Dataset::new(&p, "question", "answer");
        let ps = d.problems(Split::Test, 10).unwrap();
        let golds: Vec<String> = ps.iter().map(|p| match &p.check { Check::Value { gold } => gold.clone(), _ => unreachable!() }).collect();
        assert_eq!(golds, ["7", "\\frac{1}{2}", "42"]);
        assert_eq!(d.problems(Split::Test, 2).unwrap().len(), 2);

        std::fs::write(&p, "{\"question\":\"q1\",\"answer\":\"1\"}\n{\"q\":\"oops\"}\n").unwrap();
        let e = d.problems(Split::Test, 10).unwrap_err().to_string();
        assert!(e.contains("d.jsonl") && e.contains("line 2") && e.contains("\"question\"") && e.contains("fields: q"), "{e}");
        std::fs::write(&p, "not json\n").unwrap();
        let e = d.problems(Split::Test, 10).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("not valid JSON"), "{e}");
    }
}
