//! `whale serve`: the DeepSeek/OpenAI-compatible HTTP API (whale-server) over one model, on
//! loopback by default. The port is bound before the model loads, so a busy port fails at
//! once; prefix-cache blocks go to `--cache-dir` and survive restarts.

use crate::engine_args::EngineArgs;
use crate::model_args::ModelArgs;
use crate::session::{tokenizer_for, TextModel};
use anyhow::{Context, Result};
use std::path::PathBuf;
use whale_server::{ApiKeys, AppState, PriceTable, ServerConfig};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    engine: EngineArgs,
    /// Tokenizer (tokenizer.json, a folder, or a .gguf); default: the model folder's.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Address to listen on (0.0.0.0 exposes the server to the network).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Require `Authorization: Bearer KEY` with a key from this file (one per line).
    #[arg(long)]
    api_key_file: Option<PathBuf>,
    /// Prices per model as JSON (default: DeepSeek-R1's, ¥1 / ¥4 / ¥16 per 1M tokens).
    #[arg(long)]
    price_file: Option<PathBuf>,
    /// A name the model answers to (repeatable) [default: the folder's name, deepseek-reasoner, deepseek-chat].
    #[arg(long = "served-model-name")]
    served_model_names: Vec<String>,
    /// max_tokens of chat requests that give none.
    #[arg(long, default_value_t = 4096)]
    default_max_tokens: usize,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 4)]
    max_body_mb: usize,
    /// Skip the warm-up forwards before listening.
    #[arg(long)]
    no_warmup: bool,
}

pub fn run(args: Args) -> Result<()> {
    let (listener, state) = prepare(&args)?;
    whale_server::run(listener, state)?;
    Ok(())
}

/// Binds the port, loads the model and builds the server state, saying what is served where.
pub fn prepare(args: &Args) -> Result<(std::net::TcpListener, AppState)> {
    let listener = whale_server::bind(&args.host, args.port)?;
    let mut cfg = ServerConfig::new(model_names(args));
    cfg.default_max_tokens = args.default_max_tokens;
    cfg.max_body_bytes = args.max_body_mb << 20;
    if let Some(p) = &args.price_file {
        cfg.prices = PriceTable::from_file(p)?;
    }
    if let Some(p) = &args.api_key_file {
        cfg.api_keys = Some(ApiKeys::from_file(p)?);
    }
    let loopback = args
        .host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    if cfg.api_keys.is_none() && !loopback {
        eprintln!(
            "warning: serving on {} without --api-key-file: anyone who can reach it can use it",
            args.host
        );
    }
    let tokenizer = tokenizer_for(&args.model.model, args.tokenizer.as_deref())?;
    if tokenizer.chat_template().is_none() {
        eprintln!(
            "warning: {} has no chat template: only /v1/completions will work",
            tokenizer.source().display()
        );
    }
    let model = args.model.load()?;
    if !args.no_warmup {
        warm_up(model.as_ref()).context("the warm-up forwards")?;
    }
    let tm = TextModel::with_engine(model, tokenizer, args.engine.config(&args.model)?)?;
    let addr = listener.local_addr().context("reading the bound address")?;
    eprintln!(
        "whale serve: {} as {} on http://{addr}/v1",
        args.model.model.display(),
        cfg.model_names.join(", ")
    );
    Ok((listener, AppState::new(tm.engine, tm.tokenizer, cfg)))
}

/// Prompt tokens of the warm-up prefill: candle's quantized matmul repacks a weight on its
/// first call, differently for 32 rows or more (Q4_K into AMX tiles where the CPU has them)
/// than for fewer, so the warm-up runs both sizes.
const WARMUP_PREFILL: usize = 32;

/// A prefill and a decode step before the server listens, as llama-server warms up, so that
/// a fresh process's first request does not pay for the weights' repacking. Measured on the
/// Qwen2-1.5B shape (Q4_K_M), the first request after a restart took 5.9 s with its prefix
/// read from disk, against 1.2 s for the next one; `perf` showed candle's `pack_q4k_amx`.
fn warm_up(model: &dyn whale_model::CausalLm) -> Result<()> {
    let id = (model.info().vocab_size.saturating_sub(1) as u32).min(1);
    let len = WARMUP_PREFILL.min(model.info().max_position_embeddings.saturating_sub(1)).max(1);
    let mut cache = model.new_cache();
    let prompt = candle_core::Tensor::new(vec![id; len].as_slice(), model.device())?.unsqueeze(0)?;
    model.forward_last(&prompt, &mut cache)?;
    let next = candle_core::Tensor::new(&[id], model.device())?.unsqueeze(0)?;
    model.forward_last(&next, &mut cache)?;
    Ok(())
}

fn model_names(args: &Args) -> Vec<String> {
    if !args.served_model_names.is_empty() {
        return args.served_model_names.clone();
    }
    let mut names = Vec::new();
    let path = args
        .model
        .model
        .canonicalize()
        .unwrap_or_else(|_| args.model.model.clone());
    let stem = if path.is_file() {
        path.file_stem()
    } else {
        path.file_name()
    };
    if let Some(name) = stem.and_then(|n| n.to_str()) {
        names.push(name.to_string());
    }
    // DeepSeek's names, so clients written for api.deepseek.com work unchanged.
    for n in ["deepseek-reasoner", "deepseek-chat"] {
        if !names.iter().any(|m| m == n) {
            names.push(n.to_string());
        }
    }
    names
}
