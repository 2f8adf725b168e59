//! The admin API under `/admin`: no auth, no faults.

use crate::faults::{FaultPlan, ScriptedAnswer};
use crate::server::{json_response, AppState};
use crate::store::{CounterpartyFields, CounterpartyPatch, StoreError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::sync::Arc;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/admin/counterparties",
            get(list_counterparties).post(create_counterparty),
        )
        .route("/admin/counterparties/{onec_id}", patch(edit_counterparty))
        .route("/admin/reset", post(reset))
        .route("/admin/stats", get(stats))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/script", post(push_script))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(body)
}

fn unreadable(e: &serde_json::Error) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "validation",
        &format!("unreadable body: {e}"),
    )
}

fn store_error(err: &StoreError) -> Response {
    let message = err.to_string();
    match err {
        StoreError::NotFound(_) => error(StatusCode::NOT_FOUND, "not_found", &message),
        StoreError::Conflict(_) => error(StatusCode::CONFLICT, "conflict", &message),
        StoreError::Business(_) => error(StatusCode::UNPROCESSABLE_ENTITY, "business", &message),
    }
}

fn to_json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_value(value) {
        Ok(value) => json_response(status, &value),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

async fn list_counterparties(State(app): State<Arc<AppState>>) -> Response {
    to_json(StatusCode::OK, &app.counterparties())
}

async fn create_counterparty(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let fields: CounterpartyFields = match parse(&body) {
        Ok(fields) => fields,
        Err(e) => return unreadable(&e),
    };
    match app.create_in_1c(fields) {
        Ok(record) => to_json(StatusCode::CREATED, &record),
        Err(e) => store_error(&e),
    }
}

async fn edit_counterparty(
    State(app): State<Arc<AppState>>,
    Path(onec_id): Path<String>,
    body: Bytes,
) -> Response {
    let patch: CounterpartyPatch = match parse(&body) {
        Ok(patch) => patch,
        Err(e) => return unreadable(&e),
    };
    match app.edit_in_1c(&onec_id, patch) {
        Ok(record) => to_json(StatusCode::OK, &record),
        Err(e) => store_error(&e),
    }
}

async fn reset(State(app): State<Arc<AppState>>) -> Response {
    app.reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(app): State<Arc<AppState>>) -> Response {
    to_json(StatusCode::OK, &app.stats())
}

async fn get_faults(State(app): State<Arc<AppState>>) -> Response {
    to_json(StatusCode::OK, &app.faults())
}

async fn put_faults(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let plan: FaultPlan = match parse(&body) {
        Ok(plan) => plan,
        Err(e) => return unreadable(&e),
    };
    app.set_faults(plan.clone());
    to_json(StatusCode::OK, &plan)
}

async fn push_script(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let answers: Vec<ScriptedAnswer> = match parse(&body) {
        Ok(answers) => answers,
        Err(e) => return unreadable(&e),
    };
    let queued = answers.len();
    app.script(answers);
    json_response(StatusCode::OK, &json!({ "queued": queued }))
}
