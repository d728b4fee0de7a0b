//! `whale demo`: the whole R1 system at toy scale, as the chain of `whale` commands it
//! prints (each runs in this process, exactly as typed): worked arithmetic → a byte-level BPE →
//! pretraining a DeepSeek-V3-architecture teacher (MLA + DeepSeekMoE + MTP) → SFT cold start →
//! GRPO → rejection sampling and distillation into a dense Qwen2 student → a Q8_0 GGUF →
//! evaluation → a conversation over the HTTP API. `--quick` runs the same chain with tiny step
//! counts (the CI smoke test).

mod conversation;
mod data;
mod recipe;

use anyhow::{bail, Context, Result};
use recipe::{write_json, Recipe};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Tiny step counts: every stage in under 3 minutes (a smoke test; accuracy stays near 0).
    #[arg(long)]
    quick: bool,
    /// Run folder [default: runs/demo, or runs/demo-quick with --quick].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace the run folder an earlier `whale demo` left (no other folder is ever deleted).
    #[arg(long)]
    force: bool,
    /// CPU threads (default: all cores).
    #[arg(short = 't', long)]
    threads: Option<usize>,
    /// Stop after this stage (e.g. `pretrain`: the data, the tokenizer and a pretrained
    /// teacher to experiment from).
    #[arg(long, value_parser = STAGE_NAMES)]
    until: Option<String>,
}

/// Every problem comes from this task: its training split feeds the data, SFT, GRPO and
/// rejection sampling; its fixed test split is only ever evaluated on.
const TASK: &str = "addsub:2";
/// The models are trained on bare questions, so every stage asks them that way.
const STYLE: &str = "chat-plain";
/// Written first into the run folder; `--force` deletes only folders that hold it.
const MARKER: &str = "demo.json";
/// The stages in order, as `--until` names them.
const STAGE_NAMES: [&str; 13] = [
    "data", "tokenizer", "pretrain", "sft", "eval-sft", "grpo", "eval-grpo", "student-base", "rejection-sampling", "distill",
    "quantize", "eval-student", "serve",
];
const STAGES: usize = STAGE_NAMES.len();
/// Fewer kept teacher traces than this are too few to train a student on.
const MIN_TRACES: usize = 8;

