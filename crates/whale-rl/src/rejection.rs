//! Rejection sampling (R1 §2.3.3): sample k answers per prompt from any model, keep the ones
//! the verifier accepts (and that are well-formed: a closed think block, no mixed language
//! when asked), deduplicate, and write them as chat SFT examples with their reasoning — the
//! data that SFT and distillation train on.

use serde::Serialize;
use whale_eval::reward::{Format, LanguageConsistency, Reward};
use whale_eval::prompt::user_content;
use whale_eval::{Problem, PromptStyle, SampleRecord};

#[derive(Debug, Clone, Copy)]
pub struct Filter {
    /// Keep at most this many distinct correct answers per problem.
    pub per_problem: usize,
    /// Require `…</think>answer` (R1 drops samples whose reasoning is not closed).
    pub require_think: bool,
    /// Minimum share of English words in the reasoning (0 disables).
    pub min_language: f64,
    /// How the samples were prompted: the records' user turn is that prompt's.
    pub prompt_style: PromptStyle,
}

/// One kept example, in the chat format `whale sft` reads.
#[derive(Debug, Clone, Serialize)]
pub struct SftRecord {
    pub messages: Vec<serde_json::Value>,
    pub problem: String,
}

/// Splits an output into (reasoning, answer) at its last `</think>`.
pub fn split_reasoning(output: &str) -> (String, String) {
    match output.rfind("</think>") {
        Some(i) => {
            let reasoning = output[..i].trim().trim_start_matches("<think>").trim().to_string();
            (reasoning, output[i + "</think>".len()..].trim().to_string())
        }
        None => (String::new(), output.trim().to_string()),
    }
}

/// The records of `samples` (all for `problem`) that pass the verifier and the filter.
pub fn select(problem: &Problem, samples: &[SampleRecord], f: &Filter) -> Vec<SftRecord> {
    let mut kept: Vec<SftRecord> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for s in samples {
        if !s.verdict.is_correct() || s.finish != "stop" {
            continue; // wrong, or cut off by the length limit
        }
        if f.require_think && Format.score(problem, &s.output, s.completion_tokens) < 1.0 {
            continue;
        }
        if f.min_language > 0.0 && LanguageConsistency.score(problem, &s.output, 0) < f.min_language {
            continue;
        }
        if !seen.insert(s.output.clone()) || kept.len() >= f.per_problem {
            continue;
        }
        let (reasoning, answer) = split_reasoning(&s.output);
        kept.push(SftRecord {
            messages: vec![
                serde_json::json!({ "role": "user", "content": user_content(f.prompt_style, &problem.question) }),
                serde_json::json!({ "role": "assistant", "content": answer, "reasoning_content": reasoning }),
            ],
            problem: problem.id.clone(),
        });
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use whale_eval::problem::{Check, Verdict};

    fn rec(output: &str, verdict: Verdict, finish: &str) -> SampleRecord {
        SampleRecord {
            problem: "p".into(),
            sample: 0,
            output: output.into(),
            answer: None,
            verdict,
            completion_tokens: 5,
            finish: finish.into(),
            ids: vec![],
            prompt_ids: vec![],
        }
    }

    #[test]
    fn keeps_distinct_correct_well_formed_answers() {
        let p = Problem { id: "p".into(), question: "2+2?".into(), check: Check::Value { gold: "4".into() } };
        let f = Filter { per_problem: 2, require_think: true, min_language: 0.5, prompt_style: PromptStyle::Chat };
        let samples = [
            rec("two and two</think>\\boxed{4}", Verdict::Correct, "stop"),
            rec("two and two</think>\\boxed{4}", Verdict::Correct, "stop"), // duplicate
            rec("\\boxed{4}", Verdict::Correct, "stop"),                     // no think block
            rec("sum</think>\\boxed{5}", Verdict::Wrong, "stop"),
            rec("add</think>\\boxed{4}", Verdict::Correct, "length"),        // truncated
            rec("二 加 二</think>\\boxed{4}", Verdict::Correct, "stop"),       // other language
            rec("add them up</think>\\boxed{4}", Verdict::Correct, "stop"),
            rec("again: add</think>\\boxed{4}", Verdict::Correct, "stop"),   // over the cap
        ];
        let kept = select(&p, &samples, &f);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].messages[1]["reasoning_content"], "two and two");
        assert_eq!(kept[0].messages[1]["content"], "\\boxed{4}");
        assert_eq!(kept[1].messages[1]["reasoning_content"], "add them up");
        assert!(kept[0].messages[0]["content"].as_str().unwrap().ends_with(whale_eval::prompt::MATH_INSTRUCTION));
        // The recorded user turn is the prompt the answers came from.
        let plain = select(&p, &samples, &Filter { prompt_style: PromptStyle::ChatPlain, ..f });
        assert_eq!(plain[0].messages[0]["content"], "2+2?");
    }
}
