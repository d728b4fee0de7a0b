//! `whale tokenize`: text to token ids (or back with `--decode`) with a model's tokenizer,
//! from `tokenizer.json`, a model folder or a GGUF file — the shell-level way to compare
//! Whale's tokenization with other implementations.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use whale_text::tokenizer::Tokenizer;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `tokenizer.json`, a model folder holding one, or a `.gguf` file.
    #[arg(long)]
    tokenizer: PathBuf,
    /// The text to tokenize (or, with --decode, comma-separated ids).
    #[arg(long, conflicts_with = "file")]
    text: Option<String>,
    /// Read the text (or ids) from this file.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Turn ids back into text.
    #[arg(long)]
    decode: bool,
    /// Do not add the tokenizer's special tokens (BOS) when encoding, or drop special
    /// tokens when decoding.
    #[arg(long)]
    no_special: bool,
    /// Print JSON: `{"ids": [...]}` (or `{"text": "..."}` with --decode).
    #[arg(long)]
    json: bool,
}

/// Opens a tokenizer from a file or folder, choosing the loader by what the path is.
pub fn open_tokenizer(path: &Path) -> Result<Tokenizer> {
    let tokenizer = if path.is_dir() {
        Tokenizer::from_dir(path)
    } else if path.extension().is_some_and(|e| e == "gguf") {
        Tokenizer::from_gguf(path)
    } else {
        Tokenizer::from_file(path)
    };
    tokenizer.with_context(|| format!("loading tokenizer {}", path.display()))
}

pub fn run(args: Args) -> Result<()> {
    let input = match (&args.text, &args.file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        (None, None) => bail!("give the input with --text TEXT or --file FILE"),
    };
    let tokenizer = open_tokenizer(&args.tokenizer)?;
    if args.decode {
        let ids = crate::model_args::parse_ids(&input, "--text")?;
        let text = tokenizer.decode(&ids, args.no_special)?;
        if args.json {
            println!("{}", serde_json::json!({ "text": text }));
        } else {
            println!("{text}");
        }
        return Ok(());
    }
    let ids = tokenizer.encode(&input, !args.no_special)?;
    if args.json {
        println!("{}", serde_json::json!({ "ids": ids }));
    } else {
        println!("{}", ids.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
    }
    Ok(())
}
