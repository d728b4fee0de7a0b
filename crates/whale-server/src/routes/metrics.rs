//! `GET /metrics`: Prometheus text format.

use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics().render(&state.engine().stats());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
