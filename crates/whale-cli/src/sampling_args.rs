//! Sampling flags shared by `generate` and `chat`. Unset flags take DeepSeek-R1's published
//! settings (temperature 0.6, top-p 0.95); `--temperature 0` is greedy.

use anyhow::{Context, Result};
use clap::Args;
use std::collections::HashMap;
use whale_engine::SamplingParams;

#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Sampling temperature, 0 = greedy [default: 0.6].
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus sampling: keep the smallest set of tokens with this much probability [default: 0.95].
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Keep only the k most likely tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Drop tokens less likely than min_p times the most likely one (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub min_p: f32,
    /// CTRL-style repetition penalty over prompt and output (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// OpenAI-style frequency penalty over the output.
    #[arg(long, default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// OpenAI-style presence penalty over the output.
    #[arg(long, default_value_t = 0.0)]
    pub presence_penalty: f32,
    /// Additive logit bias, `ID:BIAS` (repeatable), e.g. `--logit-bias 13:-100`.
    #[arg(long, value_name = "ID:BIAS")]
    pub logit_bias: Vec<String>,
    /// Seed for reproducible sampling (random when unset; printed with --json).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Report the N most likely alternatives of every token (with --json).
    #[arg(long, default_value_t = 0)]
    pub top_logprobs: usize,
}

impl SamplingArgs {
    pub fn params(&self) -> Result<SamplingParams> {
        let r1 = SamplingParams::r1_defaults();
        let mut logit_bias = HashMap::new();
        for spec in &self.logit_bias {
            let (id, bias) = spec.split_once(':').with_context(|| format!("--logit-bias {spec:?}: expected ID:BIAS, e.g. 13:-100"))?;
            let id: u32 = id.trim().parse().with_context(|| format!("--logit-bias {spec:?}: {id:?} is not a token id"))?;
            let bias: f32 = bias.trim().parse().with_context(|| format!("--logit-bias {spec:?}: {bias:?} is not a number"))?;
            logit_bias.insert(id, bias);
        }
        let params = SamplingParams {
            temperature: self.temperature.unwrap_or(r1.temperature),
            top_p: self.top_p.unwrap_or(r1.top_p),
            top_k: self.top_k,
            min_p: self.min_p,
            repetition_penalty: self.repetition_penalty,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            logit_bias,
            seed: self.seed,
            top_logprobs: self.top_logprobs,
            ..r1
        };
        params.validate()?;
        Ok(params)
    }
}

/// Text-generation flags `generate` and `chat` share besides sampling.
#[derive(Args, Debug, Clone)]
pub struct TextArgs {
    /// Tokenizer (tokenizer.json, a folder, or a .gguf); default: the model folder's.
    #[arg(long)]
    pub tokenizer: Option<std::path::PathBuf>,
    /// A system message (through the chat template).
    #[arg(long)]
    pub system: Option<String>,
    /// Stop when this text appears (repeatable); it is not printed.
    #[arg(long)]
    pub stop: Vec<String>,
    /// Most reasoning tokens before `</think>` is forced (reasoning models).
    #[arg(long)]
    pub thinking_budget: Option<usize>,
}
