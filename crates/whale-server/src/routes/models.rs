//! `GET /v1/models`: the names this server answers to.

use crate::api::models::{ModelCard, ModelList};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;

pub async fn list_models(State(state): State<AppState>) -> Json<ModelList> {
    let data = state
        .config()
        .model_names
        .iter()
        .map(|id| ModelCard {
            id: id.clone(),
            object: "model",
            created: state.created(),
            owned_by: "whale",
        })
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}
