//! `whale`: one binary for running, serving, training and evaluating DeepSeek-architecture
//! models. Each subcommand lives in `cmd/`.

mod cmd;
mod model_args;

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
    /// Generate a continuation of a prompt.
    Generate(cmd::generate::Args),
    /// Measure prefill and decode speed (tokens/s), like llama-bench.
    Bench(cmd::bench::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Logits(a) => cmd::logits::run(a),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Bench(a) => cmd::bench::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
