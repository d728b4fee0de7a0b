//! One generation in text: submit a [`GenPlan`] to the engine, then read it back as pieces of
//! visible text (reasoning and content, split at `</think>`, cut at stop strings) with their
//! tokens' logprobs, and a final [`Finish`] with the usage. Chat and text completions, whole
//! or streamed, all read generations through this, so every route produces the same text.
//!
//! Cancellation: the engine request lives in this struct; dropping it (the client went away,
//! a stop string ended the text) cancels the request at the next token boundary.

use crate::api::common::UsageBody;
use crate::error::ApiError;
use crate::state::AppState;
use crate::validation::GenPlan;
use std::collections::{BTreeSet, HashMap};
use whale_engine::{
    Event, FinishReason, GenerationOptions, Request, RequestStream, ThinkingBudget,
};
use whale_text::output::{OutputAssembler, ReasoningMode};
use whale_text::Tokenizer;

/// A token with its text, for logprobs.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub text: String,
    pub logprob: f32,
    pub top: Vec<(String, f32)>,
}

/// Newly visible text and the tokens it came from.
#[derive(Debug, Clone, Default)]
pub struct Piece {
    pub reasoning: String,
    pub content: String,
    /// Tokens since the previous piece (only when logprobs were asked for).
    pub tokens: Vec<TokenInfo>,
}

#[derive(Debug, Clone)]
pub struct Finish {
    /// OpenAI's `finish_reason`: "stop" or "length".
    pub reason: &'static str,
    pub usage: UsageBody,
}

pub enum Step {
    Piece(Piece),
    Finished(Finish),
}

pub struct TextGen {
    state: AppState,
    model: String,
    stream: Option<RequestStream>,
    out: OutputAssembler,
    logprobs: bool,
    prompt_tokens: usize,
    completion_tokens: usize,
    reasoning_tokens: usize,
    held: Vec<TokenInfo>,
    finish: Option<Finish>,
    done: bool,
    /// Special tokens whose text the content must keep (tool-call markers): the decoder
    /// leaves special tokens out.
    shown: HashMap<u32, String>,
}

/// Submits the plan. Fails before any model work on a bad plan or an overloaded engine.
pub fn start(state: &AppState, model: &str, plan: GenPlan) -> Result<TextGen, ApiError> {
    let tok = state.tokenizer();
    let mut stop_ids: BTreeSet<u32> = tok.eos_ids().clone();
    stop_ids.extend(state.engine().model_info().eos_token_ids.iter().copied());
    let thinking_budget = match plan.thinking_budget {
        Some(n) => Some(thinking_budget(tok, n, plan.mode)?),
        None => None,
    };
    let options = GenerationOptions {
        max_tokens: Some(plan.max_tokens),
        stop_ids,
        thinking_budget,
    };
    let out = OutputAssembler::new(tok, &plan.stops, plan.mode)?;
    let prompt_tokens = plan.prompt.len();
    let mut req = Request::new(plan.prompt, plan.params, options);
    if plan.json_mode {
        req.constraint = Some(Box::new(crate::json_mode::JsonConstraint::new(
            state.token_texts(),
            plan.mode == ReasoningMode::Prefilled,
            tok.think_end_id(),
        )));
    }
    let stream = state.engine().submit(req)?;
    Ok(TextGen {
        state: state.clone(),
        model: model.to_string(),
        stream: Some(stream),
        out,
        logprobs: plan.logprobs.is_some(),
        prompt_tokens,
        completion_tokens: 0,
        reasoning_tokens: 0,
        held: Vec::new(),
        finish: None,
        done: false,
        shown: HashMap::new(),
    })
}

/// Caps the think block as `whale chat` does: after `n` reasoning tokens, `</think>\n\n`.
fn thinking_budget(
    tok: &Tokenizer,
    n: usize,
    mode: ReasoningMode,
) -> Result<ThinkingBudget, ApiError> {
    let bad = |m: String| ApiError::invalid("thinking_budget", m);
    if mode == ReasoningMode::Off {
        return Err(bad(
            "thinking_budget needs a reasoning model and prompt: this output has no think block"
                .into(),
        ));
    }
    let close = tok.encode("</think>", false)?;
    let suffix = tok.encode("\n\n", false)?;
    let budget = ThinkingBudget::new(n, close)
        .map_err(|e| bad(e.to_string()))?
        .with_suffix(&suffix);
    match mode {
        ReasoningMode::Detect => budget
            .awaiting_open_tag(tok.encode("<think>", false)?)
            .map_err(|e| bad(e.to_string())),
        _ => Ok(budget),
    }
}

impl TextGen {
    /// Keeps the text of these special tokens in the content (outside the think block).
    pub fn show_special_tokens(&mut self, tokens: HashMap<u32, String>) {
        self.shown = tokens;
    }

