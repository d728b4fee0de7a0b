//! The generation loop on the fixture models: greedy output equals the HF transformers
//! golden, limits and stop ids end it, seeds reproduce it, the thinking budget forces the
//! closing tag, and bad prompts are refused before any model work.

use candle_core::{DType, Device};
use serde_json::Value;
use std::path::PathBuf;
use whale_engine::{FinishReason, GenerateError, GenerationOptions, Generator, SamplingParams, ThinkingBudget};
use whale_model::{load_model, CausalLm};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

fn model(name: &str) -> Box<dyn CausalLm> {
    load_model(&fixture(name), DType::F32, &Device::Cpu).unwrap()
}

fn golden(name: &str) -> (Vec<u32>, Vec<u32>) {
    let g: Value = serde_json::from_str(&std::fs::read_to_string(fixture(name).join("golden.json")).unwrap()).unwrap();
    let ids = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    (ids(&g["input_ids"][0]), ids(&g["greedy_new_tokens"][0]))
}

fn run(gen: &mut Generator) -> Vec<u32> {
    let mut out = Vec::new();
    while let Some(t) = gen.next_token().unwrap() {
        out.push(t.token);
    }
    out
}

#[test]
fn greedy_generation_matches_transformers() {
    for name in ["deepseek_v3_tiny", "deepseek_v2_lite_tiny", "qwen2_tiny"] {
        let m = model(name);
        let (prompt, expected) = golden(name);
        let opts = GenerationOptions { max_tokens: Some(16), ..Default::default() };
        let mut gen = Generator::new(m.as_ref(), &prompt, SamplingParams::greedy(), opts).unwrap();
        assert_eq!(run(&mut gen), expected, "{name}");
        assert_eq!(gen.finish_reason(), Some(FinishReason::Length));
    }
}

#[test]
fn stop_ids_end_generation_and_are_kept() {
    let m = model("deepseek_v3_tiny");
    let (prompt, expected) = golden("deepseek_v3_tiny");
    let stop = expected[5];
    let opts = GenerationOptions { max_tokens: Some(16), stop_ids: [stop].into(), ..Default::default() };
    let mut gen = Generator::new(m.as_ref(), &prompt, SamplingParams::greedy(), opts).unwrap();
    let out = run(&mut gen);
    let first = expected.iter().position(|&t| t == stop).unwrap();
    assert_eq!(out, expected[..=first]);
    assert_eq!(gen.finish_reason(), Some(FinishReason::Stop));
}

#[test]
fn seeded_sampling_is_reproducible() {
    let m = model("qwen2_tiny");
    let (prompt, _) = golden("qwen2_tiny");
    let sample = |seed| {
        let params = SamplingParams { temperature: 1.0, seed: Some(seed), ..SamplingParams::r1_defaults() };
        let opts = GenerationOptions { max_tokens: Some(24), ..Default::default() };
        run(&mut Generator::new(m.as_ref(), &prompt, params, opts).unwrap())
    };
    assert_eq!(sample(7), sample(7));
    assert_ne!(sample(7), sample(8));
}

#[test]
fn thinking_budget_forces_the_closing_tag() {
    let m = model("deepseek_v3_tiny");
    let (prompt, _) = golden("deepseek_v3_tiny");
    // Pretend ids 500, 501 spell the closing tag; the template opened the block.
    let budget = ThinkingBudget::new(3, vec![500, 501]).unwrap();
    let opts = GenerationOptions { max_tokens: Some(8), thinking_budget: Some(budget), ..Default::default() };
    let mut gen = Generator::new(m.as_ref(), &prompt, SamplingParams::greedy(), opts).unwrap();
    let mut toks = Vec::new();
    while let Some(t) = gen.next_token().unwrap() {
        toks.push(t);
    }
    assert_eq!(toks.len(), 8);
    assert!(toks[..3].iter().all(|t| !t.forced));
    assert_eq!((toks[3].token, toks[4].token), (500, 501));
    assert!(toks[3].forced && toks[4].forced && toks[3].logprob.is_finite());
    assert!(toks[5..].iter().all(|t| !t.forced));
}

#[test]
fn the_context_limit_is_enforced() {
    let m = model("qwen2_tiny");
    let e = Generator::new(m.as_ref(), &vec![1; 256], SamplingParams::greedy(), GenerationOptions::default()).err().unwrap();
    assert!(matches!(e, GenerateError::PromptTooLong { prompt: 256, limit: 256 }));
    assert!(e.to_string().contains("the prompt is 256 tokens, but the context is 256"), "{e}");
    assert!(matches!(
        Generator::new(m.as_ref(), &[], SamplingParams::greedy(), GenerationOptions::default()).err().unwrap(),
        GenerateError::EmptyPrompt
    ));
    // 250 prompt tokens leave room for 6 more positions: generation stops there, not past it.
    let mut gen = Generator::new(m.as_ref(), &vec![3; 250], SamplingParams::greedy(), GenerationOptions::default()).unwrap();
    assert_eq!(run(&mut gen).len(), 7);
    assert_eq!(gen.finish_reason(), Some(FinishReason::ContextFull));
    let bad = SamplingParams { temperature: 3.0, ..Default::default() };
    let e = Generator::new(m.as_ref(), &[1], bad, GenerationOptions::default()).err().unwrap();
    assert!(e.to_string().contains("temperature"), "{e}");
}
