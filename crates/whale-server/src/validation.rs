//! Request fields → a [`GenPlan`] in engine terms (sampling parameters, limits, stop strings),
//! refusing what the API does not allow with a message naming the field. Unset sampling
//! fields take DeepSeek-R1's published settings (temperature 0.6, top-p 0.95), as `whale
//! chat` does: the served models are R1-style, and greedy decoding makes them loop.

use crate::api::common::Stop;
use crate::error::ApiError;
use crate::state::AppState;
use std::collections::HashMap;
use whale_engine::SamplingParams;
use whale_text::output::ReasoningMode;

/// The fields chat and text completions share, as sent.
#[derive(Debug, Clone, Default)]
pub struct SamplingFields {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub seed: Option<u64>,
    pub max_tokens: Option<usize>,
    pub stop: Option<Stop>,
    pub logit_bias: Option<HashMap<String, f32>>,
    /// `None`: no logprobs; `Some(k)`: each token's logprob with its `k` best alternatives.
    pub logprobs: Option<usize>,
    pub n: Option<usize>,
}

/// One generation, ready for the engine.
#[derive(Debug, Clone)]
pub struct GenPlan {
    pub prompt: Vec<u32>,
    pub mode: ReasoningMode,
    pub params: SamplingParams,
    pub max_tokens: usize,
    pub stops: Vec<String>,
    pub thinking_budget: Option<usize>,
    pub json_mode: bool,
    pub logprobs: Option<usize>,
}

pub fn plan(
    state: &AppState,
    prompt: Vec<u32>,
    mode: ReasoningMode,
    f: SamplingFields,
    default_max_tokens: usize,
) -> Result<GenPlan, ApiError> {
    if let Some(n) = f.n {
        if n != 1 {
            return Err(ApiError::invalid(
                "n",
                format!("n = {n}: only n = 1 is supported"),
            ));
        }
    }
    let limit = state.engine().model_info().max_position_embeddings;
    if prompt.len() >= limit {
        return Err(ApiError::ContextTooLong {
            prompt: prompt.len(),
            limit,
        });
    }
    if prompt.is_empty() {
        return Err(ApiError::invalid(
            "prompt",
            "the prompt is empty: give at least one token",
        ));
    }
    let stops = f.stop.map(Stop::into_vec).unwrap_or_default();
    if stops.len() > state.config().max_stops {
        return Err(ApiError::invalid(
            "stop",
            format!(
                "{} stop strings given; at most {} are allowed",
                stops.len(),
                state.config().max_stops
            ),
        ));
    }
    if stops.iter().any(String::is_empty) {
        return Err(ApiError::invalid("stop", "stop strings may not be empty"));
    }
    let mut logit_bias = HashMap::new();
    for (k, v) in f.logit_bias.unwrap_or_default() {
        let id: u32 = k.parse().map_err(|_| {
            ApiError::invalid(
                "logit_bias",
                format!("logit_bias key {k:?} is not a token id"),
            )
        })?;
        logit_bias.insert(id, v);
    }
    let max_tokens = f.max_tokens.unwrap_or(default_max_tokens);
    if max_tokens == 0 {
        return Err(ApiError::invalid(
            "max_tokens",
            "max_tokens = 0: expected at least 1",
        ));
    }
    let r1 = SamplingParams::r1_defaults();
    let params = SamplingParams {
        temperature: f.temperature.unwrap_or(r1.temperature),
        top_p: f.top_p.unwrap_or(r1.top_p),
        frequency_penalty: f.frequency_penalty.unwrap_or(0.0),
        presence_penalty: f.presence_penalty.unwrap_or(0.0),
        seed: f.seed,
        logit_bias,
        max_tokens: Some(max_tokens),
        top_logprobs: f.logprobs.unwrap_or(0),
        ..r1
    };
    params.validate()?;
    Ok(GenPlan {
        prompt,
        mode,
        params,
        max_tokens,
        stops,
        thinking_budget: None,
        json_mode: false,
        logprobs: f.logprobs,
    })
}
