//! GRPO on the tiny DeepSeek-V3 fixture: log-probs of the training forward equal the
//! inference path's, a policy round-trips through its checkpoint, the engine samples from the
//! weights the optimizer just changed, and a run of steps raises a learnable reward.

use candle_core::{DType, Device, Tensor, D};
use std::path::PathBuf;
use whale_engine::{Engine, EngineConfig, GenerationOptions, Request, SamplingParams};
use whale_eval::problem::{Check, Problem};
use whale_eval::reward::{Reward, Weighted};
use whale_eval::PromptStyle;
use whale_model::{load_model, CausalLm};
use whale_rl::logprobs::{token_logprobs, SeqBatch};
use whale_rl::{Grpo, GrpoConfig, LossNorm, Policy};
use whale_text::tokenizer::Tokenizer;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

#[test]
fn training_logprobs_equal_inference_logprobs() {
    let dir = fixture("deepseek_v3_tiny");
    let policy = Policy::load(&dir, &Device::Cpu).unwrap();
    let reference = load_model(&dir, DType::F32, &Device::Cpu).unwrap();
    let (p, c): (Vec<u32>, Vec<u32>) = ((5..15).collect(), vec![40, 41, 300, 7]);
    let other: (Vec<u32>, Vec<u32>) = ((100..103).collect(), vec![9, 9]);
    let batch = SeqBatch::new(&[(&p, &c), (&other.0, &other.1)], &Device::Cpu).unwrap();
    let (lp, _) = token_logprobs(policy.model().unwrap().as_ref(), &batch, 1.0).unwrap();
    let lp = lp.to_vec2::<f32>().unwrap();
    // Inference: the cached forward over prompt + completion.
    let ids: Vec<u32> = p.iter().chain(&c).copied().collect();
    let mut cache = reference.new_cache();
    let logits = reference.forward(&Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap(), &mut cache).unwrap();
    let logp = candle_nn::ops::log_softmax(&logits.squeeze(0).unwrap(), D::Minus1).unwrap().to_vec2::<f32>().unwrap();
    for (j, &tok) in c.iter().enumerate() {
        let pos = p.len() + j - 1;
        let d = (lp[0][pos] - logp[pos][tok as usize]).abs();
        assert!(d < 1e-4, "completion token {j}: {} vs {}", lp[0][pos], logp[pos][tok as usize]);
    }
    // At temperature T the log-probs are those of softmax(logits / T), the distribution
    // rollouts sampled from.
    let (lp2, _) = token_logprobs(policy.model().unwrap().as_ref(), &batch, 2.0).unwrap();
    let lp2 = lp2.to_vec2::<f32>().unwrap();
    let scaled = candle_nn::ops::log_softmax(&(logits.squeeze(0).unwrap() / 2.0).unwrap(), D::Minus1).unwrap().to_vec2::<f32>().unwrap();
    for (j, &tok) in c.iter().enumerate() {
        let pos = p.len() + j - 1;
        assert!((lp2[0][pos] - scaled[pos][tok as usize]).abs() < 1e-4, "T = 2, token {j}");
        assert!((lp2[0][pos] - lp[0][pos]).abs() > 1e-3, "T = 2 must differ from T = 1 at token {j}");
    }
    assert!(token_logprobs(policy.model().unwrap().as_ref(), &batch, 0.0).is_err());
    let mask = batch.mask.to_vec2::<f32>().unwrap();
    assert_eq!(mask[0].iter().sum::<f32>(), 4.0);
    assert_eq!(mask[1].iter().sum::<f32>(), 2.0);
    assert_eq!(&mask[1][2..4], &[1.0, 1.0]);
}

#[test]
fn policy_checkpoint_round_trips() {
    let dir = fixture("deepseek_v3_tiny");
    let policy = Policy::load(&dir, &Device::Cpu).unwrap();
    let out = tempfile::tempdir().unwrap();
    let saved = out.path().join("step-1");
    policy.save(&saved).unwrap();
    let a = load_model(&dir, DType::F32, &Device::Cpu).unwrap();
    let b = load_model(&saved, DType::F32, &Device::Cpu).unwrap();
    let ids = Tensor::new(&[[3u32, 50, 7, 9]], &Device::Cpu).unwrap();
    let d = (a.forward_train(&ids).unwrap().logits - b.forward_train(&ids).unwrap().logits).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(d, 0.0);
    // The gate bias is not trained.
    let n = policy.trainable().len();
    assert!(n > 0);
}

/// Rewards the share of digits in the output: the random tiny model writes a few, so every
/// group has some spread (GRPO learns only from differences within a group) and there is
/// room to rise; nothing else in the pipeline can fake it.
struct Digits;
impl Reward for Digits {
    fn name(&self) -> &str {
        "accuracy"
    }
    fn score(&self, _: &Problem, output: &str, _: usize) -> f64 {
        let n = output.chars().count();
        if n == 0 {
            return 0.0;
        }
        output.chars().filter(|c| c.is_ascii_digit()).count() as f64 / n as f64
    }
}

