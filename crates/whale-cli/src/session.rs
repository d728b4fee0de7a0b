//! A model (behind its engine) with its tokenizer, and one generation turn in text: prompt
//! ids → engine → `OutputAssembler` deltas (reasoning, content), with the thinking budget,
//! stop strings, cancellation (Ctrl-C) and the usage counts a person or a script wants to see.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use whale_engine::{Engine, EngineConfig, EngineHandle, Event, FinishReason, GenerationOptions, Request, SamplingParams, ThinkingBudget};
use whale_model::{CausalLm, ModelInfo};
use whale_text::output::{OutputAssembler, OutputDelta, ReasoningMode};
use whale_text::tokenizer::Tokenizer;

pub struct TextModel {
    pub engine: EngineHandle,
    pub tokenizer: Tokenizer,
}

/// Finds the tokenizer: `--tokenizer` if given, else the model folder's `tokenizer.json`.
pub fn tokenizer_for(model_dir: &Path, explicit: Option<&Path>) -> Result<Tokenizer> {
    match explicit {
        Some(p) => crate::cmd::tokenize::open_tokenizer(p),
        // A GGUF file carries its own tokenizer.
        None if model_dir.is_file() && whale_model::gguf::is_gguf_path(model_dir) => {
            crate::cmd::tokenize::open_tokenizer(model_dir)
        }
        None => {
            let path = model_dir.join("tokenizer.json");
            if !path.exists() {
                bail!(
                    "{} has no tokenizer.json: pass --tokenizer PATH (a tokenizer.json, a folder with one, or a .gguf), \
                     or give token ids with --prompt-ids",
                    model_dir.display()
                );
            }
            crate::cmd::tokenize::open_tokenizer(&path)
        }
    }
}

impl TextModel {
    /// Checks that every token id the tokenizer can produce exists in the model, and starts
    /// the engine that will own the model.
    pub fn new(model: Box<dyn CausalLm>, tokenizer: Tokenizer) -> Result<Self> {
        Self::with_engine(model, tokenizer, EngineConfig::default())
    }

    /// Also sizes the context to the memory there is (`crate::memory::context_for`).
    pub fn with_engine(model: Box<dyn CausalLm>, tokenizer: Tokenizer, mut cfg: EngineConfig) -> Result<Self> {
        let (tv, mv) = (tokenizer.vocab_size(), model.info().vocab_size);
        if tv > mv {
            bail!(
                "tokenizer {} has {tv} tokens but the model's vocab_size is {mv}: they do not belong together",
                tokenizer.source().display()
            );
        }
        let per_token = model.new_cache().bytes_per_token();
        let context = model.info().max_position_embeddings;
        cfg.max_context = Some(crate::memory::context_for(context, cfg.max_context, per_token, cfg.max_batch, crate::memory::available())?);
        let engine = Engine::start(model, cfg).context("starting the engine")?;
        Ok(Self { engine, tokenizer })
    }

    pub fn info(&self) -> &ModelInfo {
        self.engine.model_info()
    }

    /// How the output's `<think>` block is recognised for a prompt.
    pub fn reasoning_mode(&self, think_prefilled: bool) -> ReasoningMode {
        match (self.tokenizer.think_end_id().is_some(), think_prefilled) {
            (false, _) => ReasoningMode::Off,
            (true, true) => ReasoningMode::Prefilled,
            (true, false) => ReasoningMode::Detect,
        }
    }

    fn budget(&self, n: usize, mode: ReasoningMode) -> Result<Option<ThinkingBudget>> {
        if mode == ReasoningMode::Off {
            bail!("--thinking-budget needs a reasoning model: the tokenizer has no </think> token");
        }
        let close = self.tokenizer.encode("</think>", false)?;
        let suffix = self.tokenizer.encode("\n\n", false)?;
        let budget = ThinkingBudget::new(n, close)?.with_suffix(&suffix);
        Ok(Some(match mode {
            ReasoningMode::Detect => budget.awaiting_open_tag(self.tokenizer.encode("<think>", false)?)?,
            _ => budget,
        }))
    }
}

