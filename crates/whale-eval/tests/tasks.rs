//! Built-in tasks: fixed, distinct held-out splits disjoint from training; every generated
//! problem's gold answer is readable and accepted by its own verifier; reports aggregate
//! samples as R1 defines its metrics.

use std::collections::HashSet;
use whale_eval::answer::eval;
use whale_eval::problem::{Check, Verdict};
use whale_eval::report::{Report, Settings};
use whale_eval::runner::SampleRecord;
use whale_eval::verify::judge;
use whale_eval::{task_by_name, PromptStyle, Split};

#[test]
fn test_splits_are_fixed_distinct_and_held_out() {
    for name in ["arithmetic:3", "countdown:4", "linear:9", "word:20", "arithmetic:2"] {
        let t = task_by_name(name, "question", "answer").unwrap();
        let a = t.problems(Split::Test, 200).unwrap();
        let b = t.problems(Split::Test, 200).unwrap();
        assert_eq!(a, b, "{name}: the test split must not change between calls");
        let qs: HashSet<&str> = a.iter().map(|p| p.question.as_str()).collect();
        assert_eq!(qs.len(), a.len(), "{name}: test questions are distinct");
        let full: HashSet<String> = t.problems(Split::Test, 500).unwrap().into_iter().map(|p| p.question).collect();
        let train = t.problems(Split::Train, 300).unwrap();
        assert!(train.iter().all(|p| !full.contains(&p.question)), "{name}: a train problem is in the test split");
        assert!(t.problems(Split::Test, 501).is_err());
    }
}

#[test]
fn every_generated_gold_answer_verifies_itself() {
    for name in ["arithmetic:4", "addsub:3", "linear:30", "word:50"] {
        let t = task_by_name(name, "question", "answer").unwrap();
        for p in t.problems(Split::Train, 200).unwrap() {
            let Check::Value { gold } = &p.check else { panic!() };
            assert_eq!(judge(&p, &format!("</think>\\boxed{{{gold}}}")).verdict, Verdict::Correct, "{}", p.question);
            let wrong = gold.parse::<i64>().unwrap() + 1;
            assert_eq!(judge(&p, &format!("\\boxed{{{wrong}}}")).verdict, Verdict::Wrong);
        }
    }
    // Countdown targets are reachable: brute force over expressions for a sample.
    let t = task_by_name("countdown:3", "q", "a").unwrap();
    for p in t.problems(Split::Test, 30).unwrap() {
        let Check::Countdown { numbers, target } = &p.check else { panic!() };
        let found = solve(numbers).into_iter().find(|e| eval(e).is_some_and(|v| (v - *target as f64).abs() < 1e-9));
        let e = found.unwrap_or_else(|| panic!("no solution for {numbers:?} -> {target}"));
        assert_eq!(judge(&p, &format!("<answer>{e}</answer>")).verdict, Verdict::Correct, "{e}");
    }
}

/// Every expression over subsets of `n` (left-to-right with parentheses), for checking.
fn solve(n: &[i64]) -> Vec<String> {
    let mut out: Vec<String> = n.iter().map(|x| x.to_string()).collect();
    for i in 0..n.len() {
        let rest: Vec<i64> = n.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, v)| *v).collect();
        for e in solve(&rest) {
            for op in ["+", "-", "*", "/"] {
                out.push(format!("({e}) {op} {}", n[i]));
                out.push(format!("{} {op} ({e})", n[i]));
            }
        }
    }
    out
}

#[test]
fn unknown_tasks_and_bad_difficulties_are_named() {
    let e = |s: &str| task_by_name(s, "q", "a").err().unwrap().to_string();
    assert!(e("chess").contains("unknown task \"chess\"") && e("chess").contains("arithmetic"));
    assert!(e("arithmetic:x").contains("not a number"));
    assert!(e("countdown:99").contains("outside 3..=6"));
}

fn rec(problem: &str, sample: usize, answer: Option<&str>, verdict: Verdict, tokens: usize) -> SampleRecord {
    SampleRecord {
        problem: problem.into(),
        sample,
        output: String::new(),
        answer: answer.map(String::from),
        verdict,
        completion_tokens: tokens,
        finish: "stop".into(),
        ids: vec![],
        prompt_ids: vec![],
    }
}

#[test]
fn report_aggregates_like_r1() {
    let t = task_by_name("arithmetic:2", "q", "a").unwrap();
    let ps = t.problems(Split::Test, 3).unwrap();
    use Verdict::*;
    let records = vec![
        // p0: 3 of 4 correct; majority "5" correct
        rec(&ps[0].id, 0, Some("5"), Correct, 10),
        rec(&ps[0].id, 1, Some("5"), Correct, 10),
        rec(&ps[0].id, 2, Some("6"), Wrong, 10),
        rec(&ps[0].id, 3, Some("5"), Correct, 10),
        // p1: 1 of 4; majority wrong
        rec(&ps[1].id, 0, Some("1"), Correct, 20),
        rec(&ps[1].id, 1, Some("2"), Wrong, 20),
        rec(&ps[1].id, 2, Some("2"), Wrong, 20),
        rec(&ps[1].id, 3, None, Unparseable, 20),
        // p2: gold error → excluded
        rec(&ps[2].id, 0, Some("1"), GoldError, 5),
    ];
    let settings = Settings {
        model: "m".into(),
        task: t.name(),
        problems: 3,
        samples: 4,
        temperature: 0.6,
        top_p: 0.95,
        max_tokens: 100,
        prompt_style: PromptStyle::Chat,
        seed: 0,
    };
    let r = Report::build(settings, &ps, &records);
    assert_eq!(r.gold_errors, 1);
    assert!((r.pass_at_1 - (0.75 + 0.25) / 2.0).abs() < 1e-12);
    assert!((r.pass_at_k[&2] - (1.0 + 0.5) / 2.0).abs() < 1e-12, "{:?}", r.pass_at_k);
    assert_eq!(r.pass_at_k[&4], 1.0);
    assert_eq!(r.cons_at_k, 0.5);
    assert_eq!(r.unparseable_share, 1.0 / 8.0);
    assert_eq!(r.mean_response_tokens, 15.0);
    assert!(r.summary().contains("pass@1") && r.summary().contains("cons@4"));
}
