//! `whale tokenizer train`: a byte-level BPE tokenizer with DeepSeek-R1's special tokens and
//! chat template, trained on text, JSONL or Parquet files (read as `whale train` reads them).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::Mutex;
use whale_train::data::config::{DataConfig, TextSplit};
use whale_train::data::documents::DocumentReader;

#[derive(Args, Debug)]
pub struct TokenizerArgs {
    #[command(subcommand)]
    command: TokenizerCommand,
}

#[derive(Subcommand, Debug)]
enum TokenizerCommand {
    /// Train a byte-level BPE (R1 special tokens, <think>/</think>, R1 chat template).
    Train(TrainArgs),
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// Training files: .txt/.md (documents split at blank lines), .jsonl or .parquet.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output folder: tokenizer.json and tokenizer_config.json.
    #[arg(long)]
    out: PathBuf,
    /// Total vocabulary size (special tokens and <think>/</think> included).
    #[arg(long, default_value_t = 8192)]
    vocab_size: usize,
    /// Pairs seen fewer times are not merged.
    #[arg(long, default_value_t = 2)]
    min_frequency: u64,
    /// Pre-tokenizer regexes, by GGUF `tokenizer.ggml.pre` name: deepseek-v3, qwen2, llama-bpe, default (GPT-2), ...
    #[arg(long, default_value = "deepseek-v3")]
    pre: String,
    /// JSONL key / Parquet column holding the text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// `model_max_length` written to tokenizer_config.json.
    #[arg(long, default_value_t = 4096)]
    max_length: usize,
}

pub fn run(args: TokenizerArgs) -> Result<()> {
    match args.command {
        TokenizerCommand::Train(a) => train(a),
    }
}

fn train(args: TrainArgs) -> Result<()> {
    let mut data = DataConfig::new(args.files.clone());
    data.text_field = args.text_field.clone();
    data.text_split = TextSplit::BlankLine;
    let sources = data.resolved_sources(std::path::Path::new("<cli>"))?;
    let mut readers = Vec::new();
    for s in &sources {
        readers.push(DocumentReader::open(s).with_context(|| format!("opening {}", s.path.display()))?);
    }
    // The trainer pulls documents through an iterator; a read error stops it and is reported.
    let failure = Mutex::new(None);
    let mut n_docs = 0usize;
    let docs = readers.into_iter().flatten().map_while(|d| match d {
        Ok(d) => {
            n_docs += 1;
            Some(d.text)
        }
        Err(e) => {
            *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            None
        }
    });
    let cfg = whale_text::BpeTrainConfig { vocab_size: args.vocab_size, min_frequency: args.min_frequency, pre: args.pre.clone() };
    let start = std::time::Instant::now();
    let tok = whale_text::train_bpe(docs, &cfg)?;
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e).context("reading the training text");
    }
    if n_docs == 0 {
        bail!("no documents in {}", args.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "));
    }
    whale_text::save_r1_tokenizer(&tok, &args.out, args.max_length)?;
    let got = tok.get_vocab_size(true);
    eprintln!(
        "wrote {} ({got} tokens from {n_docs} documents in {:.1}s{})",
        args.out.display(),
        start.elapsed().as_secs_f64(),
        if got < args.vocab_size { format!("; asked for {}, the text has no more pairs to merge", args.vocab_size) } else { String::new() }
    );
    Ok(())
}
