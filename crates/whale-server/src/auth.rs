//! Optional bearer API keys: `Authorization: Bearer KEY`, keys from a file (one per line,
//! blank lines and `#` comments skipped). Checked in a route layer, before the body is read,
//! so a request without a valid key costs no parsing and no model work.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ApiKeys {
    keys: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("API key file {}: {message}", path.display())]
pub struct ApiKeyFileError {
    pub path: PathBuf,
    pub message: String,
}

impl ApiKeys {
    pub fn new(keys: Vec<String>) -> Self {
        ApiKeys { keys }
    }

    pub fn from_file(path: &Path) -> Result<Self, ApiKeyFileError> {
        let err = |message: String| ApiKeyFileError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let keys: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        if keys.is_empty() {
            // An empty file would lock everyone out, which is never what was meant.
            return Err(err("no keys in the file (one key per line)".into()));
        }
        Ok(ApiKeys { keys })
    }

    pub fn accepts(&self, key: &str) -> bool {
        // Every key is compared in full so the time taken does not reveal a matching prefix.
        self.keys.iter().fold(false, |ok, k| {
            ok | constant_time_eq(k.as_bytes(), key.as_bytes())
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(keys) = state.config().api_keys.as_ref() else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        None => ApiError::Unauthorized("missing API key: send `Authorization: Bearer KEY`")
            .into_response(),
        Some(k) if !keys.accepts(k.trim()) => {
            ApiError::Unauthorized("invalid API key").into_response()
        }
        Some(_) => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys");
        std::fs::write(&p, "# team keys\nsk-one\n\n  sk-two  \n").unwrap();
        let k = ApiKeys::from_file(&p).unwrap();
        assert!(k.accepts("sk-one") && k.accepts("sk-two"));
        assert!(!k.accepts("sk-on") && !k.accepts("") && !k.accepts("# team keys"));
        std::fs::write(&p, "\n# none\n").unwrap();
        assert!(ApiKeys::from_file(&p)
            .unwrap_err()
            .to_string()
            .contains("no keys"));
    }
}
