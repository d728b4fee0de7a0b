//! The evaluation report: R1's metrics over k samples per problem (pass@1 as mean
//! correctness with a 95% interval over problems, pass@k for powers of two up to k, cons@k),
//! response length, the share of unparseable answers and gold errors, and the settings used.

use crate::pass_at_k::{majority, mean_ci95, pass_at_k};
use crate::problem::{Problem, Verdict};
use crate::runner::SampleRecord;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub model: String,
    pub task: String,
    pub problems: usize,
    pub samples: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub max_tokens: usize,
    pub prompt_style: crate::prompt::PromptStyle,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemResult {
    pub id: String,
    pub correct: usize,
    pub samples: usize,
    pub majority_answer: Option<String>,
    pub majority_correct: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub settings: Settings,
    /// Mean correctness over all samples of all problems (= accuracy when greedy, k = 1).
    pub pass_at_1: f64,
    /// Half-width of the 95% confidence interval of `pass_at_1` over problems.
    pub pass_at_1_ci95: f64,
    /// Unbiased pass@k for k = 1, 2, 4, … ≤ samples (and samples itself).
    pub pass_at_k: BTreeMap<usize, f64>,
    /// Majority vote over all samples.
    pub cons_at_k: f64,
    pub mean_response_tokens: f64,
    /// Share of samples whose answer could not be read.
    pub unparseable_share: f64,
    /// Problems whose gold answer could not be read (excluded from every metric).
    pub gold_errors: usize,
    pub truncated_share: f64,
    pub problems: Vec<ProblemResult>,
}

impl Report {
    pub fn build(settings: Settings, problems: &[Problem], records: &[SampleRecord]) -> Report {
        let mut by_problem: HashMap<&str, Vec<&SampleRecord>> = HashMap::new();
        for r in records {
            by_problem.entry(r.problem.as_str()).or_default().push(r);
        }
        let n = settings.samples;
        let mut ks: Vec<usize> = std::iter::successors(Some(1usize), |k| Some(k * 2)).take_while(|&k| k <= n).collect();
        if !ks.contains(&n) && n > 0 {
            ks.push(n);
        }
        let mut per_problem_p1 = Vec::new();
        let mut pass_sums: BTreeMap<usize, f64> = ks.iter().map(|&k| (k, 0.0)).collect();
        let (mut cons, mut counted, mut gold_errors) = (0usize, 0usize, 0usize);
        let (mut tokens, mut unparseable, mut truncated, mut total) = (0usize, 0usize, 0usize, 0usize);
        let mut results = Vec::new();
        for p in problems {
            let mut rs = by_problem.remove(p.id.as_str()).unwrap_or_default();
            rs.sort_by_key(|r| r.sample);
            if rs.is_empty() {
                continue;
            }
            if rs.iter().any(|r| r.verdict == Verdict::GoldError) {
                gold_errors += 1;
                continue;
            }
            let c = rs.iter().filter(|r| r.verdict.is_correct()).count();
            let m = rs.len();
            per_problem_p1.push(c as f64 / m as f64);
            for (&k, sum) in pass_sums.iter_mut() {
                *sum += pass_at_k(m, c, k.min(m));
            }
            let answers: Vec<Option<String>> = rs.iter().map(|r| r.answer.clone()).collect();
            let maj = majority(&answers);
            let maj_correct = maj.is_some_and(|i| rs[i].verdict.is_correct());
            cons += usize::from(maj_correct);
            counted += 1;
            for r in &rs {
                total += 1;
                tokens += r.completion_tokens;
                unparseable += usize::from(r.verdict == Verdict::Unparseable);
                truncated += usize::from(r.finish == "length");
            }
            results.push(ProblemResult {
                id: p.id.clone(),
                correct: c,
                samples: m,
                majority_answer: maj.and_then(|i| rs[i].answer.clone()),
                majority_correct: maj_correct,
            });
        }
        let (p1, ci) = mean_ci95(&per_problem_p1);
        let div = |a: f64, b: usize| if b == 0 { 0.0 } else { a / b as f64 };
        Report {
            settings,
            pass_at_1: p1,
            pass_at_1_ci95: ci,
            pass_at_k: pass_sums.into_iter().map(|(k, s)| (k, div(s, counted))).collect(),
            cons_at_k: div(cons as f64, counted),
            mean_response_tokens: div(tokens as f64, total),
            unparseable_share: div(unparseable as f64, total),
            gold_errors,
            truncated_share: div(truncated as f64, total),
            problems: results,
        }
    }

    /// A short human-readable table.
    pub fn summary(&self) -> String {
        let s = &self.settings;
        let mut out = format!(
            "task {} | model {} | {} problems x {} samples | T={} top_p={} max_tokens={}\n",
            s.task, s.model, s.problems, s.samples, s.temperature, s.top_p, s.max_tokens
        );
        out += &format!("{:<14} {:>10}\n", "metric", "value");
        out += &format!("{:<14} {:>9.1}% ± {:.1}\n", "pass@1", 100.0 * self.pass_at_1, 100.0 * self.pass_at_1_ci95);
        for (k, v) in &self.pass_at_k {
            if *k > 1 {
                out += &format!("{:<14} {:>9.1}%\n", format!("pass@{k}"), 100.0 * v);
            }
        }
        out += &format!("{:<14} {:>9.1}%\n", format!("cons@{}", s.samples), 100.0 * self.cons_at_k);
        out += &format!("{:<14} {:>10.1}\n", "mean tokens", self.mean_response_tokens);
        out += &format!("{:<14} {:>9.1}%\n", "unparseable", 100.0 * self.unparseable_share);
        out += &format!("{:<14} {:>9.1}%\n", "truncated", 100.0 * self.truncated_share);
        out += &format!("{:<14} {:>10}\n", "gold errors", self.gold_errors);
        out
    }
}
