//! `whale rejection-sample` and `whale distill` (R1 §2.3.3 and §2.4): sample k answers per
//! problem from a teacher (any model Whale loads, GGUF included), keep the verified-correct,
//! well-formed ones as chat SFT data with their reasoning, and — for `distill` — fine-tune a
//! student on them, optionally adding a logit KD term when the vocabularies match.

use crate::cmd::sft::{train, TrainArgs};
use crate::engine_args::EngineArgs;
use crate::model_args::ModelArgs;
use crate::session::tokenizer_for;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use whale_engine::{Engine, SamplingParams};
use whale_eval::{sample_problems, task_by_name, PromptStyle, SampleConfig, SampleRecord, Split};
use whale_rl::rejection::{select, Filter};
use whale_rl::sft_data::read_chat_jsonl;
use whale_rl::Policy;

#[derive(clap::Args, Debug, Clone)]
pub struct SampleArgs {
    /// arithmetic[:DIGITS], countdown[:COUNT], linear[:MAX], word[:MAX], or a .jsonl / .parquet file (question and answer fields).
    #[arg(long)]
    task: String,
    #[arg(long, default_value = "question")]
    question_field: String,
    #[arg(long, default_value = "answer")]
    answer_field: String,
    /// Training-split problems to sample.
    #[arg(long, default_value_t = 200)]
    problems: usize,
    /// Samples per problem (k).
    #[arg(long, default_value_t = 4)]
    samples: usize,
    /// Keep at most this many distinct correct answers per problem.
    #[arg(long, default_value_t = 2)]
    per_problem: usize,
    #[arg(long, default_value_t = 0.6)]
    temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Keep answers without a closed <think> block too.
    #[arg(long)]
    no_require_think: bool,
    /// Minimum share of English words in the reasoning (0 disables).
    #[arg(long, default_value_t = 0.0)]
    min_language: f64,
    /// Seed of the teacher's sampling.
    #[arg(long, default_value_t = 0)]
    sample_seed: u64,
    #[arg(long, value_parser = PromptStyle::NAMES)]
    prompt_style: Option<String>,
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct RejectionArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    sample: SampleArgs,
    /// Output JSONL (chat SFT format).
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct DistillArgs {
    /// The teacher: any model Whale loads.
    #[arg(long)]
    teacher: PathBuf,
    /// The student checkpoint to fine-tune.
    #[arg(long)]
    student: PathBuf,
    #[arg(long, default_value = "f32")]
    teacher_dtype: String,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    sample: SampleArgs,
    /// Use this SFT file instead of sampling the teacher.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Weight of the logit KD term (needs the same vocabulary; 0: traces only).
    #[arg(long, default_value_t = 0.0)]
    kd_alpha: f64,
    #[arg(long, default_value_t = 1.0)]
    kd_temperature: f64,
    #[command(flatten)]
    train: TrainArgs,
}

/// Samples the teacher and writes the kept examples to `out`; returns (kept, problems with any).
fn rejection_sample(model: &ModelArgs, engine_args: &EngineArgs, s: &SampleArgs, out: &Path) -> Result<(usize, usize)> {
    let task = task_by_name(&s.task, &s.question_field, &s.answer_field)?;
    let problems = task.problems(Split::Train, s.problems)?;
    let tok = tokenizer_for(&model.model, s.tokenizer.as_deref())?;
    let style = PromptStyle::from_flag(s.prompt_style.as_deref(), &tok)?;
    let ecfg = engine_args.config(model)?;
    let engine = Engine::start(model.load()?, ecfg.clone())?;
    let params = SamplingParams { temperature: s.temperature, top_p: s.top_p, seed: Some(s.sample_seed), ..Default::default() };
    let cfg = SampleConfig { samples: s.samples, params, max_tokens: s.max_tokens, style, in_flight: ecfg.max_batch * 2 };
    let bar = ProgressBar::new((problems.len() * s.samples) as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} samples  {per_sec}  ETA {eta}  {msg}").expect("static template"),
    );
    let mut by_id: HashMap<String, Vec<SampleRecord>> = HashMap::new();
    let mut correct = 0;
    sample_problems(&engine, &tok, &problems, &cfg, &HashSet::new(), |r| {
        correct += usize::from(r.verdict.is_correct());
        by_id.entry(r.problem.clone()).or_default().push(r);
        bar.inc(1);
        bar.set_message(format!("{correct} correct"));
        Ok(())
    })?;
    bar.finish_and_clear();
    let filter = Filter { per_problem: s.per_problem, require_think: !s.no_require_think, min_language: s.min_language, prompt_style: style };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = out.with_extension("jsonl.tmp");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let (mut kept, mut covered) = (0, 0);
    for p in &problems {
        let mut samples = by_id.remove(&p.id).unwrap_or_default();
        samples.sort_by_key(|r| r.sample);
        let sel = select(p, &samples, &filter);
        covered += usize::from(!sel.is_empty());
        for r in sel {
            writeln!(f, "{}", serde_json::to_string(&r)?)?;
            kept += 1;
        }
    }
    f.sync_all()?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "{correct} of {} samples were correct; kept {kept} examples covering {covered} of {} problems -> {}",
        problems.len() * s.samples,
        problems.len(),
        out.display()
    );
    Ok((kept, covered))
}

pub fn run_rejection(args: RejectionArgs) -> Result<()> {
    rejection_sample(&args.model, &args.engine, &args.sample, &args.out)?;
    Ok(())
}

pub fn run_distill(args: DistillArgs) -> Result<()> {
    let teacher = ModelArgs { model: args.teacher.clone(), dtype: args.teacher_dtype.clone(), threads: None, device: "cpu".into() };
    let data = match &args.data {
        Some(d) => d.clone(),
        None => {
            let path = args.train.out.join("distill_data.jsonl");
            let (kept, _) = rejection_sample(&teacher, &args.engine, &args.sample, &path)?;
            if kept == 0 {
                bail!("the teacher produced no verified-correct answer to learn from: try more --samples or --problems, or a stronger teacher");
            }
            path
        }
    };
    let policy = Policy::load(&args.student, &Device::Cpu).with_context(|| format!("loading the student {}", args.student.display()))?;
    let tok = tokenizer_for(&args.student, None)?;
    let examples = read_chat_jsonl(&data, &tok)?;
    let kd = if args.kd_alpha > 0.0 {
        Some(whale_model::load_model(&args.teacher, DType::F32, &Device::Cpu).with_context(|| format!("loading the teacher {}", args.teacher.display()))?)
    } else {
        None
    };
    train(&policy, &tok, kd, examples, &args.train, args.kd_alpha, args.kd_temperature)?;
    Ok(())
}
