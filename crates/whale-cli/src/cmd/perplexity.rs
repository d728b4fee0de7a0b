//! `whale perplexity`: perplexity of a model on a text file, computed the way llama.cpp's
//! `llama-perplexity` does so the two can be compared number for number.
//!
//! The text is tokenized once (with the tokenizer's special tokens, i.e. BOS where the model
//! uses one), cut into non-overlapping chunks of `ctx` tokens (the remainder is dropped), and
//! each chunk is evaluated from an empty context with its first token replaced by BOS (when
//! the tokenizer has one). Only the second half of each chunk is scored — every scored token
//! then sees at least `ctx/2` tokens of context — as `-log p(token | prefix)`. The estimate
//! is `exp(mean NLL)` with the standard error `exp(mean) · sqrt(var(NLL) / (N - 1))`
//! (llama.cpp's `perplexity()` in tools/perplexity).

use crate::model_args::ModelArgs;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor, D};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The text to score (UTF-8), e.g. wiki.test.raw.
    #[arg(long = "text", short = 'f')]
    text: PathBuf,
    /// Tokens per chunk.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 512)]
    ctx: usize,
    /// Score at most this many chunks (default: all).
    #[arg(long)]
    chunks: Option<usize>,
    /// Tokenizer (tokenizer.json, a folder, or a .gguf); default: the model's own.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Print the result as one JSON line.
    #[arg(long)]
    json: bool,
}

/// Running sums of per-token negative log-likelihoods.
#[derive(Default)]
struct Nll {
    sum: f64,
    sum_sq: f64,
    count: usize,
}

impl Nll {
    fn add(&mut self, v: f64) {
        self.sum += v;
        self.sum_sq += v * v;
        self.count += 1;
    }
    fn ppl(&self) -> f64 {
        (self.sum / self.count as f64).exp()
    }
    /// llama.cpp's error estimate: `ppl · sqrt((E[v²] - E[v]²) / (N - 1))`.
    fn stderr(&self) -> f64 {
        let n = self.count as f64;
        let mean = self.sum / n;
        let var = self.sum_sq / n - mean * mean;
        if var > 0.0 && self.count > 1 {
            (var / (n - 1.0)).sqrt() * self.ppl()
        } else {
            0.0
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    if args.ctx < 4 {
        bail!("-c/--ctx-size must be at least 4, got {}", args.ctx);
    }
    let text = std::fs::read_to_string(&args.text).with_context(|| format!("reading {}", args.text.display()))?;
    let tokenizer = crate::session::tokenizer_for(&args.model.model, args.tokenizer.as_deref())?;
    let model = args.model.load()?;
    let info = model.info().clone();
    if args.ctx > info.max_position_embeddings {
        bail!("-c {} exceeds the model's context of {} tokens", args.ctx, info.max_position_embeddings);
    }
    let tokens = tokenizer.encode(&text, true)?;
    if let Some(bad) = tokens.iter().find(|&&t| t as usize >= info.vocab_size) {
        bail!("token id {bad} from the tokenizer is outside the model's vocabulary ({})", info.vocab_size);
    }
    let available = tokens.len() / args.ctx;
    if available == 0 {
        bail!(
            "{} has {} tokens; at least -c {} are needed for one chunk (use a smaller -c or a longer text)",
            args.text.display(),
            tokens.len(),
            args.ctx
        );
    }
    let n_chunks = args.chunks.map_or(available, |c| c.min(available));
    let bos = tokenizer.bos_id();
    eprintln!("perplexity: {} tokens, {n_chunks} chunks of {} (scoring the last {} of each)", tokens.len(), args.ctx, args.ctx - 1 - args.ctx / 2);

    let first = args.ctx / 2;
    let mut nll = Nll::default();
    let start = Instant::now();
    for c in 0..n_chunks {
        let mut chunk = tokens[c * args.ctx..(c + 1) * args.ctx].to_vec();
        if let Some(b) = bos {
            chunk[0] = b;
        }
        let input = Tensor::from_vec(chunk, (1, args.ctx), model.device())?;
        let out = model.forward_hidden(&input, None)?;
        // Only the scored positions go through the output head.
        let hidden = out.hidden.narrow(1, first, args.ctx - 1 - first)?;
        let logits = model.lm_head(&hidden)?.squeeze(0)?.to_dtype(DType::F32)?;
        let log_probs = log_softmax(&logits)?;
        let targets = &tokens[c * args.ctx + first + 1..(c + 1) * args.ctx];
        let idx = Tensor::from_vec(targets.to_vec(), (targets.len(), 1), log_probs.device())?;
        let picked = log_probs.gather(&idx, 1)?.squeeze(1)?.to_vec1::<f32>()?;
        for lp in picked {
            nll.add(-(lp as f64));
        }
        if !args.json {
            print!("[{}]{:.4},", c + 1, nll.ppl());
            std::io::stdout().flush().ok();
        }
        if c == 0 {
            let per = start.elapsed().as_secs_f64();
            eprintln!("perplexity: {:.2} s per chunk, ETA {:.1} s", per, per * (n_chunks - 1) as f64);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "model": args.model.model.display().to_string(), "ctx": args.ctx, "chunks": n_chunks,
                "scored_tokens": nll.count, "ppl": nll.ppl(), "ppl_stderr": nll.stderr(), "seconds": secs,
            })
        );
    } else {
        println!();
        println!("Final estimate: PPL = {:.4} +/- {:.5}", nll.ppl(), nll.stderr());
        eprintln!("perplexity: {} tokens scored in {secs:.1} s", nll.count);
    }
    Ok(())
}

/// `log_softmax` over the last dim, in f32 (max-subtracted for stability).
fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?;
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&lse)?)
}
