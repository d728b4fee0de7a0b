//! `POST /v1/completions`: raw text continuation in OpenAI's legacy `text_completion` shape.
//! The prompt is tokenized with the tokenizer's BOS and no chat template; no reasoning split.

use crate::api::common::{response_id, unix_now, UsageBody};
use crate::api::completions::{
    Completion, CompletionChoice, CompletionRequest, LegacyLogprobs, Prompt,
};
use crate::error::ApiError;
use crate::generation::{self, Finish, Piece, TokenInfo};
use crate::json::ApiJson;
use crate::sse::{self, ChunkFormat};
use crate::state::AppState;
use crate::validation::{self, SamplingFields};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use whale_text::output::ReasoningMode;

/// OpenAI's default `max_tokens` for text completions.
const DEFAULT_MAX_TOKENS: usize = 16;

pub async fn completions(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    state.check_model(&req.model)?;
    if req.echo == Some(true) {
        return Err(ApiError::invalid("echo", "`echo` is not supported"));
    }
    let prompt = match (req.prompt, req.suffix.as_deref().filter(|s| !s.is_empty())) {
        (prompt, None) => text_prompt(&state, prompt)?,
        (Prompt::Text(t), Some(suffix)) => crate::fim::fim_prompt(state.tokenizer(), &t, suffix)?,
        (Prompt::Texts(v), Some(suffix)) if v.len() == 1 => {
            crate::fim::fim_prompt(state.tokenizer(), &v[0], suffix)?
        }
        (_, Some(_)) => {
            return Err(ApiError::invalid(
                "prompt",
                "fill-in-the-middle (`suffix`) needs one text prompt (not token ids)",
            ))
        }
    };
    let vocab = state.engine().model_info().vocab_size;
    if let Some(bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
        return Err(ApiError::invalid(
            "prompt",
            format!("token id {bad} is out of range: the model's vocabulary has {vocab} ids"),
        ));
    }
    let fields = SamplingFields {
        temperature: req.temperature,
        top_p: req.top_p,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        seed: req.seed,
        max_tokens: req.max_tokens,
        stop: req.stop,
        logit_bias: req.logit_bias,
        logprobs: req.logprobs,
        n: req.n,
    };
    let plan = validation::plan(
        &state,
        prompt,
        ReasoningMode::Off,
        fields,
        DEFAULT_MAX_TOKENS,
    )?;
    let want_logprobs = plan.logprobs.is_some();
    let gen = generation::start(&state, &req.model, plan)?;
    let base = Base {
        id: response_id("cmpl"),
        created: unix_now(),
        model: req.model,
        fingerprint: state.system_fingerprint(),
    };
    if req.stream == Some(true) {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        return Ok(sse::response(
            gen,
            TextFormat {
                base,
                include_usage,
                logprobs: want_logprobs,
                offset: 0,
            },
        ));
    }
    let done = generation::collect(gen).await?;
    let logprobs = want_logprobs.then(|| legacy_logprobs(&done.tokens, 0));
    let choice = CompletionChoice {
        index: 0,
        text: done.content,
        logprobs,
        finish_reason: Some(done.finish.reason),
    };
    Ok(Json(base.body(vec![choice], Some(Some(done.finish.usage)))).into_response())
}

/// A prompt without FIM: text (with the tokenizer's BOS) or token ids.
fn text_prompt(state: &AppState, prompt: Prompt) -> Result<Vec<u32>, ApiError> {
    Ok(match prompt {
        Prompt::Ids(ids) => ids,
        Prompt::Text(t) => state.tokenizer().encode(&t, true)?,
        Prompt::Texts(mut v) if v.len() == 1 => state.tokenizer().encode(&v.remove(0), true)?,
        Prompt::Texts(v) => {
            return Err(ApiError::invalid(
                "prompt",
                format!(
                    "{} prompts given; only one prompt per request is supported",
                    v.len()
                ),
            ))
        }
    })
}

struct Base {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
}

impl Base {
    fn body(&self, choices: Vec<CompletionChoice>, usage: Option<Option<UsageBody>>) -> Completion {
        Completion {
            id: self.id.clone(),
            object: "text_completion",
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: self.fingerprint.clone(),
            choices,
            usage,
        }
    }
}

/// `offset`: characters of text before these tokens (for `text_offset`).
fn legacy_logprobs(tokens: &[TokenInfo], offset: usize) -> LegacyLogprobs {
    let mut lp = LegacyLogprobs::default();
    let mut at = offset;
    for t in tokens {
        lp.tokens.push(t.text.clone());
        lp.token_logprobs.push(t.logprob);
        lp.top_logprobs.push(t.top.iter().cloned().collect());
        lp.text_offset.push(at);
        at += t.text.chars().count();
    }
    lp
}

struct TextFormat {
    base: Base,
    include_usage: bool,
    logprobs: bool,
    offset: usize,
}

impl TextFormat {
    fn chunk(&self, choices: Vec<CompletionChoice>, usage: Option<UsageBody>) -> Bytes {
        sse::event(&self.base.body(choices, self.include_usage.then_some(usage)))
    }
}

impl ChunkFormat for TextFormat {
    fn start(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn piece(&mut self, p: Piece) -> Vec<Bytes> {
        if p.content.is_empty() && (!self.logprobs || p.tokens.is_empty()) {
            return Vec::new();
        }
        let logprobs = self
            .logprobs
            .then(|| legacy_logprobs(&p.tokens, self.offset));
        self.offset += p.content.chars().count();
        vec![self.chunk(
            vec![CompletionChoice {
                index: 0,
                text: p.content,
                logprobs,
                finish_reason: None,
            }],
            None,
        )]
    }

    fn finish(&mut self, f: Finish) -> Vec<Bytes> {
        let mut out = vec![self.chunk(
            vec![CompletionChoice {
                index: 0,
                text: String::new(),
                logprobs: None,
                finish_reason: Some(f.reason),
            }],
            None,
        )];
        if self.include_usage {
            out.push(self.chunk(vec![], Some(f.usage)));
        }
        out
    }
}
