//! `whale grpo`: reinforcement learning with GRPO and rule-based rewards on a verifiable task
//! (R1-Zero style). Rollouts go through the engine; metrics go to RUN/metrics.jsonl (plot them
//! with `whale plot RUN`); checkpoints to RUN/checkpoints/step-N and RUN/final.

use crate::cmd::eval::write_atomic;
use crate::model_args::ModelArgs;
use crate::session::tokenizer_for;
use anyhow::{bail, Context, Result};
use candle_core::DType;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use whale_engine::{Engine, EngineConfig, SamplingParams};
use whale_eval::reward::{Accuracy, Format, LanguageConsistency, LengthPenalty, Reward, Weighted};
use whale_eval::{sample_problems, task_by_name, PromptStyle, SampleConfig, Split};
use whale_rl::{Grpo, GrpoConfig, LossNorm, Policy};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// arithmetic[:DIGITS], countdown[:COUNT], linear[:MAX], word[:MAX], or a .jsonl / .parquet file (question and answer fields).
    #[arg(long)]
    task: String,
    #[arg(long, default_value = "question")]
    question_field: String,
    #[arg(long, default_value = "answer")]
    answer_field: String,
    #[arg(long, default_value_t = 100)]
    steps: usize,
    /// Prompts per step (P).
    #[arg(long, default_value_t = 8)]
    prompts: usize,
    /// Samples per prompt (G).
    #[arg(long, default_value_t = 8)]
    group: usize,
    /// Sequences per forward/backward; must divide P x G.
    #[arg(long, default_value_t = 16)]
    micro_batch: usize,
    /// Optimizer steps per batch of rollouts (μ).
    #[arg(long, default_value_t = 1)]
    inner_updates: usize,
    #[arg(long, default_value_t = 1e-5)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    warmup_steps: usize,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Clipping range ε of the ratio.
    #[arg(long, default_value_t = 0.2)]
    clip: f64,
    /// KL coefficient β (0: no reference model is loaded).
    #[arg(long, default_value_t = 0.04)]
    beta: f64,
    /// token (default: every completion token weighs the same) or sequence (DeepSeekMath's 1/|o|).
    #[arg(long, default_value = "token", value_parser = ["token", "sequence"])]
    loss_norm: String,
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Most tokens per sampled answer.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Rewards, comma-separated, summed: accuracy, format, language, length.
    #[arg(long, default_value = "accuracy,format")]
    rewards: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// chat or r1-zero (default: chat when the tokenizer has a template).
    #[arg(long, value_parser = PromptStyle::NAMES)]
    prompt_style: Option<String>,
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Run folder.
    #[arg(long, default_value = "runs/grpo")]
    out: PathBuf,
    /// Save a checkpoint every N steps (0: only the final one).
    #[arg(long, default_value_t = 50)]
    save_every: usize,
    /// Keep the last K step checkpoints.
    #[arg(long, default_value_t = 2)]
    keep: usize,
    /// Greedy accuracy on held-out problems every N steps (0: never).
    #[arg(long, default_value_t = 0)]
    eval_every: usize,
    #[arg(long, default_value_t = 50)]
    eval_problems: usize,
    /// DAPO's dynamic sampling: draw up to N rollout rounds of P prompts per step until P
    /// groups have unequal rewards, and train on those only (0: plain GRPO, every group counts).
    #[arg(long, default_value_t = 0)]
    dynamic_sampling: usize,
    /// Sequences decoded together by the rollout engine.
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
}

fn rewards(spec: &str, max_tokens: usize) -> Result<Weighted> {
    let mut parts: Vec<(f64, Box<dyn Reward>)> = Vec::new();
    for name in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        parts.push(match name {
            "accuracy" => (1.0, Box::new(Accuracy)),
            "format" => (1.0, Box::new(Format)),
            "language" => (1.0, Box::new(LanguageConsistency)),
            "length" => (1.0, Box::new(LengthPenalty { max_tokens, buffer: max_tokens / 4 })),
            other => bail!("--rewards: unknown reward {other:?}; use accuracy, format, language, length"),
        });
    }
    if parts.is_empty() {
        bail!("--rewards is empty: give at least one of accuracy, format, language, length");
    }
    Ok(Weighted { parts })
}

