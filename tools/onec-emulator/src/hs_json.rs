//! Transport `json`: the HTTP service `/hs/<root>/customers` and `/hs/<root>/changes`.

use crate::server::{json_response, query_pair_u64, query_pairs, query_param, AppState};
use crate::store::{
    onec_date, CounterpartyFields, CounterpartyKind, CounterpartyRecord, StoreError,
};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Default and maximum page of the changes feed.
pub(crate) const DEFAULT_LIMIT: u64 = 100;
pub(crate) const MAX_LIMIT: u64 = 1000;

/// The contract's customer object as the service answers it.
#[derive(Serialize)]
struct CustomerView<'a> {
    onec_id: &'a str,
    data_version: &'a str,
    code: &'a str,
    #[serde(flatten)]
    fields: &'a CounterpartyFields,
    modified_at: String,
}

fn view(record: &CounterpartyRecord) -> serde_json::Value {
    serde_json::to_value(CustomerView {
        onec_id: &record.onec_id,
        data_version: &record.data_version,
        code: &record.code,
        fields: &record.fields,
        modified_at: onec_date::format(&record.modified_at),
    })
    .unwrap_or(serde_json::Value::Null)
}

/// A customer object in a request; fields 1C assigns (`onec_id`, `code`, …) are ignored.
#[derive(Deserialize)]
struct CustomerInput {
    platform_id: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    full_name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    contact_person: Option<String>,
    inn: Option<String>,
    kpp: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    role: Option<String>,
    status: Option<String>,
    deletion_mark: Option<bool>,
    extra: Option<BTreeMap<String, String>>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

impl CustomerInput {
    fn into_fields(self) -> Result<CounterpartyFields, String> {
        let platform_id = non_empty(self.platform_id).ok_or("platform_id is required")?;
        let kind = match self.kind.as_deref() {
            None => return Err("kind is required".into()),
            Some(kind) => CounterpartyKind::parse(kind)
                .ok_or_else(|| format!("kind must be individual or legal_entity, not {kind:?}"))?,
        };
        let name = non_empty(self.name).ok_or("name is required")?;
        Ok(CounterpartyFields {
            platform_id: Some(platform_id),
            kind,
            full_name: non_empty(self.full_name).unwrap_or_else(|| name.clone()),
            name,
            first_name: non_empty(self.first_name),
            last_name: non_empty(self.last_name),
            contact_person: non_empty(self.contact_person),
            inn: non_empty(self.inn),
            kpp: non_empty(self.kpp),
            email: non_empty(self.email),
            phone: non_empty(self.phone),
            role: non_empty(self.role),
            status: non_empty(self.status),
            deletion_mark: self.deletion_mark.unwrap_or(false),
            extra: self.extra.unwrap_or_default(),
        })
    }
}

/// `{"error":{"code","message"}}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

/// The status and error code the service answers a store refusal with.
fn store_error_parts(err: &StoreError) -> (StatusCode, &'static str) {
    match err {
        StoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        StoreError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        StoreError::Business(_) => (StatusCode::INTERNAL_SERVER_ERROR, "business"),
    }
}

fn store_error(err: &StoreError) -> Response {
    let (status, code) = store_error_parts(err);
    error(status, code, &err.to_string())
}

/// The most customers one batch request may carry.
pub(crate) const MAX_BATCH: usize = 500;

/// `POST /hs/<root>/customers/batch`: every item upserted on its own, in order; one item's
/// refusal never touches the others. Each result is what the single call would have answered.
pub(crate) async fn batch(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let items = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Array(items)) => items,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "validation",
                "the body is not an array of customer objects",
            )
        }
    };
    if items.len() > MAX_BATCH {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "validation",
            &format!("at most {MAX_BATCH} customers per batch"),
        );
    }
    let mut store = app.store();
    let results: Vec<serde_json::Value> = items
        .into_iter()
        .map(|item| {
            let platform_id = item
                .get("platform_id")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned);
            let failed = |status: StatusCode, code: &str, message: &str| {
                json!({
                    "status": status.as_u16(),
                    "platform_id": platform_id,
                    "error": {"code": code, "message": message},
                })
            };
            let input: CustomerInput = match serde_json::from_value(item) {
                Ok(input) => input,
                Err(e) => {
                    return failed(
                        StatusCode::BAD_REQUEST,
                        "validation",
                        &format!("the item is not a customer object: {e}"),
                    )
                }
            };
            let fields = match input.into_fields() {
                Ok(fields) => fields,
                Err(message) => {
                    return failed(StatusCode::UNPROCESSABLE_ENTITY, "validation", &message)
                }
            };
            match store.upsert_by_platform_id(fields) {
                Ok((record, created)) => json!({
                    "status": if created { 201 } else { 200 },
                    "platform_id": platform_id,
                    "onec_id": record.onec_id,
                    "data_version": record.data_version,
                    "code": record.code,
                    "created": created,
                }),
                Err(e) => {
                    let (status, code) = store_error_parts(&e);
                    failed(status, code, &e.to_string())
                }
            }
        })
        .collect();
    drop(store);
    json_response(StatusCode::OK, &json!({ "results": results }))
}

