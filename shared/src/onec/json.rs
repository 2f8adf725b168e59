//! Transport `json`: the HTTP service `/hs/<root>/…` of `docs/onec-contract.md`.

use super::batch_items;
use super::config::{OneCConfig, Transport};
use super::http::{
    batch_unsupported, classify, malformed, BodyFormat, Dialect, ErrorDetail, HttpCore, Response,
};
use super::{
    ChangePage, Counterparty, CounterpartyKind, OneCClient, OneCError, UpsertOutcome,
    MAX_BATCH_ITEMS,
};
use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

const DIALECT: Dialect = Dialect {
    transport: Transport::Json,
    format: BodyFormat::Json,
    business_code: "business",
    parse_error: parse_error_body,
};

/// `{"error":{"code":"…","message":"…"}}`.
pub(crate) fn parse_error_body(body: &[u8]) -> Option<ErrorDetail> {
    #[derive(Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        code: Option<Value>,
        #[serde(default)]
        message: Option<String>,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    Some(ErrorDetail {
        code: envelope.error.code.and_then(scalar_to_string),
        message: envelope.error.message,
    })
}

fn scalar_to_string(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The customer object of the contract, as sent and as received.
#[derive(Debug, Serialize, Deserialize)]
struct CustomerDto {
    #[serde(default)]
    platform_id: Option<String>,
    #[serde(default, skip_serializing)]
    onec_id: Option<String>,
    #[serde(default, skip_serializing)]
    data_version: Option<String>,
    kind: CounterpartyKind,
    name: String,
    #[serde(default)]
    full_name: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    contact_person: Option<String>,
    #[serde(default)]
    inn: Option<String>,
    #[serde(default)]
    kpp: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    deletion_mark: bool,
    /// 1C may hold numbers or booleans in extra attributes; they arrive as strings.
    #[serde(default)]
    extra: BTreeMap<String, Value>,
}

impl CustomerDto {
    fn from_counterparty(cp: &Counterparty) -> Self {
        Self {
            platform_id: Some(cp.platform_id.clone()),
            onec_id: None,
            data_version: None,
            kind: cp.kind,
            name: cp.name.clone(),
            full_name: Some(cp.full_name.clone()),
            first_name: cp.first_name.clone(),
            last_name: cp.last_name.clone(),
            contact_person: cp.contact_person.clone(),
            inn: cp.inn.clone(),
            kpp: cp.kpp.clone(),
            email: cp.email.clone(),
            phone: cp.phone.clone(),
            role: cp.role.clone(),
            status: cp.status.clone(),
            deletion_mark: cp.deletion_mark,
            extra: cp
                .extra
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        }
    }

    fn into_counterparty(self) -> Counterparty {
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        Counterparty {
            platform_id: self.platform_id.unwrap_or_default(),
            onec_id: non_empty(self.onec_id),
            data_version: non_empty(self.data_version),
            kind: self.kind,
            full_name: non_empty(self.full_name).unwrap_or_else(|| self.name.clone()),
            name: self.name,
            first_name: non_empty(self.first_name),
            last_name: non_empty(self.last_name),
            contact_person: non_empty(self.contact_person),
            inn: non_empty(self.inn),
            kpp: non_empty(self.kpp),
            email: non_empty(self.email),
            phone: non_empty(self.phone),
            role: non_empty(self.role),
            status: non_empty(self.status),
            deletion_mark: self.deletion_mark,
            extra: self
                .extra
                .into_iter()
                .filter_map(|(k, v)| scalar_to_string(v).map(|v| (k, v)))
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct UpsertAnswer {
    #[serde(default)]
    onec_id: Option<String>,
    #[serde(default)]
    data_version: Option<String>,
    #[serde(default)]
    created: Option<bool>,
}

/// One entry of a batch answer: the single call's status and body, merged.
#[derive(Debug, Deserialize)]
struct BatchItemAnswer {
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    platform_id: Option<String>,
    #[serde(default)]
    onec_id: Option<String>,
    #[serde(default)]
    data_version: Option<String>,
    #[serde(default)]
    created: Option<bool>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct BatchAnswer {
    results: Vec<BatchItemAnswer>,
}

#[derive(Debug, Deserialize)]
struct Items {
    items: Vec<CustomerDto>,
}

#[derive(Debug, Deserialize)]
struct Changes {
    items: Vec<CustomerDto>,
    #[serde(default)]
    last_seq: Option<Value>,
    #[serde(default)]
    has_more: bool,
}

/// [`OneCClient`] over the JSON HTTP service.
#[derive(Debug)]
pub struct HttpServiceJsonClient {
    http: HttpCore,
    root: Vec<String>,
    /// Set when the service answered that it has no batch resource; later batches go one
    /// customer per request.
    no_batch: AtomicBool,
}

impl HttpServiceJsonClient {
    pub fn new(config: &OneCConfig) -> Result<Self, OneCError> {
        Ok(Self {
            http: HttpCore::new(config, DIALECT)?,
            root: hs_root_segments(&config.hs_root),
            no_batch: AtomicBool::new(false),
        })
    }

    /// One `POST …/customers/batch`; `None` when the service has no batch resource.
    async fn send_batch(
        &self,
        items: &[&Counterparty],
    ) -> Option<Vec<Result<UpsertOutcome, OneCError>>> {
        let body: Vec<CustomerDto> = items
            .iter()
            .map(|cp| CustomerDto::from_counterparty(cp))
            .collect();
        let request = self
            .http
            .request(Method::POST, self.url(&["customers", "batch"]))
            .json(&body);
        let response = match self.http.send("upsert_customers", request).await {
            Ok(response) => response,
            Err(e) if batch_unsupported(&e) => return None,
            Err(e) => return Some(e.for_each_item(items.len()).into_iter().map(Err).collect()),
        };
        let answer: BatchAnswer = match parse_json(&response) {
            Ok(answer) => answer,
            Err(e) => return Some(e.for_each_item(items.len()).into_iter().map(Err).collect()),
        };
        if answer.results.len() != items.len() {
            let e = malformed(
                response.status,
                format!(
                    "{} results for {} customers",
                    answer.results.len(),
                    items.len()
                ),
                None,
            );
            return Some(e.for_each_item(items.len()).into_iter().map(Err).collect());
        }
        Some(
            answer
                .results
                .into_iter()
                .zip(items)
                .map(|(item, cp)| batch_item(item, &cp.platform_id, response.status))
                .collect(),
        )
    }
}

/// One item of a batch answer, classified exactly as the single call with its status would be.
fn batch_item(
    item: BatchItemAnswer,
    platform_id: &str,
    batch_status: StatusCode,
) -> Result<UpsertOutcome, OneCError> {
    if item
        .platform_id
        .as_deref()
        .is_some_and(|echoed| echoed != platform_id)
    {
        return Err(malformed(
            batch_status,
            "batch results are not in request order",
            None,
        ));
    }
    let status = item
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| malformed(batch_status, "a batch result has no valid status", None))?;
    if status.is_success() {
        return Ok(UpsertOutcome {
            onec_id: required(item.onec_id, status, "onec_id")?,
            data_version: required(item.data_version, status, "data_version")?,
            created: item.created.unwrap_or(status == StatusCode::CREATED),
        });
    }
    let body = serde_json::to_vec(&serde_json::json!({ "error": item.error })).unwrap_or_default();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    match classify(status, &headers, &body, &DIALECT) {
        Err(e) => Err(e),
        Ok(()) => Err(malformed(status, "a batch result has no outcome", None)),
    }
}

impl HttpServiceJsonClient {
    fn url(&self, tail: &[&str]) -> url::Url {
        let mut segments: Vec<&str> = vec!["hs"];
        segments.extend(self.root.iter().map(String::as_str));
        segments.extend_from_slice(tail);
        self.http.url(&segments)
    }
}

pub(crate) fn hs_root_segments(root: &str) -> Vec<String> {
    root.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Where a `GET …/changes` page starts: after the cursor, or on a first page the watermark.
pub(crate) fn changes_since<'a>(
    watermark: Option<&'a str>,
    cursor: Option<&'a str>,
) -> Option<&'a str> {
    cursor.or(watermark).filter(|s| !s.is_empty())
}

/// The query of a `GET …/changes` page, the same for both HTTP-service transports: changes
/// after `since`, at most `page_size` of them.
pub(crate) fn with_changes_query(
    mut url: url::Url,
    since: Option<&str>,
    page_size: u32,
) -> url::Url {
    {
        let mut query = url.query_pairs_mut();
        if let Some(since) = since {
            query.append_pair("since", since);
        }
        query.append_pair("limit", &page_size.max(1).to_string());
    }
    url
}

fn parse_json<T: serde::de::DeserializeOwned>(response: &Response) -> Result<T, OneCError> {
    serde_json::from_slice(&response.body).map_err(|e| {
        malformed(
            response.status,
            "body is not the expected JSON",
            Some(Box::new(e)),
        )
    })
}

fn required(value: Option<String>, status: StatusCode, what: &str) -> Result<String, OneCError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| malformed(status, format!("answer has no {what}"), None))
}

fn is_not_found(error: &OneCError) -> bool {
    // Only 1C's own "not found" (an error body it wrote) means "no such counterparty"; a bare
    // or HTML 404 is a wrong URL and stays an error.
    matches!(
        error,
        OneCError::Rejected {
            status: 404,
            code: Some(_),
            ..
        }
    )
}

#[async_trait]
impl OneCClient for HttpServiceJsonClient {
    async fn upsert_customer(&self, cp: &Counterparty) -> Result<UpsertOutcome, OneCError> {
        if cp.platform_id.trim().is_empty() {
            return Err(OneCError::InvalidRequest("platform id is empty".into()));
        }
        let request = self
            .http
            .request(Method::POST, self.url(&["customers"]))
            .json(&CustomerDto::from_counterparty(cp));
        let response = self.http.send("upsert_customer", request).await?;
        let answer: UpsertAnswer = parse_json(&response)?;
        Ok(UpsertOutcome {
            onec_id: required(answer.onec_id, response.status, "onec_id")?,
            data_version: required(answer.data_version, response.status, "data_version")?,
            created: answer
                .created
                .unwrap_or(response.status == StatusCode::CREATED),
        })
    }

    async fn upsert_customers(
        &self,
        items: &[Counterparty],
    ) -> Vec<Result<UpsertOutcome, OneCError>> {
        let (mut results, sendable) = batch_items::triage(items);
        for chunk in sendable.chunks(MAX_BATCH_ITEMS) {
            let batch: Vec<&Counterparty> = chunk.iter().map(|&i| &items[i]).collect();
            let answered = if self.no_batch.load(Ordering::Relaxed) {
                None
            } else {
                self.send_batch(&batch).await
            };
            let answered = match answered {
                Some(answered) => answered,
                None => {
                    batch_items::note_no_batch(
                        &self.no_batch,
                        "the 1C HTTP service has no batch resource",
                    );
                    super::upsert_one_by_one(self, batch).await
                }
            };
            for (&i, result) in chunk.iter().zip(answered) {
                results[i] = Some(result);
            }
        }
        batch_items::collect(results)
    }

    async fn fetch_customer(&self, onec_id: &str) -> Result<Option<Counterparty>, OneCError> {
        let request = self
            .http
            .request(Method::GET, self.url(&["customers", onec_id]));
        match self.http.send("fetch_customer", request).await {
            Ok(response) => {
                let dto: CustomerDto = parse_json(&response)?;
                let cp = dto.into_counterparty();
                if cp.onec_id.is_none() {
                    return Err(malformed(response.status, "customer has no onec_id", None));
                }
                Ok(Some(cp))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn find_by_platform_id(
        &self,
        platform_id: &str,
    ) -> Result<Option<Counterparty>, OneCError> {
        let mut url = self.url(&["customers"]);
        url.query_pairs_mut()
            .append_pair("platform_id", platform_id);
        let request = self.http.request(Method::GET, url);
        let response = self.http.send("find_by_platform_id", request).await?;
        let items: Items = parse_json(&response)?;
        let mut found = items.items.into_iter().map(CustomerDto::into_counterparty);
        let first = found.next();
        if found.next().is_some() {
            tracing::warn!(
                platform_id,
                "1C holds more than one counterparty for one platform id; using the first"
            );
        }
        match first {
            Some(cp) if cp.onec_id.is_none() => {
                Err(malformed(response.status, "customer has no onec_id", None))
            }
            other => Ok(other),
        }
    }

    async fn list_changed(
        &self,
        watermark: Option<&str>,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<ChangePage, OneCError> {
        let since = changes_since(watermark, cursor);
        let url = with_changes_query(self.url(&["changes"]), since, page_size);
        let request = self.http.request(Method::GET, url);
        let response = self.http.send("list_changed", request).await?;
        let changes: Changes = parse_json(&response)?;
        let last_seq = changes
            .last_seq
            .and_then(scalar_to_string)
            .filter(|s| !s.is_empty());
        if changes.has_more && last_seq.is_none() {
            return Err(malformed(
                response.status,
                "has_more without last_seq",
                None,
            ));
        }
        let items = changes
            .items
            .into_iter()
            .map(CustomerDto::into_counterparty)
            .collect::<Vec<_>>();
        if items.iter().any(|cp| cp.onec_id.is_none()) {
            return Err(malformed(response.status, "a change has no onec_id", None));
        }
        Ok(ChangePage {
            items,
            next_cursor: if changes.has_more {
                last_seq.clone()
            } else {
                None
            },
            watermark: last_seq.or_else(|| since.map(str::to_owned)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(value: serde_json::Value) -> BatchItemAnswer {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_batch_item_is_classified_as_the_single_call_with_its_status() {
        use crate::error::{Classify, ErrorClass};
        let ok = batch_item(
            item(serde_json::json!({"status": 201, "platform_id": "p-1",
                "onec_id": "r-1", "data_version": "v1"})),
            "p-1",
            StatusCode::OK,
        )
        .unwrap();
        assert!(ok.created);
        let cases = [
            (500, "business", "rejected", ErrorClass::Permanent),
            (500, "internal", "unavailable", ErrorClass::Transient),
            (409, "conflict", "rejected", ErrorClass::Permanent),
            (422, "validation", "rejected", ErrorClass::Permanent),
        ];
        for (status, code, kind, class) in cases {
            let err = batch_item(
                item(serde_json::json!({"status": status, "platform_id": "p-1",
                    "error": {"code": code, "message": "m"}})),
                "p-1",
                StatusCode::OK,
            )
            .unwrap_err();
            assert_eq!(err.kind(), kind, "{status} {code}");
            assert_eq!(err.class(), class, "{status} {code}");
        }
    }

    #[test]
    fn a_batch_item_out_of_order_or_without_outcome_is_malformed() {
        let swapped = batch_item(
            item(serde_json::json!({"status": 200, "platform_id": "p-2",
                "onec_id": "r", "data_version": "v"})),
            "p-1",
            StatusCode::OK,
        );
        assert_eq!(swapped.unwrap_err().kind(), "malformed_response");
        let no_status = batch_item(
            item(serde_json::json!({"onec_id": "r", "data_version": "v"})),
            "p-1",
            StatusCode::OK,
        );
        assert_eq!(no_status.unwrap_err().kind(), "malformed_response");
        let no_version = batch_item(
            item(serde_json::json!({"status": 200, "onec_id": "r"})),
            "p-1",
            StatusCode::OK,
        );
        assert_eq!(no_version.unwrap_err().kind(), "malformed_response");
    }

    #[test]
    fn the_error_body_yields_code_and_message() {
        let detail =
            parse_error_body(br#"{"error":{"code":"business","message":"Stop"}}"#).unwrap();
        assert_eq!(detail.code.as_deref(), Some("business"));
        assert_eq!(detail.message.as_deref(), Some("Stop"));
        assert!(parse_error_body(b"<html/>").is_none());
        assert!(parse_error_body(br#"{"items":[]}"#).is_none());
    }

    #[test]
    fn a_customer_object_maps_to_a_counterparty_and_empty_strings_to_none() {
        // Given a customer object as 1C writes it
        let body = r#"{"platform_id":"p-1","onec_id":"1fa1a135-d89b-11e6-8343-40167e2531c3",
            "data_version":"AAAAAAAETag=","code":"00-000021","kind":"legal_entity",
            "name":"Ромашка","full_name":"ООО \"Ромашка\"","first_name":null,"last_name":"",
            "contact_person":"Петров","inn":"7707083893","kpp":"770701001","email":null,
            "phone":"+79123456789","role":"Опт","status":"Активен","deletion_mark":true,
            "modified_at":"2026-11-28T15:04:05","extra":{"Город":"Казань","Скидка":5}}"#;

        // When it is read
        let dto: CustomerDto = serde_json::from_str(body).unwrap();
        let cp = dto.into_counterparty();

        // Then every field lands where it belongs
        assert_eq!(cp.platform_id, "p-1");
        assert_eq!(
            cp.onec_id.as_deref(),
            Some("1fa1a135-d89b-11e6-8343-40167e2531c3")
        );
        assert_eq!(cp.kind, CounterpartyKind::LegalEntity);
        assert_eq!(cp.full_name, "ООО \"Ромашка\"");
        assert_eq!(cp.last_name, None);
        assert_eq!(cp.contact_person.as_deref(), Some("Петров"));
        assert!(cp.deletion_mark);
        assert_eq!(cp.extra.get("Скидка").map(String::as_str), Some("5"));
        assert_eq!(cp.extra.get("Город").map(String::as_str), Some("Казань"));
    }

    #[test]
    fn a_request_object_omits_what_1c_assigns() {
        let cp = Counterparty {
            platform_id: "p-1".into(),
            onec_id: Some("x".into()),
            data_version: Some("v".into()),
            kind: CounterpartyKind::Individual,
            name: "Иванов Иван".into(),
            full_name: "Иванов Иван".into(),
            first_name: Some("Иван".into()),
            last_name: Some("Иванов".into()),
            contact_person: None,
            inn: None,
            kpp: None,
            email: Some("ivanov@example.ru".into()),
            phone: None,
            role: None,
            status: None,
            deletion_mark: false,
            extra: BTreeMap::new(),
        };
        let value = serde_json::to_value(CustomerDto::from_counterparty(&cp)).unwrap();
        assert_eq!(value["kind"], "individual");
        assert_eq!(value["platform_id"], "p-1");
        assert!(value.get("onec_id").is_none());
        assert!(value.get("data_version").is_none());
    }
}

#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
