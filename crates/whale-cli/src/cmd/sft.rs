//! `whale sft`: supervised fine-tuning on chat examples (loss on the assistant's reasoning
//! and answer), or continued pretraining on plain text with `--text`; from a checkpoint
//! (`--model`) or from scratch (`--init-config`). Metrics in RUN/metrics.jsonl (`whale plot
//! RUN`), checkpoints in RUN/checkpoints/step-N and RUN/final.

use crate::cmd::eval::write_atomic;
use crate::session::tokenizer_for;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::io::Write;
use std::path::{Path, PathBuf};
use whale_model::CausalLm;
use whale_rl::sft_data::{pack, read_chat_jsonl, read_text, Example};
use whale_rl::{Policy, Sft, SftConfig};
use whale_text::tokenizer::Tokenizer;

#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Rows (sequences of --seq-len tokens) per optimizer step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value_t = 8)]
    pub micro_batch: usize,
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.1)]
    pub min_lr_ratio: f64,
    #[arg(long, default_value_t = 10)]
    pub warmup_steps: usize,
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Aux-loss-free balancing speed γ for DeepSeek MoE gates (0 disables).
    #[arg(long, default_value_t = 1e-3)]
    pub bias_update_speed: f64,
    /// Share of rows held out for the validation loss.
    #[arg(long, default_value_t = 0.05)]
    pub val_fraction: f64,
    /// Validation loss every N steps (0: only at the end).
    #[arg(long, default_value_t = 50)]
    pub eval_every: usize,
    #[arg(long, default_value_t = 0)]
    pub save_every: usize,
    #[arg(long, default_value_t = 2)]
    pub keep: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run folder.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Start from this HF checkpoint folder.
    #[arg(long, conflicts_with = "init_config")]
    model: Option<PathBuf>,
    /// Start from scratch with this config.json (needs --tokenizer).
    #[arg(long)]
    init_config: Option<PathBuf>,
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Chat SFT data: JSONL of {"messages": [...]} or {"prompt", "answer", "reasoning"}.
    #[arg(long, conflicts_with = "text")]
    data: Option<PathBuf>,
    /// Plain-text files for (continued) pretraining: loss on every token.
    #[arg(long, num_args = 1..)]
    text: Vec<PathBuf>,
    #[command(flatten)]
    train: TrainArgs,
}

pub fn run(args: Args) -> Result<()> {
    let device = Device::Cpu;
    let (policy, tok) = match (&args.model, &args.init_config) {
        (Some(m), _) => (
            Policy::load(m, &device).with_context(|| format!("loading {}", m.display()))?,
            tokenizer_for(m, args.tokenizer.as_deref())?,
        ),
        (None, Some(cfg)) => {
            let Some(t) = &args.tokenizer else { bail!("--init-config needs --tokenizer (a folder with tokenizer.json)") };
            let carry = if t.is_dir() { t.clone() } else { t.parent().map(Path::to_path_buf).unwrap_or_default() };
            (Policy::init(cfg, 0.02, &carry, &device)?, tokenizer_for(&carry, Some(t))?)
        }
        (None, None) => bail!("give --model CHECKPOINT or --init-config config.json"),
    };
    let examples = match (&args.data, args.text.is_empty()) {
        (Some(d), _) => read_chat_jsonl(d, &tok)?,
        (None, false) => read_text(&args.text, &tok)?,
        (None, true) => bail!("give --data FILE.jsonl (chat SFT) or --text FILES (pretraining)"),
    };
    train(&policy, &tok, None, examples, &args.train, 0.0, 1.0)?;
    Ok(())
}

