//! User datasets with a question field and an answer field, as GSM8K and MATH-500 ship them:
//! JSONL (one object per line) or Parquet (the format of the HF hub's dataset files; string or
//! number columns). The gold answer is read from the answer field the way those datasets
//! write it: after `####` (GSM8K), inside the last `\boxed{}` (MATH solutions), or the whole
//! field (MATH-500's `answer`). A file is one split: give the test file to `whale eval` and
//! the train file to `whale grpo`.

use crate::answer::last_boxed;
use crate::problem::{Check, Problem};
use crate::task::{Split, Task};
use crate::EvalError;
use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::record::Field;
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

    fn bad(&self, at: String, msg: String) -> EvalError {
        EvalError::Data { file: self.path.clone(), at, msg }
    }

    fn load(&self) -> Result<Vec<Problem>, EvalError> {
        let parquet = self.path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
        let out = if parquet { self.load_parquet()? } else { self.load_jsonl()? };
        if out.is_empty() {
            return Err(self.bad("whole file".into(), "no problems in the file".into()));
        }
        Ok(out)
    }

    fn problem(&self, id: String, question: String, answer: String) -> Problem {
        Problem { id, question, check: Check::Value { gold: gold_answer(&answer) } }
    }

    fn load_jsonl(&self) -> Result<Vec<Problem>, EvalError> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| EvalError::Io(self.path.clone(), e))?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = || format!("line {}", i + 1);
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| self.bad(at(), format!("not valid JSON: {e}")))?;
            let field = |name: &str| -> Result<String, EvalError> {
                match v.get(name) {
                    Some(serde_json::Value::String(s)) => Ok(s.clone()),
                    Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
                    Some(other) => Err(self.bad(at(), format!("field {name:?} is {other}, expected a string or number"))),
                    None => Err(self.bad(at(), format!("no field {name:?} (fields: {})", keys(&v)))),
                }
            };
            out.push(self.problem(format!("line-{}", i + 1), field(&self.question_field)?, field(&self.answer_field)?));
        }
        Ok(out)
    }

    /// Rows through parquet's record reader: eval sets are small (MATH-500, GSM8K's 1,319).
    fn load_parquet(&self) -> Result<Vec<Problem>, EvalError> {
        let file = std::fs::File::open(&self.path).map_err(|e| EvalError::Io(self.path.clone(), e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| self.bad("header".into(), format!("not a readable Parquet file: {e}")))?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let columns: Vec<String> = schema.columns().iter().map(|c| c.path().string()).collect();
        for name in [&self.question_field, &self.answer_field] {
            if !columns.contains(name) {
                return Err(self.bad("schema".into(), format!("no column {name:?} (columns: {})", columns.join(", "))));
            }
        }
        let rows = reader.get_row_iter(None).map_err(|e| self.bad("row 1".into(), e.to_string()))?;
        let mut out = Vec::new();
        for (i, row) in rows.enumerate() {
            let at = || format!("row {}", i + 1);
            let row = row.map_err(|e| self.bad(at(), e.to_string()))?;
            let field = |name: &str| -> Result<String, EvalError> {
                let value = row.get_column_iter().find(|(n, _)| *n == name).map(|(_, v)| v);
                match value {
                    Some(Field::Str(s)) => Ok(s.clone()),
                    Some(f @ (Field::Byte(_) | Field::Short(_) | Field::Int(_) | Field::Long(_) | Field::UByte(_) | Field::UShort(_)
                    | Field::UInt(_) | Field::ULong(_) | Field::Float(_) | Field::Double(_) | Field::Decimal(_))) => Ok(f.to_string()),
                    Some(Field::Null) | None => Err(self.bad(at(), format!("column {name:?} is null"))),
                    Some(other) => Err(self.bad(at(), format!("column {name:?} holds {other}, expected a string or number"))),
                }
            };
            out.push(self.problem(format!("row-{}", i + 1), field(&self.question_field)?, field(&self.answer_field)?));
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

    /// A Parquet file as the HF hub ships one: a string question column, a string answer
    /// column in GSM8K's `#### N` form and an integer column, read by name.
    #[test]
    fn reads_parquet_columns_by_name_and_names_bad_ones() {
        use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use parquet::schema::parser::parse_message_type;
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gsm.parquet");
        let schema = "message m { required binary question (UTF8); optional binary answer (UTF8); required int64 target; }";
        let mut w = SerializedFileWriter::new(
            std::fs::File::create(&p).unwrap(),
            Arc::new(parse_message_type(schema).unwrap()),
            Arc::new(WriterProperties::builder().build()),
        )
        .unwrap();
        let mut rg = w.next_row_group().unwrap();
        let mut i = 0;
        while let Some(mut col) = rg.next_column().unwrap() {
            match i {
                0 => {
                    let q: Vec<ByteArray> = ["What is 2+3?", "Half of 9?", "No answer"].iter().map(|s| ByteArray::from(*s)).collect();
                    col.typed::<ByteArrayType>().write_batch(&q, None, None).unwrap();
                }
                1 => {
                    let a: Vec<ByteArray> = ["2 + 3 = 5\n#### 5", "\\boxed{\\frac{9}{2}}"].iter().map(|s| ByteArray::from(*s)).collect();
                    col.typed::<ByteArrayType>().write_batch(&a, Some(&[1, 1, 0]), None).unwrap();
                }
                _ => {
                    col.typed::<Int64Type>().write_batch(&[5, 4, 7], None, None).unwrap();
                }
            }
            col.close().unwrap();
            i += 1;
        }
        rg.close().unwrap();
        w.close().unwrap();

        let golds = |d: &Dataset, n| -> Vec<String> {
            d.problems(Split::Test, n).unwrap().iter().map(|p| match &p.check { Check::Value { gold } => gold.clone(), _ => unreachable!() }).collect()
        };
        assert_eq!(golds(&Dataset::new(&p, "question", "target"), 10), ["5", "4", "7"]);
        let e = Dataset::new(&p, "question", "answer").problems(Split::Test, 10).unwrap_err().to_string();
        assert!(e.contains("gsm.parquet") && e.contains("row 3") && e.contains("\"answer\" is null"), "{e}");
        let e = Dataset::new(&p, "problem", "answer").problems(Split::Test, 10).unwrap_err().to_string();
        assert!(e.contains("no column \"problem\"") && e.contains("question, answer, target"), "{e}");
        std::fs::write(&p, b"PAR1 not really").unwrap();
        let e = Dataset::new(&p, "question", "answer").problems(Split::Test, 10).unwrap_err().to_string();
        assert!(e.contains("not a readable Parquet file"), "{e}");
    }
}
