//! `whale train --config run.toml`: pretraining a DeepSeek-architecture model as the run.toml
//! says (docs/train.md lists every key). Flags override the file; `--set section.key=value`
//! overrides any key. `--resume` continues from the newest checkpoint in the run folder;
//! `--cost-only` prints the FLOPs and GPU-hour projection without training.

use anyhow::{Context, Result};
use std::path::PathBuf;
use whale_core::config::ModelConfig;
use whale_train::{RunConfig, Trainer};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run.toml.
    #[arg(long)]
    config: PathBuf,
    /// Continue from the newest checkpoint in the run folder.
    #[arg(long)]
    resume: bool,
    /// Print the cost report (FLOPs per token, projected GPU-hours and dollars) and exit.
    #[arg(long)]
    cost_only: bool,
    /// Override any run.toml key: `section.key=value` (TOML value; repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Run folder (`out`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// `train.steps`.
    #[arg(long)]
    steps: Option<u64>,
    /// `train.batch_size` (sequences per optimizer step).
    #[arg(long)]
    batch_size: Option<usize>,
    /// `train.micro_batch` (sequences per forward/backward).
    #[arg(long)]
    micro_batch: Option<usize>,
    /// `train.seq_len`.
    #[arg(long)]
    seq_len: Option<usize>,
    /// `train.seed`.
    #[arg(long)]
    seed: Option<u64>,
    /// `train.precision`: f32, bf16 or fp8.
    #[arg(long)]
    precision: Option<String>,
    /// `optim.lr` (peak learning rate).
    #[arg(long)]
    lr: Option<f64>,
    /// `checkpoint.every`.
    #[arg(long)]
    save_every: Option<u64>,
    /// `train.eval_every`.
    #[arg(long)]
    eval_every: Option<u64>,
    /// `cost.target_tokens` for the projection.
    #[arg(long)]
    target_tokens: Option<f64>,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
}

impl Args {
    /// The named flags as `--set` overrides (applied after the `--set` ones, so they win).
    fn overrides(&self) -> Vec<String> {
        let mut o = self.set.clone();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                o.push(format!("{k}={v}"));
            }
        };
        // Paths and strings are written as TOML strings.
        let quoted = |s: &str| format!("{s:?}");
        push("out", self.out.as_ref().map(|p| quoted(&p.to_string_lossy())));
        push("train.steps", self.steps.map(|v| v.to_string()));
        push("train.batch_size", self.batch_size.map(|v| v.to_string()));
        push("train.micro_batch", self.micro_batch.map(|v| v.to_string()));
        push("train.seq_len", self.seq_len.map(|v| v.to_string()));
        push("train.seed", self.seed.map(|v| v.to_string()));
        push("train.precision", self.precision.as_deref().map(quoted));
        push("optim.lr", self.lr.map(|v| format!("{v:e}")));
        push("checkpoint.every", self.save_every.map(|v| v.to_string()));
        push("train.eval_every", self.eval_every.map(|v| v.to_string()));
        push("cost.target_tokens", self.target_tokens.map(|v| format!("{v:e}")));
        if self.no_progress {
            o.push("train.progress=false".into());
        }
        o
    }
}

pub fn run(args: Args) -> Result<()> {
    let mut cfg = RunConfig::load(&args.config, &args.overrides())?;
    if args.cost_only {
        let config_path = match (&cfg.model.config, &cfg.model.checkpoint) {
            (Some(c), _) => c.clone(),
            (None, Some(d)) => d.join(whale_model::CONFIG_FILE),
            (None, None) => unreachable!("RunConfig::load requires a model"),
        };
        let model = ModelConfig::from_file(&config_path)?;
        let mtp = match &model {
            ModelConfig::DeepSeek(c) => cfg.mtp.depth.unwrap_or(c.num_nextn_predict_layers),
            ModelConfig::Llama(_) => 0,
        };
        let report = whale_train::trainer::cost_report(&cfg, &args.config, &model, mtp, None)?;
        print!("{}", report.render());
        return Ok(());
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        cfg.train.progress = false;
    }
    let out = cfg.out.clone();
    let mut trainer = Trainer::new(cfg, &args.config, args.resume).context("setting up the run")?;
    let params = trainer.params().parameter_count();
    eprintln!(
        "training {} parameters from step {} to {} in {}",
        params,
        trainer.step,
        trainer.cfg.train.steps,
        out.display()
    );
    let records = trainer.run()?;
    if let Some(last) = records.last() {
        let val = last.val_loss.map_or(String::new(), |v| format!(", val loss {v:.4}"));
        eprintln!("step {}: loss {:.4}{val}", last.step, last.loss);
    }
    let report = trainer.cost_report()?;
    let path = out.join("cost.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
    print!("{}", report.render());
    eprintln!("checkpoints in {}; metrics in {}", trainer.checkpoint_root().display(), out.join("metrics.jsonl").display());
    Ok(())
}