/// Trains `policy` on `examples` and saves RUN/final; used by `sft` and `distill`.
pub fn train(
    policy: &Policy,
    tok: &Tokenizer,
    teacher: Option<Box<dyn CausalLm>>,
    mut examples: Vec<Example>,
    a: &TrainArgs,
    kd_alpha: f64,
    kd_temperature: f64,
) -> Result<PathBuf> {
    if !(0.0..0.5).contains(&a.val_fraction) {
        bail!("--val-fraction must be in [0, 0.5), got {}", a.val_fraction);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
    examples.shuffle(&mut rng);
    let pad = tok.pad_id().or_else(|| tok.eos_ids().iter().next().copied()).unwrap_or(0);
    let packed = pack(&examples, a.seq_len, pad);
    if packed.skipped_too_long > 0 {
        eprintln!(
            "warning: {} of {} examples are longer than --seq-len {} + 1 tokens and were left out (raise --seq-len to keep them)",
            packed.skipped_too_long,
            examples.len(),
            a.seq_len
        );
    }
    if packed.rows.len() < 2 {
        bail!("the data fills only {} row(s) of {} tokens: give more data or a smaller --seq-len", packed.rows.len(), a.seq_len + 1);
    }
    let n_val = ((packed.rows.len() as f64 * a.val_fraction).round() as usize).min(packed.rows.len() - 1);
    let (val, mut rows) = (packed.rows[..n_val].to_vec(), packed.rows[n_val..].to_vec());
    let cfg = SftConfig {
        steps: a.steps,
        batch: a.batch,
        micro_batch: a.micro_batch,
        lr: a.lr,
        min_lr_ratio: a.min_lr_ratio,
        warmup_steps: a.warmup_steps,
        weight_decay: a.weight_decay,
        max_grad_norm: a.max_grad_norm,
        bias_update_speed: a.bias_update_speed,
        kd_alpha,
        kd_temperature,
    };
    let mut sft = Sft::new(cfg.clone(), policy, teacher)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    write_atomic(&a.out.join("sft_config.json"), serde_json::to_string_pretty(&serde_json::json!({
        "sft": cfg, "seq_len": a.seq_len, "train_rows": rows.len(), "val_rows": val.len(),
        "trained_tokens": packed.trained_tokens, "examples": examples.len(), "parameters": policy.parameter_count(),
    }))?.as_bytes())?;
    eprintln!(
        "training {} parameters on {} rows of {} tokens ({} validation rows); run folder {}",
        policy.parameter_count(), rows.len(), a.seq_len + 1, val.len(), a.out.display()
    );
    let metrics_path = a.out.join("metrics.jsonl");
    let mut metrics = std::fs::File::create(&metrics_path).with_context(|| format!("creating {}", metrics_path.display()))?;
    let bar = ProgressBar::new(a.steps as u64).with_style(
        ProgressStyle::with_template("{bar:30} step {pos}/{len}  {per_sec}  ETA {eta}  {msg}").expect("static template"),
    );
    let mut cursor = 0;
    let mut saved: Vec<PathBuf> = Vec::new();
    for step in 0..a.steps {
        let t0 = std::time::Instant::now();
        let mut batch = Vec::with_capacity(a.batch);
        while batch.len() < a.batch {
            if cursor == rows.len() {
                rows.shuffle(&mut rng); // next epoch
                cursor = 0;
            }
            batch.push(rows[cursor].clone());
            cursor += 1;
        }
        let s = sft.step(step, &batch)?;
        let secs = t0.elapsed().as_secs_f64();
        let mut line = serde_json::json!({
            "step": step + 1, "loss": s.loss, "lr": s.lr, "grad_norm": s.grad_norm,
            "tokens": a.batch * a.seq_len, "tokens_per_s": (a.batch * a.seq_len) as f64 / secs, "expert_load_max_over_mean": s.expert_load_max_over_mean,
        });
        if kd_alpha > 0.0 {
            line["kd_loss"] = s.kd_loss.into();
        }
        let last = step + 1 == a.steps;
        if !val.is_empty() && (last || (a.eval_every > 0 && (step + 1) % a.eval_every == 0)) {
            line["val_loss"] = sft.eval_loss(&val)?.into();
        }
        writeln!(metrics, "{line}")?;
        metrics.flush()?;
        bar.inc(1);
        bar.set_message(format!("loss {:.4}  lr {:.2e}", s.loss, s.lr));
        if a.save_every > 0 && (step + 1) % a.save_every == 0 && !last {
            let dir = a.out.join("checkpoints").join(format!("step-{}", step + 1));
            policy.save(&dir)?;
            saved.push(dir);
            while saved.len() > a.keep.max(1) {
                let old = saved.remove(0);
                std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
            }
        }
    }
    bar.finish_and_clear();
    let fin = a.out.join("final");
    policy.save(&fin)?;
    eprintln!("final model: {}  metrics: {}", fin.display(), metrics_path.display());
    Ok(fin)
}
