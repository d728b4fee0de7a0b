//! `GET /health`: 200 while the engine runs, with its queue; for load balancers and scripts
//! waiting for the server to come up.

use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let s = state.engine().stats();
    Json(json!({ "status": "ok", "queue_depth": s.queue_depth, "running": s.running }))
}