pub fn run(args: Args) -> Result<()> {
    let device = args.model.device()?;
    if args.model.dtype()? != DType::F32 {
        bail!("whale grpo trains with f32 master weights; drop --dtype (got {})", args.model.dtype);
    }
    let task = task_by_name(&args.task, &args.question_field, &args.answer_field)?;
    let tok = tokenizer_for(&args.model.model, args.tokenizer.as_deref())?;
    let style = PromptStyle::from_flag(args.prompt_style.as_deref(), &tok)?;
    let cfg = GrpoConfig {
        steps: args.steps,
        prompts_per_step: args.prompts,
        group_size: args.group,
        micro_batch: args.micro_batch,
        inner_updates: args.inner_updates,
        lr: args.lr,
        warmup_steps: args.warmup_steps,
        weight_decay: args.weight_decay,
        max_grad_norm: args.max_grad_norm,
        clip_eps: args.clip,
        beta: args.beta,
        loss_norm: if args.loss_norm == "sequence" { LossNorm::Sequence } else { LossNorm::Token },
        temperature: args.temperature,
        top_p: args.top_p,
        max_tokens: args.max_tokens,
        seed: args.seed,
        prompt_style: style,
        dynamic_rounds: args.dynamic_sampling,
    };
    cfg.validate()?;
    let reward = rewards(&args.rewards, args.max_tokens)?;
    // Dynamic sampling may draw up to `rounds` batches of prompts per step.
    let train = task.problems(Split::Train, args.steps * args.prompts * args.dynamic_sampling.max(1))?;
    let held_out = if args.eval_every > 0 { task.problems(Split::Test, args.eval_problems)? } else { vec![] };

    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    write_atomic(&args.out.join("grpo_config.json"), serde_json::to_string_pretty(&serde_json::json!({
        "model": args.model.model, "task": task.name(), "rewards": args.rewards, "grpo": cfg,
    }))?.as_bytes())?;
    let policy = Policy::load(&args.model.model, &device).with_context(|| format!("loading {}", args.model.model.display()))?;
    let reference = if args.beta > 0.0 { Some(args.model.load()?) } else { None };
    // No prefix cache: the weights change every step.
    let engine = Engine::start(policy.inference_model()?, EngineConfig { max_batch: args.max_batch, max_queue: 4096, ..Default::default() })?;
    let mut grpo = Grpo::new(cfg.clone(), &policy, reference, engine.clone(), &tok, reward)?;
    let metrics_path = args.out.join("metrics.jsonl");
    let mut metrics = std::fs::File::create(&metrics_path).with_context(|| format!("creating {}", metrics_path.display()))?;
    let bar = ProgressBar::new(args.steps as u64).with_style(
        ProgressStyle::with_template("{bar:30} step {pos}/{len}  {per_sec}  ETA {eta}  {msg}").expect("static template"),
    );
    eprintln!(
        "GRPO on {} ({} parameters): {} steps x {} prompts x {} samples, lr {}, β {}, ε {}; run folder {}",
        task.name(), policy.parameter_count(), args.steps, args.prompts, args.group, args.lr, args.beta, args.clip, args.out.display()
    );
    let mut saved: Vec<PathBuf> = Vec::new();
    let mut problems = train.into_iter();
    for step in 0..args.steps {
        let (m, groups) = grpo.step(step, &mut problems)?;
        let mut line = metrics_line(&m, m.rollout_rounds * args.prompts * args.group)?;
        if args.eval_every > 0 && (step + 1) % args.eval_every == 0 {
            line["eval_accuracy"] = held_out_accuracy(&engine, &tok, &held_out, style, args.max_tokens)?.into();
        }
        writeln!(metrics, "{line}")?;
        metrics.flush()?;
        if step == 0 || (step + 1) % 10 == 0 {
            // A few rollouts to read, one file per step.
            let dir = args.out.join("samples");
            std::fs::create_dir_all(&dir)?;
            let mut f = std::fs::File::create(dir.join(format!("step-{}.jsonl", step + 1)))?;
            for g in groups.iter().take(2) {
                for (s, r) in g.samples.iter().zip(&g.rewards) {
                    writeln!(f, "{}", serde_json::json!({ "question": g.problem.question, "output": s.output, "reward": r }))?;
                }
            }
        }
        bar.inc(1);
        let kl = m.kl.map_or_else(String::new, |kl| format!("  kl {kl:.4}"));
        bar.set_message(format!("reward {:.3}  acc {:.3}  len {:.0}{kl}", m.reward, m.accuracy, m.response_length));
        if args.save_every > 0 && (step + 1) % args.save_every == 0 && step + 1 < args.steps {
            let dir = args.out.join("checkpoints").join(format!("step-{}", step + 1));
            policy.save(&dir)?;
            saved.push(dir);
            while saved.len() > args.keep.max(1) {
                let old = saved.remove(0);
                std::fs::remove_dir_all(&old).with_context(|| format!("removing old checkpoint {}", old.display()))?;
            }
        }
    }
    bar.finish_and_clear();
    let fin = args.out.join("final");
    policy.save(&fin)?;
    eprintln!("final policy: {}  metrics: {}", fin.display(), metrics_path.display());
    Ok(())
}

