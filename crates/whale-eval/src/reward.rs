//! Rule-based rewards for RL (R1 §2.2.2: accuracy + format; §2.3.3: language consistency),
//! computed from the same verifiers as evaluation, plus an optional over-length penalty.
//! [`Reward`] is the trait for new ones; [`Weighted`] sums several.

use crate::problem::Problem;
use crate::verify::judge;

pub trait Reward: Send + Sync {
    fn name(&self) -> &str;
    /// The reward of `output` (the generated text, reasoning included) for `problem`;
    /// `tokens` is its length in tokens.
    fn score(&self, problem: &Problem, output: &str, tokens: usize) -> f64;
}

/// 1 for a verified-correct answer, else 0 (a gold error is never rewarded).
pub struct Accuracy;

impl Reward for Accuracy {
    fn name(&self) -> &str {
        "accuracy"
    }
    fn score(&self, problem: &Problem, output: &str, _: usize) -> f64 {
        f64::from(u8::from(judge(problem, output).verdict.is_correct()))
    }
}

/// 1 when the output is a closed think block followed by a non-empty answer: `…</think>answer`
/// (the prompt may have opened `<think>` already), with no second think block.
pub struct Format;

impl Reward for Format {
    fn name(&self) -> &str {
        "format"
    }
    fn score(&self, _: &Problem, output: &str, _: usize) -> f64 {
        let body = output.trim_start().strip_prefix("<think>").unwrap_or(output);
        let ok = match body.split_once("</think>") {
            Some((thought, answer)) => {
                !thought.trim().is_empty() && !answer.trim().is_empty() && !answer.contains("<think>") && !answer.contains("</think>")
            }
            None => false,
        };
        f64::from(u8::from(ok))
    }
}

/// R1's language-consistency reward: the share of words in the reasoning written in the
/// target script (here: ASCII letters and digits, i.e. English).
pub struct LanguageConsistency;

impl Reward for LanguageConsistency {
    fn name(&self) -> &str {
        "language"
    }
    fn score(&self, _: &Problem, output: &str, _: usize) -> f64 {
        let cot = output.split("</think>").next().unwrap_or(output);
        let words: Vec<&str> = cot.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).collect();
        if words.is_empty() {
            return 0.0;
        }
        let target = words.iter().filter(|w| w.chars().filter(|c| c.is_alphanumeric()).all(|c| c.is_ascii_alphanumeric())).count();
        target as f64 / words.len() as f64
    }
}

/// 0 up to `max_tokens - buffer`, then falling linearly to -1 at `max_tokens` (a soft penalty
/// for answers cut off by the length limit).
pub struct LengthPenalty {
    pub max_tokens: usize,
    pub buffer: usize,
}

impl Reward for LengthPenalty {
    fn name(&self) -> &str {
        "length"
    }
    fn score(&self, _: &Problem, _: &str, tokens: usize) -> f64 {
        let start = self.max_tokens.saturating_sub(self.buffer);
        if tokens <= start || self.buffer == 0 {
            return if tokens > self.max_tokens { -1.0 } else { 0.0 };
        }
        -((tokens - start) as f64 / self.buffer as f64).min(1.0)
    }
}

/// A weighted sum of rewards; also reports each part.
pub struct Weighted {
    pub parts: Vec<(f64, Box<dyn Reward>)>,
}

impl Weighted {
    /// R1-Zero's rule rewards: accuracy + format, weight 1 each.
    pub fn r1_zero() -> Self {
        Weighted { parts: vec![(1.0, Box::new(Accuracy)), (1.0, Box::new(Format))] }
    }

    /// Each part's (name, unweighted score) and the weighted total.
    pub fn breakdown(&self, problem: &Problem, output: &str, tokens: usize) -> (Vec<(String, f64)>, f64) {
        let mut total = 0.0;
        let parts = self
            .parts
            .iter()
            .map(|(w, r)| {
                let s = r.score(problem, output, tokens);
                total += w * s;
                (r.name().to_string(), s)
            })
            .collect();
        (parts, total)
    }
}

impl Reward for Weighted {
    fn name(&self) -> &str {
        "total"
    }
    fn score(&self, problem: &Problem, output: &str, tokens: usize) -> f64 {
        self.breakdown(problem, output, tokens).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Check;

    #[test]
    fn rule_rewards() {
        let p = Problem { id: "x".into(), question: "2+2?".into(), check: Check::Value { gold: "4".into() } };
        let r = Weighted::r1_zero();
        assert_eq!(r.score(&p, "add them</think> \\boxed{4}", 5), 2.0);
        assert_eq!(r.score(&p, "<think>add</think><answer>4</answer>", 5), 2.0);
        assert_eq!(r.score(&p, "\\boxed{4}", 5), 1.0, "right answer, no think block");
        assert_eq!(r.score(&p, "hmm</think> \\boxed{5}", 5), 1.0, "format only");
        assert_eq!(r.score(&p, "</think>4", 5), 1.0, "empty reasoning is not the format");
        assert_eq!(LanguageConsistency.score(&p, "two plus two 是 四</think>4", 5), 0.6);
        let l = LengthPenalty { max_tokens: 100, buffer: 20 };
        assert_eq!(l.score(&p, "", 80), 0.0);
        assert_eq!(l.score(&p, "", 90), -0.5);
        assert_eq!(l.score(&p, "", 100), -1.0);
    }
}