pub fn run(args: Args) -> Result<()> {
    let r = Recipe::new(args.quick);
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(if args.quick { "runs/demo-quick" } else { "runs/demo" }));
    prepare_out(&out, args.force, args.quick)?;
    if let Some(n) = args.threads {
        crate::model_args::set_threads(n)?;
    }
    let p = |rel: &str| out.join(rel).to_string_lossy().into_owned();
    let mut log = Log::new(args.quick, args.until.clone());
    let (max_tokens, seq_len) = (r.max_tokens.to_string(), r.seq_len.to_string());

    log.begin("data", &format!("worked add/subtract problems from the {TASK} task's training split"));
    let c = data::write(&out.join("data"), TASK, r.pretrain_docs, r.sft_examples)?;
    if log.end(format!("{} pretraining documents, {} SFT examples in {}", c.pretrain_docs, c.sft_examples, p("data"))) {
        return log.stop(&out);
    }

    log.begin("tokenizer", "a byte-level BPE with DeepSeek-R1's special tokens and chat template");
    whale(&["tokenizer", "train", &p("data/pretrain.txt"), "--out", &p("tokenizer"), "--vocab-size", "512", "--pre", "qwen2", "--max-length", "512"])?;
    let vocab = whale_text::tokenizer::Tokenizer::from_file(&out.join("tokenizer/tokenizer.json"))?.vocab_size();
    if log.end(format!("{vocab} tokens")) {
        return log.stop(&out);
    }

    log.begin("pretrain", "a DeepSeek-V3-architecture teacher (MLA, DeepSeekMoE, MTP) from scratch on the corpus");
    std::fs::create_dir_all(out.join("pretrain"))?;
    write_json(&out.join("pretrain/config.json"), &r.teacher_config(vocab))?;
    write_text(&out.join("pretrain/run.toml"), &r.run_toml(r.pretrain_steps, true))?;
    whale(&["train", "--config", &p("pretrain/run.toml")])?;
    let teacher_base = p(&format!("pretrain/checkpoints/step-{:08}", r.pretrain_steps));
    if log.end(format!("val loss {}; plots: whale plot {}", last_metric(&out.join("pretrain"), "val_loss")?, p("pretrain"))) {
        return log.stop(&out);
    }

    log.begin("sft", "cold start: chat SFT on worked examples, loss on the assistant's turn only");
    whale(&[
        "sft", "--model", &teacher_base, "--data", &p("data/sft.jsonl"), "--out", &p("sft"),
        "--steps", &r.sft_steps.to_string(), "--seq-len", &seq_len, "--lr", "1e-3", "--warmup-steps", "5",
        "--eval-every", &(r.sft_steps / 3).max(1).to_string(),
    ])?;
    if log.end(format!("val loss {}", last_metric(&out.join("sft"), "val_loss")?)) {
        return log.stop(&out);
    }

    let eval = |model: &str, name: &str| -> Vec<String> {
        vec![
            "eval".into(), "--model".into(), model.into(), "--task".into(), TASK.into(),
            "--problems".into(), r.eval_problems.to_string(), "--samples".into(), r.eval_samples.to_string(),
            "--max-tokens".into(), max_tokens.clone(), "--prompt-style".into(), STYLE.into(), "--out".into(), p(&format!("eval/{name}")),
        ]
    };
    log.begin("eval sft", "held-out pass@1 before RL (R1's sampling: temperature 0.6, top-p 0.95)");
    whale(&eval(&p("sft/final"), "sft"))?;
    let before = accuracy(&out.join("eval/sft"))?;
    if log.end(before.line()) {
        return log.stop(&out);
    }

    log.begin("grpo", "GRPO on the task's rule-based rewards (accuracy + format), rollouts through the engine");
    whale(&[
        "grpo", "--model", &p("sft/final"), "--task", TASK, "--out", &p("grpo"),
        "--steps", &r.grpo_steps.to_string(), "--prompts", &r.grpo_prompts.to_string(), "--group", &r.grpo_group.to_string(),
        "--micro-batch", &r.grpo_group.to_string(), "--lr", "5e-5", "--beta", "0.04", "--temperature", "1.0",
        "--max-tokens", &max_tokens, "--max-batch", "32", "--save-every", "0", "--prompt-style", STYLE,
    ])?;
    let (first, last) = first_last_mean(&out.join("grpo"), "accuracy", 5)?;
    if log.end(format!("rollout accuracy {:.1}% over the first 5 steps, {:.1}% over the last 5", 100.0 * first, 100.0 * last)) {
        return log.stop(&out);
    }

    log.begin("eval grpo", "held-out pass@1 after RL, same problems and settings");
    whale(&eval(&p("grpo/final"), "grpo"))?;
    let after = accuracy(&out.join("eval/grpo"))?;
    if log.end(format!("{} ({:+.1} points)", after.line(), 100.0 * (after.pass1 - before.pass1))) {
        return log.stop(&out);
    }

    log.begin("student base", "a dense Qwen2 student (the R1-Distill architecture) pretrained on the same corpus");
    std::fs::create_dir_all(out.join("student"))?;
    write_json(&out.join("student/config.json"), &r.student_config(vocab))?;
    write_text(&out.join("student/run.toml"), &r.run_toml(r.student_steps, false))?;
    whale(&["train", "--config", &p("student/run.toml")])?;
    let student_base = p(&format!("student/checkpoints/step-{:08}", r.student_steps));
    if log.end(format!("val loss {}", last_metric(&out.join("student"), "val_loss")?)) {
        return log.stop(&out);
    }

    log.begin("rejection sampling", "the GRPO teacher's answers, only the verified-correct ones kept with their reasoning");
    whale(&[
        "rejection-sample", "--model", &p("grpo/final"), "--task", TASK, "--problems", &r.rejection_problems.to_string(),
        "--samples", &r.rejection_samples.to_string(), "--per-problem", "1", "--max-tokens", &max_tokens, "--prompt-style", STYLE,
        "--out", &p("distill/traces.jsonl"),
    ])?;
    let kept = count_lines(&out.join("distill/traces.jsonl"))?;
    let (traces, note) = if kept >= MIN_TRACES {
        (p("distill/traces.jsonl"), format!("{kept} traces kept"))
    } else {
        eprintln!(
            "note: the teacher got only {kept} problem(s) right, too few to distill; the student learns from the \
             cold-start worked examples instead (run without --quick for a teacher that solves problems)"
        );
        (p("data/sft.jsonl"), format!("only {kept} traces kept: the student uses the worked examples"))
    };
    if log.end(note) {
        return log.stop(&out);
    }

    log.begin("distill", "the student fine-tuned on the teacher's verified reasoning traces");
    whale(&[
        "distill", "--teacher", &p("grpo/final"), "--student", &student_base, "--task", TASK, "--data", &traces,
        "--out", &p("distill"), "--steps", &r.distill_steps.to_string(), "--seq-len", &seq_len, "--lr", "2e-3",
        "--warmup-steps", "5", "--eval-every", &(r.distill_steps / 3).max(1).to_string(),
    ])?;
    if log.end(format!("val loss {}", last_metric(&out.join("distill"), "val_loss")?)) {
        return log.stop(&out);
    }

    log.begin("quantize", "the student to a Q8_0 GGUF file (llama.cpp's format, tokenizer embedded)");
    let gguf = p("student-q8_0.gguf");
    whale(&["quantize", &p("distill/final"), &gguf, "--type", "q8_0"])?;
    if log.end(format!("{} ({} KiB)", gguf, std::fs::metadata(&gguf)?.len() / 1024)) {
        return log.stop(&out);
    }

    log.begin("eval student", "the quantized student's held-out pass@1, same problems and settings");
    whale(&eval(&gguf, "student"))?;
    let student = accuracy(&out.join("eval/student"))?;
    if log.end(student.line()) {
        return log.stop(&out);
    }

    for run in ["pretrain", "sft", "grpo", "student", "distill"] {
        whale(&["plot", &p(run)])?;
    }

    log.begin("serve", "whale serve on a free loopback port, and a six-turn chat over the HTTP API");
    let questions: Vec<String> =
        ["What is 47 + 38?", "What is 91 - 56?", "What is 26 + 69?", "What is 70 - 84?", "What is 35 + 35?", "What is 12 - 99?"]
            .map(String::from)
            .to_vec();
    let serve = [
        "--model", &gguf, "--port", "0", "--cache-dir", &p("cache"), "--served-model-name", "deepseek-reasoner",
    ]
    .map(String::from);
    println!("$ whale serve {}", serve.join(" "));
    let turns = conversation::chat(&serve, &questions)?;
    let mut hits = 0;
    for t in &turns {
        let u = &t.usage;
        hits += u["prompt_cache_hit_tokens"].as_u64().unwrap_or(0);
        println!("\nuser: {}", t.question);
        println!("  reasoning_content: {}", t.reasoning.replace('\n', " | "));
        println!("  content: {}", t.answer);
        println!(
            "  usage: {} prompt tokens ({} cache hit, {} miss), {} completion ({} reasoning), cost {} {}",
            u["prompt_tokens"], u["prompt_cache_hit_tokens"], u["prompt_cache_miss_tokens"], u["completion_tokens"],
            u["completion_tokens_details"]["reasoning_tokens"], u["cost"]["total"], u["cost"]["currency"].as_str().unwrap_or_default(),
        );
    }
    if log.end(format!("{} turns, {hits} prompt tokens from the prefix cache", turns.len())) {
        return log.stop(&out);
    }

    let summary = log.summary(&out, &before, &after, &student);
    write_text(&out.join("summary.md"), &summary)?;
    println!("\n{summary}");
    Ok(())
}

