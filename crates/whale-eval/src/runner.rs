//! Sampling answers to problems through the engine (batched: many requests in flight, the
//! engine decodes them together) and judging each as it finishes.

use crate::problem::{Problem, Verdict};
use crate::prompt::{build_prompt, PromptStyle};
use crate::verify::judge;
use crate::EvalError;
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use whale_engine::{EngineHandle, Event, GenerationOptions, Request, RequestStream, SamplingParams, SubmitError};
use whale_text::tokenizer::Tokenizer;

#[derive(Debug, Clone)]
pub struct SampleConfig {
    /// Samples per problem (k).
    pub samples: usize,
    /// `seed` is the base: sample `j` of problem `i` uses a seed derived from it, so a run
    /// (and a resumed run) is reproducible.
    pub params: SamplingParams,
    pub max_tokens: usize,
    pub style: PromptStyle,
    /// Requests kept in flight.
    pub in_flight: usize,
}

/// One judged sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub problem: String,
    pub sample: usize,
    pub output: String,
    /// The normalized extracted answer (for voting), if any.
    pub answer: Option<String>,
    pub verdict: Verdict,
    pub completion_tokens: usize,
    pub finish: String,
    /// The generated ids (kept for RL and SFT data).
    pub ids: Vec<u32>,
    pub prompt_ids: Vec<u32>,
}

fn sample_seed(base: u64, problem: usize, sample: usize) -> u64 {
    // SplitMix64 of the pair: distinct, well-spread seeds.
    let mut z = base ^ ((problem as u64) << 20) ^ sample as u64;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Generates `cfg.samples` answers for every problem (skipping `(problem id, sample)` pairs in
/// `skip`), calling `on_record` as each is judged.
pub fn sample_problems(
    engine: &EngineHandle,
    tok: &Tokenizer,
    problems: &[Problem],
    cfg: &SampleConfig,
    skip: &HashSet<(String, usize)>,
    mut on_record: impl FnMut(SampleRecord) -> Result<(), EvalError>,
) -> Result<(), EvalError> {
    let mut stop_ids = tok.eos_ids().clone();
    stop_ids.extend(engine.model_info().eos_token_ids.iter().copied());
    let mut todo: VecDeque<(usize, usize)> = VecDeque::new();
    for (i, p) in problems.iter().enumerate() {
        for j in 0..cfg.samples {
            if !skip.contains(&(p.id.clone(), j)) {
                todo.push_back((i, j));
            }
        }
    }
    let base = cfg.params.seed.unwrap_or(0);
    let mut prompts: Vec<Option<Vec<u32>>> = vec![None; problems.len()];
    let mut flight: VecDeque<(usize, usize, RequestStream)> = VecDeque::new();
    while !todo.is_empty() || !flight.is_empty() {
        while flight.len() < cfg.in_flight.max(1) {
            let Some(&(i, j)) = todo.front() else { break };
            if prompts[i].is_none() {
                prompts[i] = Some(build_prompt(tok, cfg.style, &problems[i].question)?.0);
            }
            let prompt = prompts[i].clone().expect("built above");
            let params = SamplingParams { seed: Some(sample_seed(base, i, j)), ..cfg.params.clone() };
            let opts = GenerationOptions { max_tokens: Some(cfg.max_tokens), stop_ids: stop_ids.clone(), thinking_budget: None };
            match engine.submit(Request::new(prompt, params, opts)) {
                Ok(s) => {
                    todo.pop_front();
                    flight.push_back((i, j, s));
                }
                Err(SubmitError::Overloaded { .. }) if !flight.is_empty() => break,
                Err(SubmitError::Overloaded { .. }) => std::thread::sleep(std::time::Duration::from_millis(20)),
                Err(e) => return Err(e.into()),
            }
        }
        let Some((i, j, mut stream)) = flight.pop_front() else { continue };
        let mut ids = Vec::new();
        let finish = loop {
            match stream.blocking_recv() {
                Some(Event::Token(t)) => ids.push(t.token),
                Some(Event::Done(d)) => break d.finish.as_str().to_string(),
                Some(Event::Error(e)) => return Err(EvalError::Generation(e)),
                None => return Err(EvalError::Generation("the engine stopped".into())),
            }
        };
        let visible: Vec<u32> = ids.iter().copied().filter(|t| !stop_ids.contains(t)).collect();
        let output = tok.decode(&visible, false)?;
        let judged = judge(&problems[i], &output);
        on_record(SampleRecord {
            problem: problems[i].id.clone(),
            sample: j,
            output,
            answer: judged.answer,
            verdict: judged.verdict,
            completion_tokens: ids.len(),
            finish,
            ids,
            prompt_ids: prompts[i].clone().unwrap_or_default(),
        })?;
    }
    Ok(())
}
