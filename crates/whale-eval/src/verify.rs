//! Judging an output against a problem's [`Check`].

use crate::answer::{answers_match, eval, extract_answer, parse_answer, Answer};
use crate::problem::{Check, Problem, Verdict};

/// The verdict and the extracted answer (normalized key, for majority voting).
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub verdict: Verdict,
    pub answer: Option<String>,
}

pub fn judge(problem: &Problem, output: &str) -> Judged {
    let Some(extracted) = extract_answer(output) else {
        return Judged { verdict: Verdict::Unparseable, answer: None };
    };
    match &problem.check {
        Check::Value { gold } => {
            let Some(gold) = parse_answer(gold) else {
                return Judged { verdict: Verdict::GoldError, answer: Some(extracted.text) };
            };
            match parse_answer(&extracted.text) {
                None => Judged { verdict: Verdict::Unparseable, answer: None },
                Some(pred) => Judged {
                    verdict: if answers_match(&pred, &gold) { Verdict::Correct } else { Verdict::Wrong },
                    answer: Some(pred.key()),
                },
            }
        }
        Check::Countdown { numbers, target } => {
            let expr = extracted.text.split('=').next().unwrap_or("").trim().to_string();
            let Some(value) = eval(&expr) else { return Judged { verdict: Verdict::Unparseable, answer: None } };
            let ok = uses_only(&expr, numbers) && (value - *target as f64).abs() < 1e-9;
            Judged { verdict: if ok { Verdict::Correct } else { Verdict::Wrong }, answer: Some(Answer::Number(value).key() + "|" + &expr) }
        }
    }
}

/// Whether every number written in `expr` is one of `numbers`, each used at most as often as
/// given.
fn uses_only(expr: &str, numbers: &[i64]) -> bool {
    let mut left: Vec<i64> = numbers.to_vec();
    let mut digits = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if c == '.' && !digits.is_empty() {
            return false; // decimals are not among the given integers
        }
        if !digits.is_empty() {
            let Ok(n) = digits.parse::<i64>() else { return false };
            match left.iter().position(|&x| x == n) {
                Some(i) => {
                    left.swap_remove(i);
                }
                None => return false,
            }
            digits.clear();
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(check: Check) -> Problem {
        Problem { id: "t".into(), question: "q".into(), check }
    }

    #[test]
    fn value_checks() {
        let pr = p(Check::Value { gold: "\\frac{3}{4}".into() });
        assert_eq!(judge(&pr, "<think>hmm 7</think> so \\boxed{0.75}").verdict, Verdict::Correct);
        assert_eq!(judge(&pr, "\\boxed{3/5}").verdict, Verdict::Wrong);
        assert_eq!(judge(&pr, "I don't know").verdict, Verdict::Unparseable);
        assert_eq!(judge(&pr, "\\boxed{}").verdict, Verdict::Unparseable);
        let bad_gold = p(Check::Value { gold: "{".into() });
        assert_eq!(judge(&bad_gold, "\\boxed{1}").verdict, Verdict::GoldError);
    }

    #[test]
    fn countdown_checks_numbers_and_value() {
        let pr = p(Check::Countdown { numbers: vec![3, 7, 25, 2], target: 46 });
        assert_eq!(judge(&pr, "<answer>(25 - 2) * 2</answer>").verdict, Verdict::Wrong, "2 used twice");
        assert_eq!(judge(&pr, "<answer>25 + 3 * 7 = 46</answer>").verdict, Verdict::Correct);
        assert_eq!(judge(&pr, "<answer>(7 - 3) * 25 / 2 - 4</answer>").verdict, Verdict::Wrong, "4 is not given");
        assert_eq!(judge(&pr, "<answer>25 + 21</answer>").verdict, Verdict::Wrong);
        assert_eq!(judge(&pr, "<answer>twenty</answer>").verdict, Verdict::Unparseable);
    }
}
