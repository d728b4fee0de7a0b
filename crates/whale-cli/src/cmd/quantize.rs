//! `whale quantize IN OUT --type T`: an HF folder (config.json + safetensors, Whale's own
//! checkpoints included) to a GGUF file that llama.cpp and Whale both run, with llama.cpp's
//! tensor names, layout and per-tensor type mixture (`whale_model::gguf::convert`), and the
//! tokenizer in the header when the folder has one.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::Arc;
use whale_core::gguf::GgufWriter;
use whale_model::gguf::{Conversion, FileType};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// HF model folder (config.json + *.safetensors).
    input: PathBuf,
    /// The GGUF file to write (written atomically: a failed run leaves no partial file).
    output: PathBuf,
    /// File type: f32, f16, q8_0, q4_0, q4_k_m, q5_k_m or q6_k.
    #[arg(long = "type", default_value = "q8_0")]
    ftype: String,
    /// Tokenizer to embed (tokenizer.json or a folder); default: the input folder's own.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Write no tokenizer even if one is found (Whale can then run the file with
    /// `--tokenizer`; llama.cpp cannot load it).
    #[arg(long)]
    no_tokenizer: bool,
    /// `general.name` (default: the input folder's name).
    #[arg(long)]
    name: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let Some(ftype) = FileType::parse(&args.ftype) else {
        bail!("--type {:?} is not a file type Whale writes; use one of f32, f16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k", args.ftype);
    };
    if !args.input.is_dir() {
        bail!("{}: not a model folder (expected a directory with config.json and *.safetensors)", args.input.display());
    }
    if args.output.is_dir() {
        bail!("{}: is a directory; give the path of the .gguf file to write", args.output.display());
    }
    let plan = Conversion::plan(&args.input, ftype).with_context(|| format!("reading {}", args.input.display()))?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.input.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| "model".into())
    });
    let mut w = GgufWriter::new();
    for (k, v) in plan.metadata(&name, ftype)? {
        w.add_metadata(k, v)?;
    }

    let tokenizer_path = match (&args.tokenizer, args.no_tokenizer) {
        (_, true) => None,
        (Some(p), false) => Some(p.clone()),
        (None, false) => Some(args.input.join("tokenizer.json")).filter(|p| p.exists()),
    };
    match &tokenizer_path {
        Some(p) => {
            let tok = crate::cmd::tokenize::open_tokenizer(p)?;
            let vocab = match &plan.config {
                whale_core::config::ModelConfig::DeepSeek(c) => c.vocab_size,
                whale_core::config::ModelConfig::Llama(c) => c.vocab_size,
            };
            for (k, v) in whale_text::gguf_metadata(&tok, vocab).with_context(|| format!("embedding the tokenizer {}", p.display()))? {
                w.add_metadata(k, v)?;
            }
        }
        None if !args.no_tokenizer => eprintln!(
            "warning: {} has no tokenizer.json; writing a GGUF without a tokenizer (pass --tokenizer, or run it with `whale ... --tokenizer`)",
            args.input.display()
        ),
        None => {}
    }

    let total: usize = plan.tensors.iter().map(|t| t.shape.iter().product::<usize>()).sum();
    let bar = ProgressBar::new(total as u64).with_message("quantizing");
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {percent}% {human_pos}/{human_len} values, {per_sec}, ETA {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let b = bar.clone();
    plan.add_tensors(&mut w, Arc::new(move |_, n| b.inc(n as u64)))?;
    let start = std::time::Instant::now();
    w.write(&args.output).with_context(|| format!("writing {}", args.output.display()))?;
    bar.finish_and_clear();
    let bytes = std::fs::metadata(&args.output).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "wrote {} ({} tensors, {:.1} MiB, {}) in {:.1}s{}",
        args.output.display(),
        plan.tensors.len(),
        bytes as f64 / (1 << 20) as f64,
        args.ftype,
        start.elapsed().as_secs_f64(),
        if plan.skipped.is_empty() { String::new() } else { format!("; left out {} tensors (MTP layers, rotary caches)", plan.skipped.len()) }
    );
    Ok(())
}
