//! `whale`: one binary for running, serving, training and evaluating DeepSeek-architecture
//! models. Each subcommand lives in `cmd/`.

mod builtin;
mod cmd;
mod engine_args;
mod memory;
mod model_args;
mod sampling_args;
mod session;
mod terminal;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "whale", version, about = "Run, serve, train and teach reasoning to DeepSeek-architecture models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the logits of every position for a list of token ids, as JSON.
    Logits(cmd::logits::Args),
    /// Generate a continuation of a prompt (text or token ids), streaming it.
    Generate(cmd::generate::Args),
    /// Talk with a model in the terminal (or script it through stdin).
    Chat(cmd::chat::Args),
    /// Serve a model over the DeepSeek/OpenAI-compatible HTTP API (loopback by default).
    Serve(cmd::serve::Args),
    /// Measure prefill and decode speed (tokens/s), like llama-bench.
    Bench(cmd::bench::Args),
    /// Perplexity on a text file, like llama-perplexity (chunks of -c tokens, second halves scored).
    Perplexity(cmd::perplexity::Args),
    /// Convert an HF folder to a GGUF file (f16, q8_0, q4_k_m, ...) that llama.cpp and Whale run.
    Quantize(cmd::quantize::Args),
    /// Turn text into token ids (or back with --decode) with a model's tokenizer.
    Tokenize(cmd::tokenize::Args),
    /// Tokenizer tools: `whale tokenizer train` makes an R1-style byte-level BPE from text.
    Tokenizer(cmd::tokenizer::TokenizerArgs),
    /// Evaluate a model on a verifiable task: pass@1, pass@k, cons@k over k samples.
    Eval(cmd::eval::Args),
    /// Reinforcement learning with GRPO and rule-based rewards on a verifiable task.
    Grpo(cmd::grpo::Args),
    /// Supervised fine-tuning on chat examples (or pretraining on text with --text).
    Sft(cmd::sft::Args),
    /// Sample a model on a task and keep the verified-correct answers as SFT data.
    RejectionSample(cmd::distill::RejectionArgs),
    /// Distill a teacher's verified reasoning traces into a student (rejection sampling + SFT).
    Distill(cmd::distill::DistillArgs),
    /// Pretrain a DeepSeek-architecture model as a run.toml says (docs/train.md).
    Train(cmd::train::Args),
    /// Draw PNG charts of a training run's metrics.
    Plot(cmd::plot::Args),
    /// The whole system at toy scale: pretrain, SFT, GRPO, distill, quantize, evaluate, serve.
    Demo(cmd::demo::Args),
}

fn main() {
    quiet_candle_pool();
    if let Err(e) = dispatch(Cli::parse().command) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// candle's quantized kernels run on a thread pool of their own whose idle workers spin for
/// 25,000 pauses (about a millisecond) before parking. Whale's kernels run on rayon between
/// candle's calls, so on a small machine the spinning workers take the cores those kernels
/// need (Gemma 3 270M, 2 threads, five alternating runs: 36.1 tok/s median with the default,
/// 38.2 with 100; docs/benchmarks.md). An explicit `CANDLE_BARRIER_POOL_SPIN_LIMIT` is kept.
fn quiet_candle_pool() {
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        // Before any thread exists: set_var is only sound while the process is single-threaded.
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "100");
    }
}

/// Runs one `whale` command line in this process (`whale demo` chains its stages this way, so
/// each stage is exactly the command it prints).
pub(crate) fn run_argv<S: AsRef<str>>(argv: &[S]) -> anyhow::Result<()> {
    let words = std::iter::once("whale").chain(argv.iter().map(AsRef::as_ref));
    let cli = Cli::try_parse_from(words).map_err(|e| anyhow::anyhow!("{e}"))?;
    dispatch(cli.command)
}

/// Parses one `whale serve` command line into its arguments.
pub(crate) fn serve_args<S: AsRef<str>>(argv: &[S]) -> anyhow::Result<cmd::serve::Args> {
    let words = ["whale", "serve"].into_iter().chain(argv.iter().map(AsRef::as_ref));
    match Cli::try_parse_from(words).map_err(|e| anyhow::anyhow!("{e}"))?.command {
        Command::Serve(a) => Ok(a),
        _ => unreachable!("the first word is serve"),
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Logits(a) => cmd::logits::run(a),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Chat(a) => cmd::chat::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Perplexity(a) => cmd::perplexity::run(a),
        Command::Quantize(a) => cmd::quantize::run(a),
        Command::Tokenize(a) => cmd::tokenize::run(a),
        Command::Tokenizer(a) => cmd::tokenizer::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Grpo(a) => cmd::grpo::run(a),
        Command::Sft(a) => cmd::sft::run(a),
        Command::RejectionSample(a) => cmd::distill::run_rejection(a),
        Command::Distill(a) => cmd::distill::run_distill(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Plot(a) => cmd::plot::run(a),
        Command::Demo(a) => cmd::demo::run(a),
    }
}

#[cfg(test)]
mod tests {
    /// clap checks the whole command tree (unique flag names across flattened groups, ...).
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