    /// The next piece of text, then one `Finished`, then `None`.
    pub async fn next(&mut self) -> Result<Option<Step>, ApiError> {
        if let Some(f) = self.finish.take() {
            self.done = true;
            return Ok(Some(Step::Finished(f)));
        }
        if self.done {
            return Ok(None);
        }
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return Ok(None);
            };
            let event = stream.recv().await;
            match event {
                Some(Event::Token(t)) => {
                    self.completion_tokens += 1;
                    if self.logprobs {
                        let info = self.token_info(t.token, t.logprob, &t.top_logprobs);
                        self.held.push(info);
                    }
                    let was_reasoning = self.out.in_reasoning();
                    let mut d = self.out.push(t.token)?;
                    if let Some(text) = self.shown.get(&t.token) {
                        if !self.out.in_reasoning() && !d.stopped {
                            d.content.push_str(text);
                        }
                    }
                    // Tokens inside the block before and after: the tags are not counted.
                    if was_reasoning && self.out.in_reasoning() {
                        self.reasoning_tokens += 1;
                    }
                    if d.stopped {
                        let hit = self
                            .stream
                            .as_ref()
                            .and_then(RequestStream::prompt_cache_hit_tokens)
                            .unwrap_or(0);
                        // Dropping the engine stream cancels the rest of the generation.
                        self.stream = None;
                        let tail = self.out.finish()?;
                        self.finish = Some(self.make_finish("stop", hit));
                        return Ok(Some(Step::Piece(
                            self.piece(d.reasoning + &tail.reasoning, d.content + &tail.content),
                        )));
                    }
                    if !d.reasoning.is_empty() || !d.content.is_empty() {
                        return Ok(Some(Step::Piece(self.piece(d.reasoning, d.content))));
                    }
                }
                Some(Event::Done(c)) => {
                    self.stream = None;
                    let tail = self.out.finish()?;
                    let reason = match c.finish {
                        FinishReason::Stop => "stop",
                        FinishReason::Length | FinishReason::ContextFull => "length",
                    };
                    self.completion_tokens = c.usage.completion_tokens;
                    self.finish = Some(self.make_finish(reason, c.usage.prompt_cache_hit_tokens));
                    return Ok(Some(Step::Piece(self.piece(tail.reasoning, tail.content))));
                }
                Some(Event::Error(e)) => {
                    self.stream = None;
                    self.done = true;
                    return Err(ApiError::Internal(e));
                }
                None => {
                    self.stream = None;
                    self.done = true;
                    return Err(ApiError::EngineStopped);
                }
            }
        }
    }

    fn piece(&mut self, reasoning: String, content: String) -> Piece {
        Piece {
            reasoning,
            content,
            tokens: std::mem::take(&mut self.held),
        }
    }

    fn token_info(&self, id: u32, logprob: f32, top: &[(u32, f32)]) -> TokenInfo {
        let text = |id: u32| {
            self.state
                .tokenizer()
                .decode(&[id], false)
                .unwrap_or_default()
        };
        TokenInfo {
            text: text(id),
            logprob,
            top: top.iter().map(|&(t, lp)| (text(t), lp)).collect(),
        }
    }

    fn make_finish(&self, reason: &'static str, cache_hit: usize) -> Finish {
        let hit = cache_hit.min(self.prompt_tokens);
        let miss = self.prompt_tokens - hit;
        let cost = self
            .state
            .config()
            .prices
            .cost(&self.model, hit, miss, self.completion_tokens);
        let usage = UsageBody {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: self.prompt_tokens + self.completion_tokens,
            prompt_cache_hit_tokens: hit,
            prompt_cache_miss_tokens: miss,
            prompt_tokens_details: crate::api::common::PromptTokensDetails { cached_tokens: hit },
            completion_tokens_details: crate::api::common::CompletionTokensDetails {
                reasoning_tokens: self.reasoning_tokens,
            },
            cost,
        };
        self.state.metrics().record_usage(&usage);
        Finish { reason, usage }
    }
}

/// A whole generation, for non-streamed responses.
pub struct Collected {
    pub reasoning: String,
    pub content: String,
    pub tokens: Vec<TokenInfo>,
    pub finish: Finish,
}

pub async fn collect(mut gen: TextGen) -> Result<Collected, ApiError> {
    let (mut reasoning, mut content, mut tokens) = (String::new(), String::new(), Vec::new());
    while let Some(step) = gen.next().await? {
        match step {
            Step::Piece(p) => {
                reasoning.push_str(&p.reasoning);
                content.push_str(&p.content);
                tokens.extend(p.tokens);
            }
            Step::Finished(finish) => {
                return Ok(Collected {
                    reasoning,
                    content,
                    tokens,
                    finish,
                })
            }
        }
    }
    Err(ApiError::Internal(
        "the generation ended without a finish".into(),
    ))
}
