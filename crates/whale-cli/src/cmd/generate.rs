//! `whale generate`: continue a prompt — text (through the model's chat template unless
//! `--raw`) or token ids — streaming the output as it is produced.

use crate::model_args::{parse_ids, ModelArgs};
use crate::sampling_args::{SamplingArgs, TextArgs};
use crate::session::{tokenizer_for, TextModel, TurnOptions};
use crate::terminal::Printer;
use anyhow::{bail, Result};
use std::sync::atomic::AtomicBool;
use whale_engine::{GenerationOptions, Generator};
use whale_text::chat_template::{ChatMessage, RenderOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    text: TextArgs,
    /// The prompt text (a user message, rendered with the chat template unless --raw).
    #[arg(long, conflicts_with = "prompt_ids")]
    prompt: Option<String>,
    /// The prompt as comma-separated token ids (no tokenizer needed).
    #[arg(long)]
    prompt_ids: Option<String>,
    /// Feed --prompt as is, without the chat template.
    #[arg(long)]
    raw: bool,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 1024)]
    max_tokens: usize,
    /// Print one JSON object at the end instead of streaming text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let params = args.sampling.params()?;
    match (&args.prompt, &args.prompt_ids) {
        (None, None) => bail!("give a prompt: --prompt TEXT or --prompt-ids 1,2,3"),
        (None, Some(ids)) if args.text.tokenizer.is_none() && !args.model.model.join("tokenizer.json").exists() => {
            // Token ids in, token ids out: no tokenizer needed.
            return ids_only(&args, &parse_ids(ids, "--prompt-ids")?, params);
        }
        _ => {}
    }
    let model = args.model.load()?;
    let tokenizer = tokenizer_for(&args.model.model, args.text.tokenizer.as_deref())?;
    let tm = TextModel::new(model, tokenizer)?;
    let (prompt, mode) = match (&args.prompt, &args.prompt_ids) {
        (Some(text), _) if args.raw || tm.tokenizer.chat_template().is_none() => {
            (tm.tokenizer.encode(text, true)?, tm.reasoning_mode(whale_text::chat_template::ends_with_open_think(text)))
        }
        (Some(text), _) => {
            let mut messages = Vec::new();
            if let Some(s) = &args.text.system {
                messages.push(ChatMessage::system(s.clone()));
            }
            messages.push(ChatMessage::user(text.clone()));
            let opts = RenderOptions { add_generation_prompt: true, ..Default::default() };
            let (rendered, ids) = tm.tokenizer.encode_chat(&messages, &opts)?;
            (ids, tm.reasoning_mode(rendered.think_prefilled))
        }
        (None, Some(ids)) => (parse_ids(ids, "--prompt-ids")?, tm.reasoning_mode(false)),
        (None, None) => unreachable!("checked above"),
    };
    let opts = TurnOptions { max_tokens: Some(args.max_tokens), stops: args.text.stop.clone(), thinking_budget: args.text.thinking_budget };
    let never = AtomicBool::new(false);
    let mut printer = Printer::stdout(true);
    let turn = tm.turn(&prompt, mode, params, &opts, &never, |d| {
        if !args.json {
            printer.delta(d);
        }
    })?;
    if args.json {
        let ids: Vec<u32> = turn.tokens.iter().map(|t| t.id).collect();
        let mut out = serde_json::json!({
            "ids": ids,
            "text": tm.tokenizer.decode(&ids, true)?,
            "reasoning_content": turn.reasoning,
            "content": turn.content,
            "finish_reason": turn.finish_reason,
            "seed": turn.seed,
            "usage": {
                "prompt_tokens": turn.prompt_tokens,
                "completion_tokens": turn.completion_tokens(),
                "reasoning_tokens": turn.reasoning_tokens,
            },
        });
        if args.sampling.top_logprobs > 0 {
            out["logprobs"] = turn
                .tokens
                .iter()
                .map(|t| serde_json::json!({ "token": t.id, "logprob": t.logprob, "top_logprobs": t.top_logprobs }))
                .collect();
        }
        println!("{out}");
    } else {
        printer.end();
        eprintln!(
            "[{} prompt + {} generated tokens ({} reasoning), {:.1} tok/s, finish: {}]",
            turn.prompt_tokens,
            turn.completion_tokens(),
            turn.reasoning_tokens,
            turn.tokens_per_second(),
            turn.finish_reason
        );
    }
    Ok(())
}

/// Generation for a model folder without a tokenizer: ids in, ids out.
fn ids_only(args: &Args, prompt: &[u32], params: whale_engine::SamplingParams) -> Result<()> {
    if !args.text.stop.is_empty() || args.text.thinking_budget.is_some() {
        bail!("--stop and --thinking-budget need a tokenizer (--tokenizer PATH)");
    }
    let model = args.model.load()?;
    let opts = GenerationOptions {
        max_tokens: Some(args.max_tokens),
        stop_ids: model.info().eos_token_ids.iter().copied().collect(),
        thinking_budget: None,
    };
    let mut gen = Generator::new(model.as_ref(), prompt, params, opts)?;
    let mut ids = Vec::new();
    while let Some(t) = gen.next_token()? {
        if !args.json {
            println!("{}", t.token);
        }
        ids.push(t.token);
    }
    if args.json {
        let reason = gen.finish_reason().map_or("length", |r| r.as_str());
        println!(
            "{}",
            serde_json::json!({ "ids": ids, "finish_reason": reason, "seed": gen.seed(),
                "usage": { "prompt_tokens": prompt.len(), "completion_tokens": ids.len() } })
        );
    }
    Ok(())
}