#[derive(Debug, Clone, Default)]
pub struct TurnOptions {
    pub max_tokens: Option<usize>,
    pub stops: Vec<String>,
    pub thinking_budget: Option<usize>,
}

/// One token's record, for logprobs output.
pub struct TokenRecord {
    pub id: u32,
    pub logprob: f32,
    pub top_logprobs: Vec<(u32, f32)>,
}

pub struct Turn {
    pub reasoning: String,
    pub content: String,
    pub tokens: Vec<TokenRecord>,
    /// "stop", "length" or "cancelled".
    pub finish_reason: &'static str,
    pub prompt_tokens: usize,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: usize,
    pub reasoning_tokens: usize,
    pub seconds: f64,
    pub seed: u64,
}

impl Turn {
    pub fn completion_tokens(&self) -> usize {
        self.tokens.len()
    }

    pub fn tokens_per_second(&self) -> f64 {
        self.tokens.len() as f64 / self.seconds.max(1e-9)
    }
}

impl TextModel {
    /// Generates from `prompt` (ids), calling `on_delta` with text as it becomes visible.
    /// Setting `cancel` stops after the current token.
    pub fn turn(
        &self,
        prompt: &[u32],
        mode: ReasoningMode,
        params: SamplingParams,
        opts: &TurnOptions,
        cancel: &AtomicBool,
        mut on_delta: impl FnMut(&OutputDelta),
    ) -> Result<Turn> {
        let mut stop_ids: std::collections::BTreeSet<u32> = self.tokenizer.eos_ids().clone();
        stop_ids.extend(self.info().eos_token_ids.iter().copied());
        let gen_opts = GenerationOptions {
            max_tokens: opts.max_tokens,
            stop_ids,
            thinking_budget: match opts.thinking_budget {
                Some(n) => self.budget(n, mode)?,
                None => None,
            },
        };
        let mut stream = self.engine.submit(Request::new(prompt.to_vec(), params, gen_opts))?;
        let mut out = OutputAssembler::new(&self.tokenizer, &opts.stops, mode)?;
        let mut turn = Turn {
            reasoning: String::new(),
            content: String::new(),
            tokens: Vec::new(),
            finish_reason: "length",
            prompt_tokens: prompt.len(),
            cached_tokens: 0,
            reasoning_tokens: 0,
            seconds: 0.0,
            seed: 0,
        };
        let mut emit = |d: OutputDelta, turn: &mut Turn| {
            turn.reasoning.push_str(&d.reasoning);
            turn.content.push_str(&d.content);
            if !d.reasoning.is_empty() || !d.content.is_empty() {
                on_delta(&d);
            }
        };
        let start = Instant::now();
        let mut cancelled = false;
        let mut finish = None;
        // Dropping the stream (on a stop string or Ctrl-C) cancels the request in the engine.
        while let Some(ev) = stream.blocking_recv() {
            let t = match ev {
                Event::Token(t) => t,
                Event::Done(done) => {
                    turn.seed = done.seed;
                    turn.cached_tokens = done.usage.prompt_cache_hit_tokens;
                    finish = Some(done.finish);
                    break;
                }
                Event::Error(e) => bail!("generation failed: {e}"),
            };
            let was_reasoning = out.in_reasoning();
            turn.tokens.push(TokenRecord { id: t.token, logprob: t.logprob, top_logprobs: t.top_logprobs });
            let d = out.push(t.token)?;
            // Inside the block before and after: the tags themselves are not counted.
            if was_reasoning && out.in_reasoning() {
                turn.reasoning_tokens += 1;
            }
            let stopped = d.stopped;
            emit(d, &mut turn);
            if stopped {
                break;
            }
            if cancel.load(Ordering::Relaxed) {
                cancelled = true;
                break;
            }
        }
        drop(stream);
        let d = out.finish()?;
        emit(d, &mut turn);
        turn.seconds = start.elapsed().as_secs_f64();
        turn.finish_reason = if cancelled {
            "cancelled"
        } else if out.stopped() {
            "stop"
        } else {
            match finish {
                Some(FinishReason::Stop) => "stop",
                _ => "length",
            }
        };
        Ok(turn)
    }
}
