//! `whale eval`: evaluate a model on a verifiable task the way R1 is evaluated — k samples
//! per problem at temperature 0.6 / top-p 0.95 by default, pass@1 (mean correctness), pass@k,
//! cons@k — batched through the engine, with a progress bar, resumable, and a JSON report.

use crate::engine_args::EngineArgs;
use crate::model_args::ModelArgs;
use crate::session::tokenizer_for;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use whale_engine::{Engine, SamplingParams};
use whale_eval::{sample_problems, task_by_name, PromptStyle, Report, SampleConfig, SampleRecord, Settings, Split};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// arithmetic[:DIGITS], countdown[:COUNT], linear[:MAX], word[:MAX], or a .jsonl / .parquet file (question and answer fields).
    #[arg(long)]
    task: String,
    /// Field of a .jsonl task holding the question.
    #[arg(long, default_value = "question")]
    question_field: String,
    /// Field of a .jsonl task holding the answer (GSM8K "#### 42", \boxed{}, or plain).
    #[arg(long, default_value = "answer")]
    answer_field: String,
    /// Which split of a built-in task (the test split is fixed and held out from training).
    #[arg(long, default_value = "test", value_parser = ["test", "train"])]
    split: String,
    /// How many problems.
    #[arg(long, default_value_t = 100)]
    problems: usize,
    /// Samples per problem (k).
    #[arg(long, default_value_t = 4)]
    samples: usize,
    /// Sampling temperature (R1's evaluation setting by default).
    #[arg(long, default_value_t = 0.6)]
    temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Greedy decoding with one sample (overrides --samples and --temperature).
    #[arg(long)]
    greedy: bool,
    /// Most tokens per answer (reasoning included).
    #[arg(long, default_value_t = 1024)]
    max_tokens: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// chat (the model's template + "put your final answer within \boxed{}"), chat-plain (the question alone) or r1-zero.
    #[arg(long, value_parser = PromptStyle::NAMES)]
    prompt_style: Option<String>,
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Output folder: report.json and samples.jsonl (default: runs/eval-TASK).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue a run whose samples.jsonl exists in --out.
    #[arg(long)]
    resume: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.samples == 0 || args.problems == 0 {
        bail!("--samples and --problems must be at least 1");
    }
    let task = task_by_name(&args.task, &args.question_field, &args.answer_field)?;
    let split = if args.split == "train" { Split::Train } else { Split::Test };
    let problems = task.problems(split, args.problems)?;
    // A folder's tokenizer.json, or a GGUF file's own tokenizer.
    let tok = tokenizer_for(&args.model.model, args.tokenizer.as_deref())?;
    let style = PromptStyle::from_flag(args.prompt_style.as_deref(), &tok)?;
    let (samples, temperature) = if args.greedy { (1, 0.0) } else { (args.samples, args.temperature) };
    let params = SamplingParams { temperature, top_p: args.top_p, seed: Some(args.seed), ..Default::default() };
    params.validate()?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("eval-{}", task.name())));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let samples_path = out.join("samples.jsonl");
    let mut records = if args.resume { read_samples(&samples_path)? } else { Vec::new() };
    if !args.resume && samples_path.exists() {
        bail!("{} exists: pass --resume to continue that run, or choose another --out", samples_path.display());
    }
    let done: HashSet<(String, usize)> = records.iter().map(|r| (r.problem.clone(), r.sample)).collect();

    let engine_cfg = args.engine.config(&args.model)?;
    let engine = Engine::start(args.model.load()?, engine_cfg.clone())?;
    let total = (problems.len() * samples) as u64;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} samples  {per_sec}  ETA {eta}  {msg}")
            .expect("static template"),
    );
    bar.set_position(done.len() as u64);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&samples_path)
        .with_context(|| format!("opening {}", samples_path.display()))?;
    let cfg = SampleConfig { samples, params, max_tokens: args.max_tokens, style, in_flight: engine_cfg.max_batch * 2 };
    let mut correct = records.iter().filter(|r| r.verdict.is_correct()).count();
    sample_problems(&engine, &tok, &problems, &cfg, &done, |r| {
        // One line per sample, flushed: a killed run loses at most the samples in flight.
        let line = serde_json::to_string(&r).expect("records serialize");
        writeln!(file, "{line}").and_then(|_| file.flush()).map_err(|e| whale_eval::EvalError::Io(samples_path.clone(), e))?;
        correct += usize::from(r.verdict.is_correct());
        records.push(r);
        bar.inc(1);
        bar.set_message(format!("{:.1}% correct", 100.0 * correct as f64 / records.len() as f64));
        Ok(())
    })?;
    bar.finish_and_clear();
    let settings = Settings {
        model: args.model.model.display().to_string(),
        task: task.name(),
        problems: problems.len(),
        samples,
        temperature,
        top_p: args.top_p,
        max_tokens: args.max_tokens,
        prompt_style: style,
        seed: args.seed,
    };
    let report = Report::build(settings, &problems, &records);
    let report_path = out.join("report.json");
    write_atomic(&report_path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    print!("{}", report.summary());
    eprintln!("report: {}  samples: {}", report_path.display(), samples_path.display());
    Ok(())
}

fn read_samples(path: &Path) -> Result<Vec<SampleRecord>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(r) => out.push(r),
            // A run killed mid-write leaves a torn last line: that sample is simply redone.
            Err(_) if i + 1 == count_lines(path) => break,
            Err(e) => bail!("{} line {}: not a sample record ({e})", path.display(), i + 1),
        }
    }
    Ok(out)
}

fn count_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|s| s.lines().count()).unwrap_or(0)
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
