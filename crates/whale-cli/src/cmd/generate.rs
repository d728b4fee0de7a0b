//! `whale generate`: continue a prompt given as token ids (text prompts arrive with the
//! tokenizer).

use crate::model_args::{parse_ids, ModelArgs};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Prompt as comma-separated token ids.
    #[arg(long)]
    prompt_ids: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Print `{"ids": [...]}` (the generated ids) instead of one id per line.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let prompt = parse_ids(&args.prompt_ids, "--prompt-ids")?;
    if args.temperature != 0.0 {
        bail!("only --temperature 0 (greedy) is supported for token-id prompts so far");
    }
    let model = args.model.load()?;
    let mut cache = model.new_cache();
    let mut input = Tensor::from_vec(prompt.clone(), (1, prompt.len()), &Device::Cpu)?;
    let eos = model.info().eos_token_ids.clone();
    let mut out = Vec::with_capacity(args.max_tokens);
    for _ in 0..args.max_tokens {
        let logits = model.forward_last(&input, &mut cache)?;
        let next = whale_model::causal_lm::argmax_last(&logits)?[0];
        out.push(next);
        if !args.json {
            println!("{next}");
        }
        if eos.contains(&next) {
            break;
        }
        input = Tensor::from_vec(vec![next], (1, 1), &Device::Cpu)?;
    }
    if args.json {
        println!("{}", serde_json::json!({ "ids": out }));
    }
    Ok(())
}