#[test]
fn grpo_steps_raise_a_learnable_reward_and_the_engine_follows_the_weights() {
    let dir = fixture("deepseek_v3_tiny");
    let tok = Tokenizer::from_dir(fixture("tiny_chat_tokenizer")).unwrap();
    let policy = Policy::load(&dir, &Device::Cpu).unwrap();
    // One sequence per forward: which rollouts share a batch depends on timing, and f32 GEMMs
    // round differently by row count, so a batched engine makes the run not reproducible.
    let engine = Engine::start(policy.inference_model().unwrap(), EngineConfig { max_batch: 1, ..Default::default() }).unwrap();
    let reference = Some(load_model(&dir, DType::F32, &Device::Cpu).unwrap());
    let cfg = GrpoConfig {
        steps: 8,
        prompts_per_step: 4,
        group_size: 4,
        micro_batch: 8,
        lr: 2e-2,
        beta: 0.01,
        max_tokens: 6,
        loss_norm: LossNorm::Token,
        prompt_style: PromptStyle::R1Zero,
        ..Default::default()
    };
    let reward = Weighted { parts: vec![(1.0, Box::new(Digits))] };
    let mut grpo = Grpo::new(cfg.clone(), &policy, reference, engine.clone(), &tok, reward).unwrap();
    let problems: Vec<Problem> = (0..4)
        .map(|i| Problem { id: format!("p{i}"), question: format!("question {i}"), check: Check::Value { gold: "1".into() } })
        .collect();
    let mut rewards = vec![];
    for step in 0..cfg.steps {
        let (m, groups) = grpo.step(step, &mut problems.iter().cloned()).unwrap();
        assert_eq!(groups.len(), 4);
        assert!(groups.iter().all(|g| g.samples.len() == 4));
        assert!(m.loss.is_finite() && m.kl.is_some_and(|kl| kl >= 0.0) && m.grad_norm.is_finite(), "{m:?}");
        rewards.push(m.reward);
    }
    eprintln!("rewards per step: {rewards:?}");
    let early = rewards[..2].iter().sum::<f64>() / 2.0;
    let late = rewards[6..].iter().sum::<f64>() / 2.0;
    assert!(late > early + 0.2, "reward did not rise: {rewards:?}");

    // The engine samples from the updated Vars: its greedy tokens equal a fresh model's over
    // the same Vars and differ from the original checkpoint's.
    let prompt: Vec<u32> = (20..30).collect();
    let greedy = |m: &dyn CausalLm| {
        let mut g = whale_engine::Generator::new(m, &prompt, SamplingParams::greedy(), GenerationOptions { max_tokens: Some(8), ..Default::default() }).unwrap();
        let mut v = vec![];
        while let Some(t) = g.next_token().unwrap() {
            v.push(t.token);
        }
        v
    };
    let (tokens, _) = engine.submit(Request::new(prompt.clone(), SamplingParams::greedy(), GenerationOptions { max_tokens: Some(8), ..Default::default() })).unwrap().wait().unwrap();
    let via_engine: Vec<u32> = tokens.iter().map(|t| t.token).collect();
    assert_eq!(via_engine, greedy(policy.model().unwrap().as_ref()));

    let bad = GrpoConfig { group_size: 3, micro_batch: 8, ..cfg };
    let e = Grpo::new(bad, &policy, None, engine, &tok, Weighted::r1_zero()).err().unwrap().to_string();
    assert!(e.contains("4 prompts x 3 samples = 12") && e.contains("micro-batch 8"), "{e}");
}

/// Scores 0.5 for every output of a problem whose id starts with "flat" (a group with no
/// signal), and like `Digits` otherwise.
struct FlatOrDigits;
impl Reward for FlatOrDigits {
    fn name(&self) -> &str {
        "accuracy"
    }
    fn score(&self, p: &Problem, output: &str, n: usize) -> f64 {
        if p.id.starts_with("flat") { 0.5 } else { Digits.score(p, output, n) }
    }
}

#[test]
fn dynamic_sampling_draws_more_rounds_and_trains_only_on_groups_with_signal() {
    let dir = fixture("deepseek_v3_tiny");
    let tok = Tokenizer::from_dir(fixture("tiny_chat_tokenizer")).unwrap();
    let policy = Policy::load(&dir, &Device::Cpu).unwrap();
    let engine = Engine::start(policy.inference_model().unwrap(), EngineConfig { max_batch: 16, ..Default::default() }).unwrap();
    let cfg = GrpoConfig {
        steps: 2,
        prompts_per_step: 2,
        group_size: 4,
        micro_batch: 4,
        lr: 1e-2,
        beta: 0.0,
        max_tokens: 6,
        temperature: 1.5,
        prompt_style: PromptStyle::R1Zero,
        dynamic_rounds: 3,
        ..Default::default()
    };
    let reward = Weighted { parts: vec![(1.0, Box::new(FlatOrDigits))] };
    let mut grpo = Grpo::new(cfg, &policy, None, engine, &tok, reward).unwrap();
    let problem = |id: String| Problem { question: format!("question {id}"), id, check: Check::Value { gold: "1".into() } };
    let weights = || policy.trainable()[0].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();

    // Round 1 is all flat, round 2 has signal: two rounds, and only round 2's groups train.
    let mut stream = (0..2).map(|i| problem(format!("flat{i}"))).chain((0..6).map(|i| problem(format!("p{i}"))));
    let (m, groups) = grpo.step(0, &mut stream).unwrap();
    assert_eq!(groups.len(), 2 * m.rollout_rounds);
    assert_eq!(m.zero_signal_groups as usize, 2 + groups[2..].iter().filter(|g| g.advantages.iter().all(|a| *a == 0.0)).count());
    assert!(m.rollout_rounds >= 2, "{m:?}");
    assert_eq!(m.groups_trained, 2, "{m:?}");
    assert!(groups[..2].iter().all(|g| g.problem.id.starts_with("flat")));

    // Nothing but flat groups: every round is drawn, no update is made, nothing breaks.
    let before = weights();
    let mut flat = (0..6).map(|i| problem(format!("flat-b{i}")));
    let (m, groups) = grpo.step(1, &mut flat).unwrap();
    assert_eq!((m.rollout_rounds, groups.len(), m.groups_trained), (3, 6, 0));
    assert_eq!(weights(), before, "no group with signal must leave the weights alone");
    assert!(grpo.step(2, &mut std::iter::empty()).err().unwrap().to_string().contains("no training problems left"));
}