/// Runs one `whale` command line, printed first so it can be rerun by hand.
fn whale<S: AsRef<str>>(argv: &[S]) -> Result<()> {
    let words: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
    println!("$ whale {}", words.join(" "));
    crate::run_argv(&words).with_context(|| format!("`whale {}` failed", words.first().copied().unwrap_or_default()))
}

fn prepare_out(out: &Path, force: bool, quick: bool) -> Result<()> {
    if out.exists() {
        let ours = out.join(MARKER).is_file();
        match (force, ours) {
            (true, true) => std::fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?,
            (true, false) => bail!("{} exists and is not a `whale demo` folder (no {MARKER}); --force deletes only those: choose another --out", out.display()),
            (false, _) if std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false) => {}
            (false, _) => bail!("{} exists: pass --force to replace an earlier demo's folder, or choose another --out", out.display()),
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_json(&out.join(MARKER), &serde_json::json!({ "quick": quick, "task": TASK, "whale": env!("CARGO_PKG_VERSION") }))
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn count_lines(path: &Path) -> Result<usize> {
    Ok(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?.lines().filter(|l| !l.trim().is_empty()).count())
}

/// Every logged value of `key` in RUN/metrics.jsonl, in step order. (Whale's runs log
/// different keys, GRPO's `accuracy` among them, so the lines are read untyped.)
fn metric_values(run: &Path, key: &str) -> Result<Vec<f64>> {
    let path = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?.get(key)?.as_f64()).collect())
}

