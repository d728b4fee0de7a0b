//! `whale`: one binary for running, serving, training and evaluating DeepSeek-architecture
//! models. Each subcommand lives in `cmd/`.

mod cmd;
mod engine_args;
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
    /// Measure prefill and decode speed (tokens/s), like llama-bench.
    Bench(cmd::bench::Args),
    /// Turn text into token ids (or back with --decode) with a model's tokenizer.
    Tokenize(cmd::tokenize::Args),
    /// Evaluate a model on a verifiable task: pass@1, pass@k, cons@k over k samples.
    Eval(cmd::eval::Args),
    /// Reinforcement learning with GRPO and rule-based rewards on a verifiable task.
    Grpo(cmd::grpo::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Logits(a) => cmd::logits::run(a),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Chat(a) => cmd::chat::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Tokenize(a) => cmd::tokenize::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Grpo(a) => cmd::grpo::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
