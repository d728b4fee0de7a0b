//! The demo's cold-start data: add/subtract problems from the `addsub` task's training split,
//! each with its worked column solution. The first `sft` problems become chat SFT examples,
//! the rest a plain-text pretraining corpus (the training split draws with replacement, so a
//! question may recur); the task's test split, used for evaluation, is held out of both.
//!
//! The question stands alone, as a person types it (no "reason step by step" instruction), and
//! the later stages ask with `--prompt-style chat-plain`. A model this small copies the
//! operands by their fixed distance from the trace: mixing prompts with and without the
//! instruction made that distance vary, and the model then failed to learn it.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use whale_eval::tasks::worked_solution;
use whale_eval::{task_by_name, Split};

pub struct Corpus {
    pub pretrain_docs: usize,
    pub sft_examples: usize,
}

/// Writes `dir/pretrain.txt` (documents separated by blank lines) and `dir/sft.jsonl`.
pub fn write(dir: &Path, task: &str, pretrain_docs: usize, sft_examples: usize) -> Result<Corpus> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let problems = task_by_name(task, "question", "answer")?.problems(Split::Train, sft_examples + pretrain_docs)?;
    let (sft, pretrain) = problems.split_at(sft_examples);

    let mut text = std::io::BufWriter::new(create(&dir.join("pretrain.txt"))?);
    for p in pretrain {
        let (trace, v) = solved(&p.question)?;
        // The layout of the chat prompt the model will later see: question (and instruction),
        // then the reasoning and the boxed answer. No blank line inside a document.
        write!(text, "{}\n<think>\n{trace}\n</think>\n\\boxed{{{v}}}\n\n", p.question)?;
    }
    text.into_inner().map_err(|e| e.into_error())?.sync_all()?;

    let mut jsonl = std::io::BufWriter::new(create(&dir.join("sft.jsonl"))?);
    for p in sft {
        let (trace, v) = solved(&p.question)?;
        let line = serde_json::json!({
            "prompt": p.question,
            "reasoning": trace,
            "answer": format!("\\boxed{{{v}}}"),
        });
        writeln!(jsonl, "{line}")?;
    }
    jsonl.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(Corpus { pretrain_docs: pretrain.len(), sft_examples: sft.len() })
}

fn create(path: &Path) -> Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))
}

fn solved(question: &str) -> Result<(String, i64)> {
    worked_solution(question).with_context(|| format!("no worked solution for {question:?} (the demo's task must be addsub)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_and_sft_set_hold_out_the_test_split_and_are_well_formed() {
        let dir = std::env::temp_dir().join(format!("whale-demo-data-{}", std::process::id()));
        let c = write(&dir, "addsub:2", 50, 10).unwrap();
        assert_eq!((c.pretrain_docs, c.sft_examples), (50, 10));
        let text = std::fs::read_to_string(dir.join("pretrain.txt")).unwrap();
        let docs: Vec<&str> = text.split("\n\n").filter(|d| !d.trim().is_empty()).collect();
        assert_eq!(docs.len(), 50);
        assert!(docs.iter().all(|d| d.starts_with("What is ") && d.contains("\n<think>\n") && d.contains("</think>\n\\boxed{")));
        assert!(docs.iter().all(|d| d.lines().nth(1) == Some("<think>")), "the question stands alone");
        let sft: Vec<serde_json::Value> =
            std::fs::read_to_string(dir.join("sft.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(sft.len(), 10);
        assert!(sft.iter().all(|e| e["reasoning"].as_str().unwrap().contains("so=")));
        // No evaluation question is trained on.
        let test = task_by_name("addsub:2", "question", "answer").unwrap().problems(Split::Test, 500).unwrap();
        let trained: Vec<&str> = docs.iter().map(|d| d.lines().next().unwrap()).chain(sft.iter().map(|e| e["prompt"].as_str().unwrap().lines().next().unwrap())).collect();
        assert_eq!(trained.len(), 60);
        for p in &test {
            assert!(!trained.contains(&p.question.as_str()), "{} is a test question", p.question);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