/// `POST /hs/<root>/customers`: create or update by platform id.
pub(crate) async fn upsert(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let input: CustomerInput = match serde_json::from_slice(&body) {
        Ok(input) => input,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "validation",
                &format!("the body is not a customer object: {e}"),
            )
        }
    };
    let fields = match input.into_fields() {
        Ok(fields) => fields,
        Err(message) => return error(StatusCode::UNPROCESSABLE_ENTITY, "validation", &message),
    };
    let outcome = app.store().upsert_by_platform_id(fields);
    match outcome {
        Ok((record, created)) => json_response(
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            &json!({
                "onec_id": record.onec_id,
                "data_version": record.data_version,
                "code": record.code,
                "created": created,
            }),
        ),
        Err(e) => store_error(&e),
    }
}

/// `GET /hs/<root>/customers/<onec_id>`.
pub(crate) async fn fetch(
    State(app): State<Arc<AppState>>,
    Path(onec_id): Path<String>,
) -> Response {
    match app.store().get(&onec_id) {
        Some(record) => json_response(StatusCode::OK, &view(record)),
        None => store_error(&StoreError::NotFound(onec_id)),
    }
}

/// `GET /hs/<root>/customers?platform_id=<id>`.
pub(crate) async fn find(State(app): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref());
    let Some(platform_id) = query_param(&pairs, "platform_id") else {
        return error(
            StatusCode::BAD_REQUEST,
            "validation",
            "the platform_id parameter is required",
        );
    };
    let items: Vec<_> = app
        .store()
        .find_by_platform_id(platform_id)
        .into_iter()
        .map(view)
        .collect();
    json_response(StatusCode::OK, &json!({ "items": items }))
}

/// `GET /hs/<root>/changes?since=<seq>&limit=<n>`.
pub(crate) async fn changes(State(app): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref());
    let (since, limit) = match changes_params(&pairs) {
        Ok(params) => params,
        Err(message) => return error(StatusCode::BAD_REQUEST, "validation", &message),
    };
    let store = app.store();
    let (records, has_more) = store.changes_since(since, limit);
    let last_seq = records.last().map_or(since, |r| r.change_seq);
    let items: Vec<_> = records.into_iter().map(view).collect();
    json_response(
        StatusCode::OK,
        &json!({ "items": items, "last_seq": last_seq.to_string(), "has_more": has_more }),
    )
}

/// `since` (absent: from the start) and `limit` (1..=1000, default 100) of a changes feed.
pub(crate) fn changes_params(pairs: &[(String, String)]) -> Result<(u64, usize), String> {
    let since = query_pair_u64(pairs, "since")?.unwrap_or(0);
    let limit = query_pair_u64(pairs, "limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(format!("limit must be between 1 and {MAX_LIMIT}"));
    }
    let limit = usize::try_from(limit).map_err(|_| "limit is too large".to_string())?;
    Ok((since, limit))
}