/// One metrics.jsonl line: the step's GRPO metrics plus the `tokens` / `tokens_per_s` fields
/// every Whale run logs, so `whale plot RUN` reads GRPO runs like training runs (it requires them).
fn metrics_line(m: &whale_rl::grpo::StepMetrics, sequences: usize) -> Result<serde_json::Value> {
    let mut line = serde_json::to_value(m)?;
    line["tokens"] = ((m.response_length * sequences as f64).round() as u64).into();
    line["tokens_per_s"] = m.rollout_tokens_per_second.into();
    Ok(line)
}

fn held_out_accuracy(
    engine: &whale_engine::EngineHandle,
    tok: &whale_text::tokenizer::Tokenizer,
    problems: &[whale_eval::Problem],
    style: PromptStyle,
    max_tokens: usize,
) -> Result<f64> {
    let cfg = SampleConfig { samples: 1, params: SamplingParams::greedy(), max_tokens, style, in_flight: 64 };
    let mut correct = 0usize;
    sample_problems(engine, tok, problems, &cfg, &HashSet::new(), |r| {
        correct += usize::from(r.verdict.is_correct());
        Ok(())
    })?;
    Ok(correct as f64 / problems.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpo_metrics_lines_are_readable_by_whale_plot() {
        let m = whale_rl::grpo::StepMetrics {
            step: 3,
            reward: 1.5,
            accuracy: 0.5,
            format: 1.0,
            response_length: 40.0,
            kl: Some(0.01),
            clip_fraction: 0.0,
            entropy: 0.7,
            loss: 0.02,
            grad_norm: 0.3,
            lr: 1e-5,
            zero_signal_groups: 1.0,
            rollout_rounds: 1,
            groups_trained: 4,
            rollout_seconds: 1.0,
            train_seconds: 2.0,
            rollout_tokens_per_second: 640.0,
        };
        let dir = std::env::temp_dir().join(format!("whale-grpo-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("metrics.jsonl"), format!("{}\n", metrics_line(&m, 16).unwrap())).unwrap();
        let recs = whale_train::metrics::read(&dir.join("metrics.jsonl")).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!((recs[0].step, recs[0].tokens, recs[0].tokens_per_s), (3, 640, 640.0));
        assert_eq!((recs[0].rl.accuracy, recs[0].rl.kl, recs[0].rl.response_length), (Some(0.5), Some(0.01), Some(40.0)));
        // `whale plot` draws the RL curves of a GRPO run.
        let drawn = whale_train::plot::plot_run(&dir).unwrap();
        for name in ["reward.png", "response_length.png", "kl.png", "entropy.png", "loss.png"] {
            assert!(drawn.iter().any(|p| p.ends_with(name)), "{name} not drawn: {drawn:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
