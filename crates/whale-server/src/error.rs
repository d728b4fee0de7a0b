//! The one error type of the API, rendered in OpenAI's JSON error shape
//! `{"error": {"message", "type", "param", "code"}}` with the matching HTTP status.
//!
//! Every failure a request can cause ends here, so a bad request never panics the server and
//! a client always gets a message that names what to fix (the field, the limit, the key).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use whale_engine::{GenerateError, SamplingError, SubmitError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all (syntax error, wrong content).
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// JSON of the wrong shape: a missing field, a wrong type. `field` is the JSON path.
    #[error("invalid value for `{field}`: {message}")]
    WrongType { field: String, message: String },
    /// A value of the right type the API does not accept.
    #[error("{message}")]
    InvalidParam {
        param: Option<String>,
        message: String,
    },
    #[error("the model `{0}` does not exist; GET /v1/models lists the served models")]
    UnknownModel(String),
    #[error(
        "this model's maximum context length is {limit} tokens, but the prompt is {prompt} tokens; \
         shorten it by at least {} tokens",
        (prompt + 1).saturating_sub(*limit)
    )]
    ContextTooLong { prompt: usize, limit: usize },
    #[error("the request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error(
        "the server is overloaded ({waiting} requests are waiting, limit {limit}); retry later"
    )]
    Overloaded { waiting: usize, limit: usize },
    #[error("the engine has stopped; the server cannot generate")]
    EngineStopped,
    #[error("generation failed: {0}")]
    Internal(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: String,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        ApiError::InvalidParam {
            param: Some(param.to_string()),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_)
            | ApiError::InvalidParam { .. }
            | ApiError::ContextTooLong { .. } => StatusCode::BAD_REQUEST,
            ApiError::WrongType { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnknownModel(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::EngineStopped => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's `type` and `code` strings.
    fn kind_and_code(&self) -> (&'static str, Option<&'static str>) {
        match self {
            ApiError::MalformedJson(_)
            | ApiError::WrongType { .. }
            | ApiError::InvalidParam { .. } => ("invalid_request_error", None),
            ApiError::UnknownModel(_) => ("invalid_request_error", Some("model_not_found")),
            ApiError::ContextTooLong { .. } => {
                ("invalid_request_error", Some("context_length_exceeded"))
            }
            ApiError::BodyTooLarge { .. } => ("invalid_request_error", Some("request_too_large")),
            ApiError::NotFound(_) => ("invalid_request_error", Some("not_found")),
            ApiError::MethodNotAllowed { .. } => {
                ("invalid_request_error", Some("method_not_allowed"))
            }
            ApiError::Unauthorized(_) => ("authentication_error", Some("invalid_api_key")),
            ApiError::Overloaded { .. } => ("rate_limit_error", Some("overloaded")),
            ApiError::EngineStopped => ("server_error", Some("engine_stopped")),
            ApiError::Internal(_) => ("server_error", None),
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            ApiError::WrongType { field, .. } => Some(field),
            ApiError::InvalidParam { param, .. } => param.as_deref(),
            ApiError::UnknownModel(_) => Some("model"),
            ApiError::ContextTooLong { .. } => Some("messages"),
            _ => None,
        }
    }

    /// The JSON body alone (SSE streams send it as a final event after headers went out).
    pub fn to_json(&self) -> String {
        let (kind, code) = self.kind_and_code();
        let body = ErrorBody {
            error: ErrorDetail {
                message: self.to_string(),
                kind,
                param: self.param(),
                code,
            },
        };
        // Serializing plain strings cannot fail; the fallback keeps the contract anyway.
        serde_json::to_string(&body)
            .unwrap_or_else(|_| r#"{"error":{"message":"internal error"}}"#.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            self.to_json(),
        )
            .into_response();
        match &self {
            // Tells clients (the openai package honours it) when to retry.
            ApiError::Overloaded { .. } | ApiError::EngineStopped => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthorized(_) => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}

impl From<SamplingError> for ApiError {
    fn from(e: SamplingError) -> Self {
        let param = match &e {
            SamplingError::InvalidParam { field, .. } => {
                Some(field.split('[').next().unwrap_or(field).to_string())
            }
            SamplingError::BiasTokenOutOfRange { .. } => Some("logit_bias".to_string()),
            _ => None,
        };
        ApiError::InvalidParam {
            param,
            message: e.to_string(),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Overloaded { waiting, limit } => ApiError::Overloaded { waiting, limit },
            SubmitError::Stopped => ApiError::EngineStopped,
            SubmitError::Invalid(g) => match g {
                GenerateError::PromptTooLong { prompt, limit } => {
                    ApiError::ContextTooLong { prompt, limit }
                }
                GenerateError::Sampling(s) => s.into(),
                GenerateError::EmptyPrompt => ApiError::invalid("prompt", g.to_string()),
                GenerateError::TokenOutOfRange { .. } => ApiError::invalid("prompt", g.to_string()),
                GenerateError::Model(m) => ApiError::Internal(m.to_string()),
            },
        }
    }
}

impl From<whale_text::TextError> for ApiError {
    fn from(e: whale_text::TextError) -> Self {
        match e {
            whale_text::TextError::InvalidInput(m) => ApiError::InvalidParam {
                param: None,
                message: m,
            },
            whale_text::TextError::Template(m) => ApiError::InvalidParam {
                param: Some("messages".into()),
                message: format!("the chat template cannot render these messages: {m}"),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_matches_openai() {
        let e = ApiError::UnknownModel("gpt-9".into());
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert!(v["error"]["message"].as_str().unwrap().contains("gpt-9"));
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn context_message_counts_tokens() {
        let e = ApiError::ContextTooLong {
            prompt: 300,
            limit: 256,
        };
        assert!(
            e.to_string()
                .contains("256 tokens, but the prompt is 300 tokens"),
            "{e}"
        );
    }
}
