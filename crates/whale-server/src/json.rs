//! The request-body extractor: bytes (under the body limit) → typed request, with errors that
//! say what is wrong and where. `axum::Json` would answer with plain text; this answers in the
//! API's JSON error shape and names the field through `serde_path_to_error`.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::BodyTooLarge {
                    limit: state.config().max_body_bytes,
                }
            } else {
                ApiError::MalformedJson(r.body_text())
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Parses a body; the error tells syntax errors (400) from wrong shapes (422, with the path).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                ApiError::WrongType {
                    field: field_name(&path, &message),
                    message,
                }
            }
            _ => ApiError::MalformedJson(inner.to_string()),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(value)
}

/// The path of the bad value; for a missing field the path is its parent, so the name is
/// taken from serde's message ("missing field `model`").
fn field_name(path: &str, message: &str) -> String {
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return if path == "." {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
    }
    path.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::chat::ChatCompletionRequest;

    #[test]
    fn errors_name_the_field() {
        let e = parse::<ChatCompletionRequest>(
            br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}"#,
        )
        .unwrap_err();
        assert!(
            matches!(&e, ApiError::WrongType { field, .. } if field == "max_tokens"),
            "{e:?}"
        );
        let e = parse::<ChatCompletionRequest>(br#"{"messages":[]}"#).unwrap_err();
        assert!(
            matches!(&e, ApiError::WrongType { field, .. } if field == "model"),
            "{e:?}"
        );
        let e = parse::<ChatCompletionRequest>(br#"{"model":"m","messages":[{"role":"robot"}]}"#)
            .unwrap_err();
        assert!(
            matches!(&e, ApiError::WrongType { field, .. } if field == "messages[0].role"),
            "{e:?}"
        );
        assert!(matches!(
            parse::<ChatCompletionRequest>(b"{not json"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse::<ChatCompletionRequest>(b"{} trailing"),
            Err(ApiError::MalformedJson(_) | ApiError::WrongType { .. })
        ));
    }
}
