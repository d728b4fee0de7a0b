//! `POST /v1/chat/completions`: messages → chat template → engine → reasoning split →
//! `chat.completion` JSON or a stream of `chat.completion.chunk` events.

use crate::api::chat::{
    ChatChoice, ChatChunk, ChatCompletion, ChatCompletionRequest, ChatLogprobs, ChunkChoice, Delta,
    OutputMessage,
};
use crate::api::common::{response_id, unix_now, TokenLogprob, TopLogprob};
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

pub async fn chat_completions(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    state.check_model(&req.model)?;
    let logprobs = match (req.logprobs, req.top_logprobs) {
        (Some(true), k) => Some(k.unwrap_or(0)),
        (_, Some(k)) if k > 0 => {
            return Err(ApiError::invalid(
                "top_logprobs",
                "top_logprobs needs `logprobs: true`",
            ));
        }
        _ => None,
    };
    let json_mode = match req.response_format.as_ref().map(|f| f.kind.as_str()) {
        None | Some("text") => false,
        Some("json_object") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "response_format.type",
                format!(
                "response_format type {other:?} is not supported; use \"text\" or \"json_object\""
            ),
            ))
        }
    };
    let prompt = crate::prompt::chat_prompt(state.tokenizer(), &req.messages)?;
    let fields = SamplingFields {
        temperature: req.temperature,
        top_p: req.top_p,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        seed: req.seed,
        max_tokens: req.max_completion_tokens.or(req.max_tokens),
        stop: req.stop.clone(),
        logit_bias: req.logit_bias.clone(),
        logprobs,
        n: req.n,
    };
    let mut plan = validation::plan(
        &state,
        prompt.ids,
        prompt.mode,
        fields,
        state.config().default_max_tokens,
    )?;
    plan.thinking_budget = req.thinking_budget;
    plan.json_mode = json_mode;
    let gen = generation::start(&state, &req.model, plan)?;
    let id = response_id("chatcmpl");
    let (created, fingerprint) = (unix_now(), state.system_fingerprint());
    if req.stream == Some(true) {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let format = ChatFormat {
            id,
            created,
            model: req.model,
            fingerprint,
            include_usage,
            logprobs: logprobs.is_some(),
        };
        return Ok(sse::response(gen, format));
    }
    let done = generation::collect(gen).await?;
    let body = ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model: req.model,
        system_fingerprint: fingerprint,
        choices: vec![ChatChoice {
            index: 0,
            message: OutputMessage {
                role: "assistant",
                content: done.content,
                reasoning_content: (prompt.mode != whale_text::output::ReasoningMode::Off)
                    .then_some(done.reasoning),
            },
            logprobs: logprobs.map(|_| ChatLogprobs {
                content: done.tokens.iter().map(token_logprob).collect(),
            }),
            finish_reason: done.finish.reason,
        }],
        usage: done.finish.usage,
    };
    Ok(Json(body).into_response())
}

pub fn token_logprob(t: &TokenInfo) -> TokenLogprob {
    TokenLogprob {
        token: t.text.clone(),
        logprob: t.logprob,
        bytes: t.text.as_bytes().to_vec(),
        top_logprobs: t
            .top
            .iter()
            .map(|(text, lp)| TopLogprob {
                token: text.clone(),
                logprob: *lp,
                bytes: text.as_bytes().to_vec(),
            })
            .collect(),
    }
}

struct ChatFormat {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
    include_usage: bool,
    logprobs: bool,
}

impl ChatFormat {
    fn chunk(
        &self,
        choices: Vec<ChunkChoice>,
        usage: Option<crate::api::common::UsageBody>,
    ) -> Bytes {
        sse::event(&ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: self.fingerprint.clone(),
            choices,
            // OpenAI sends `"usage": null` on every chunk but the last when asked for usage.
            usage: self.include_usage.then_some(usage),
        })
    }

    fn delta(&self, delta: Delta, tokens: &[TokenInfo], finish: Option<&'static str>) -> Bytes {
        let logprobs = self.logprobs.then(|| ChatLogprobs {
            content: tokens.iter().map(token_logprob).collect(),
        });
        self.chunk(
            vec![ChunkChoice {
                index: 0,
                delta,
                logprobs,
                finish_reason: finish,
            }],
            None,
        )
    }
}

impl ChunkFormat for ChatFormat {
    fn start(&mut self) -> Vec<Bytes> {
        vec![self.delta(
            Delta {
                role: Some("assistant"),
                content: Some(String::new()),
                reasoning_content: None,
            },
            &[],
            None,
        )]
    }

    fn piece(&mut self, p: Piece) -> Vec<Bytes> {
        // DeepSeek streams reasoning and content in separate deltas, reasoning first.
        let mut out = Vec::new();
        let mut tokens = Some(p.tokens);
        if !p.reasoning.is_empty() {
            let t = tokens.take().unwrap_or_default();
            out.push(self.delta(
                Delta {
                    reasoning_content: Some(p.reasoning),
                    ..Default::default()
                },
                &t,
                None,
            ));
        }
        if !p.content.is_empty() {
            let t = tokens.take().unwrap_or_default();
            out.push(self.delta(
                Delta {
                    content: Some(p.content),
                    ..Default::default()
                },
                &t,
                None,
            ));
        }
        match tokens {
            // Logprobs of tokens whose text is all held back go out with an empty delta.
            Some(t) if self.logprobs && !t.is_empty() => {
                out.push(self.delta(Delta::default(), &t, None))
            }
            _ => {}
        }
        out
    }

    fn finish(&mut self, f: Finish) -> Vec<Bytes> {
        let mut out = vec![self.delta(Delta::default(), &[], Some(f.reason))];
        if self.include_usage {
            out.push(self.chunk(vec![], Some(f.usage)));
        }
        out
    }
}