/// The last logged value of `key`, formatted for the log.
fn last_metric(run: &Path, key: &str) -> Result<String> {
    Ok(metric_values(run, key)?.last().map_or_else(|| "-".to_string(), |v| format!("{v:.4}")))
}

/// The mean of `key` over the first and over the last `n` logged steps.
fn first_last_mean(run: &Path, key: &str, n: usize) -> Result<(f64, f64)> {
    let v = metric_values(run, key)?;
    if v.is_empty() {
        bail!("{} has no {key:?} values", run.join("metrics.jsonl").display());
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    Ok((mean(&v[..n.min(v.len())]), mean(&v[v.len().saturating_sub(n)..])))
}

struct Accuracy {
    pass1: f64,
    ci95: f64,
    problems: usize,
    samples: usize,
}

impl Accuracy {
    fn line(&self) -> String {
        format!(
            "pass@1 {:.1}% ± {:.1} ({} problems x {} samples)",
            100.0 * self.pass1,
            100.0 * self.ci95,
            self.problems,
            self.samples
        )
    }
}

fn accuracy(dir: &Path) -> Result<Accuracy> {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let r: whale_eval::Report = serde_json::from_str(&text).with_context(|| format!("{} is not an eval report", path.display()))?;
    Ok(Accuracy { pass1: r.pass_at_1, ci95: r.pass_at_1_ci95, problems: r.settings.problems, samples: r.settings.samples })
}

/// Stage banners with timings, and the closing table.
struct Log {
    quick: bool,
    until: Option<String>,
    start: Instant,
    stage: Option<(String, Instant)>,
    rows: Vec<(String, f64, String)>,
}

impl Log {
    fn new(quick: bool, until: Option<String>) -> Log {
        Log { quick, until, start: Instant::now(), stage: None, rows: Vec::new() }
    }

    fn begin(&mut self, name: &str, what: &str) {
        println!("\n[{}/{STAGES}] {name}: {what}", self.rows.len() + 1);
        self.stage = Some((name.to_string(), Instant::now()));
    }

    /// Closes the stage; true when it is the `--until` stage.
    fn end(&mut self, result: String) -> bool {
        let (name, t0) = self.stage.take().expect("end after begin");
        let secs = t0.elapsed().as_secs_f64();
        println!("[{}/{STAGES}] {name} done in {secs:.1}s: {result}", self.rows.len() + 1);
        let last = self.until.as_deref() == Some(name.replace(' ', "-").as_str());
        self.rows.push((name, secs, result));
        last
    }

    /// Ends the run early (`--until`): the stages so far, as in the full summary.
    fn stop(&self, out: &Path) -> Result<()> {
        let mut s = format!(
            "# whale demo --until {}: {:.1} minutes\n\n| stage | seconds | result |\n| --- | --- | --- |\n",
            self.until.as_deref().unwrap_or_default(),
            self.start.elapsed().as_secs_f64() / 60.0
        );
        for (name, secs, result) in &self.rows {
            let _ = writeln!(s, "| {name} | {secs:.1} | {result} |");
        }
        write_text(&out.join("summary.md"), &s)?;
        println!("\n{s}");
        Ok(())
    }

    fn summary(&self, out: &Path, before: &Accuracy, after: &Accuracy, student: &Accuracy) -> String {
        let mut s = format!(
            "# whale demo{}: {:.1} minutes\n\n| stage | seconds | result |\n| --- | --- | --- |\n",
            if self.quick { " --quick" } else { "" },
            self.start.elapsed().as_secs_f64() / 60.0
        );
        for (name, secs, result) in &self.rows {
            let _ = writeln!(s, "| {name} | {secs:.1} | {result} |");
        }
        let _ = write!(
            s,
            "\nHeld-out {TASK} pass@1: teacher after SFT {:.1}%, after GRPO {:.1}%, distilled Q8_0 student {:.1}%.\n\
             Plots: {}/*/plots/ (loss, validation loss, lr, grad norm, expert load, tokens/s; GRPO reward).\n\
             Eval reports: {}/eval/*/report.json. The student: {}/student-q8_0.gguf (try `whale chat --model` on it).\n",
            100.0 * before.pass1,
            100.0 * after.pass1,
            100.0 * student.pass1,
            out.display(),
            out.display(),
            out.display()
        );
        if self.quick {
            s.push_str("\n--quick trains for seconds: it checks that every stage runs, not what they achieve. Run `whale demo` for the full run.\n");
        }
        s
    }
}
