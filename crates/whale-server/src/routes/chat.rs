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
use crate::tool_parser::ToolCallParser;
use crate::tools::DeltaToolCall;
use crate::validation::{self, SamplingFields};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::HashMap;

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
    let tools = crate::tools::setup(&req)?;
    if tools.is_some() && json_mode {
        return Err(ApiError::invalid(
            "response_format",
            "response_format json_object cannot be combined with tools (set tool_choice \"none\")",
        ));
    }
    let prompt =
        crate::prompt::chat_prompt_with_tools(state.tokenizer(), &req.messages, tools.as_ref())?;
    // The parser reads the forced call opener first, as if the model had written it.
    let parser = tools.as_ref().map(|_| {
        let mut p = ToolCallParser::new();
        if let Some(prefill) = &prompt.answer_prefill {
            p.push(prefill);
        }
        p
    });
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
    let mut gen = generation::start(&state, &req.model, plan)?;
    if parser.is_some() {
        gen.show_special_tokens(special_markers(&state));
    }
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
            tools: parser,
            calls: 0,
        };
        return Ok(sse::response(gen, format));
    }
    let done = generation::collect(gen).await?;
    let (content, calls) = match parser {
        Some(mut p) => {
            let mut d = p.push(&done.content);
            let tail = p.finish();
            d.content.push_str(&tail.content);
            d.calls.extend(tail.calls);
            (d.content, d.calls)
        }
        None => (done.content, Vec::new()),
    };
    let finish_reason = finish_reason(done.finish.reason, !calls.is_empty());
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
                content: (calls.is_empty() || !content.is_empty()).then_some(content),
                reasoning_content: (prompt.mode != whale_text::output::ReasoningMode::Off)
                    .then_some(done.reasoning),
                tool_calls: (!calls.is_empty())
                    .then(|| calls.into_iter().map(crate::tools::output_call).collect()),
            },
            logprobs: logprobs.map(|_| ChatLogprobs {
                content: done.tokens.iter().map(token_logprob).collect(),
            }),
            finish_reason,
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

/// OpenAI's `tool_calls` finish reason replaces "stop" when the answer called tools ("length"
/// stays: a call cut short is not a call).
fn finish_reason(reason: &'static str, called: bool) -> &'static str {
    if called && reason == "stop" {
        "tool_calls"
    } else {
        reason
    }
}

/// The tool-call markers that are special tokens of the served tokenizer (DeepSeek-V3's
/// vocabulary has them as single tokens), with their text.
fn special_markers(state: &AppState) -> HashMap<u32, String> {
    let tok = state.tokenizer();
    crate::tool_parser::MARKERS
        .iter()
        .filter_map(|m| tok.token_to_id(m).map(|id| (id, m.to_string())))
        .filter(|(id, _)| tok.is_special(*id))
        .collect()
}

struct ChatFormat {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
    include_usage: bool,
    logprobs: bool,
    /// Set when the request offers tools.
    tools: Option<ToolCallParser>,
    /// Calls streamed so far (the next call's `index`).
    calls: usize,
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
                ..Default::default()
            },
            &[],
            None,
        )]
    }

    fn piece(&mut self, mut p: Piece) -> Vec<Bytes> {
        let mut calls = Vec::new();
        if let Some(parser) = self.tools.as_mut() {
            let d = parser.push(&p.content);
            p.content = d.content;
            calls = d.calls;
        }
        let mut out = self.text_deltas(p);
        out.extend(self.call_deltas(calls));
        out
    }

    fn finish(&mut self, f: Finish) -> Vec<Bytes> {
        let mut out = Vec::new();
        if let Some(parser) = self.tools.as_mut() {
            let d = parser.finish();
            out.extend(self.text_deltas(Piece {
                content: d.content,
                ..Default::default()
            }));
            out.extend(self.call_deltas(d.calls));
        }
        let reason = finish_reason(f.reason, self.calls > 0);
        out.push(self.delta(Delta::default(), &[], Some(reason)));
        if self.include_usage {
            out.push(self.chunk(vec![], Some(f.usage)));
        }
        out
    }
}

impl ChatFormat {
    fn call_deltas(&mut self, calls: Vec<crate::tool_parser::ParsedCall>) -> Vec<Bytes> {
        calls
            .into_iter()
            .map(|c| {
                let call = crate::tools::output_call(c);
                let delta = Delta {
                    tool_calls: Some(vec![DeltaToolCall {
                        index: self.calls,
                        id: call.id,
                        kind: call.kind,
                        function: call.function,
                    }]),
                    ..Default::default()
                };
                self.calls += 1;
                self.delta(delta, &[], None)
            })
            .collect()
    }

    fn text_deltas(&mut self, p: Piece) -> Vec<Bytes> {
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
}
