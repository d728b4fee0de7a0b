//! Parquet datasets as pyarrow writes them (the HF hub's format): GSM8K's layout with snappy
//! pages, MATH-500's with zstd pages in two row groups and an integer column. Made by
//! `tests/fixtures/gen/gen_parquet_datasets.py`.

use std::path::PathBuf;
use whale_eval::problem::Check;
use whale_eval::{task_by_name, Split};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/datasets").join(name).to_string_lossy().into_owned()
}

fn golds(path: &str, q: &str, a: &str) -> Vec<(String, String)> {
    let task = task_by_name(path, q, a).unwrap();
    task.problems(Split::Test, 100)
        .unwrap()
        .into_iter()
        .map(|p| match p.check {
            Check::Value { gold } => (p.question, gold),
            other => panic!("unexpected check {other:?}"),
        })
        .collect()
}

#[test]
fn pyarrow_files_read_by_column_name() {
    let gsm = golds(&fixture("gsm8k_style.parquet"), "question", "answer");
    assert_eq!(gsm.len(), 2);
    assert!(gsm[0].0.starts_with("Tom has 3 apples"));
    assert_eq!((gsm[0].1.as_str(), gsm[1].1.as_str()), ("7", "35"));

    let math = golds(&fixture("math500_style.parquet"), "problem", "answer");
    let answers: Vec<&str> = math.iter().map(|(_, g)| g.as_str()).collect();
    assert_eq!(answers, ["\\frac{3}{4}", "4", "5"], "all rows of both row groups");
    // A number column works as the answer field too.
    let levels = golds(&fixture("math500_style.parquet"), "problem", "level");
    assert_eq!(levels.iter().map(|(_, g)| g.as_str()).collect::<Vec<_>>(), ["1", "1", "2"]);

    let e = task_by_name(&fixture("math500_style.parquet"), "question", "answer").unwrap().problems(Split::Test, 10).unwrap_err().to_string();
    assert!(e.contains("no column \"question\"") && e.contains("problem, answer, level"), "{e}");
}
