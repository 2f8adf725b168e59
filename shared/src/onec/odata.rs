//! Transport `odata`: the 1C standard OData interface (`/odata/standard.odata/…`).

use super::batch::{self, BatchPart, PartRequest, PartResponse};
use super::batch_items;
use super::config::{OneCConfig, Transport};
use super::http::{
    batch_unsupported, classify, malformed, BodyFormat, Dialect, ErrorDetail, HttpCore, Response,
};
use super::{
    ChangePage, Counterparty, CounterpartyKind, OneCClient, OneCError, OneCSchema, UpsertOutcome,
    MAX_BATCH_ITEMS,
};
use async_trait::async_trait;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

const DIALECT: Dialect = Dialect {
    transport: Transport::OData,
    format: BodyFormat::Json,
    business_code: "-1",
    parse_error: parse_error_body,
};

const ZERO_GUID: &str = "00000000-0000-0000-0000-000000000000";
const EMPTY_DATE: &str = "0001-01-01T00:00:00";
const LEGAL_ENTITY: &str = "ЮридическоеЛицо";
const INDIVIDUAL: &str = "ФизическоеЛицо";
const CONTACT_INFO: &str = "КонтактнаяИнформация";
const EMAIL_TYPE: &str = "АдресЭлектроннойПочты";
const PHONE_TYPE: &str = "Телефон";

/// Characters escaped in a query value; `'`, `(`, `)` and `,` stay readable as in 1C's docs.
const QUERY_VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `{"odata.error":{"code":"-1","message":{"lang":"ru","value":"…"}}}`.
pub(crate) fn parse_error_body(body: &[u8]) -> Option<ErrorDetail> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("odata.error")?;
    let code = match error.get("code") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let message = match error.get("message") {
        Some(Value::Object(m)) => m.get("value").and_then(Value::as_str).map(str::to_owned),
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    Some(ErrorDetail { code, message })
}

/// An OData string literal: quoted, with `'` doubled.
pub(crate) fn string_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `$name=value&…` with each value percent-encoded (UTF-8), `$` names kept literal.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, QUERY_VALUE)))
        .collect::<Vec<_>>()
        .join("&")
}

/// 1C dates in filters: `YYYY-MM-DDTHH:MM:SS`, nothing else (the value goes into a literal).
fn valid_datetime(value: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S").is_ok()
}

/// The paging position of `list_changed`: the next page is `modified ge since`, skipping
/// `skip` rows of it, and `seen` is the greatest modification date on earlier pages (the last
/// page may be empty).
///
/// Pages end on a date boundary (see [`Cursor::after_page`]) so that `skip` only ever counts
/// rows of one modification date: a `$skip` over a longer range would pass over unread rows
/// whenever a row already read is modified (it moves to the end and the rest shift left).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    skip: u64,
    since: Option<String>,
    seen: Option<String>,
}

impl Cursor {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}",
            self.skip,
            self.since.as_deref().unwrap_or(""),
            self.seen.as_deref().unwrap_or("")
        )
    }

    fn decode(text: &str) -> Option<Self> {
        let mut parts = text.split('|');
        let skip = parts.next()?.parse().ok()?;
        let date = |part: Option<&str>| -> Option<Option<String>> {
            match part {
                None | Some("") => Some(None),
                Some(d) if valid_datetime(d) => Some(Some(d.to_owned())),
                Some(_) => None,
            }
        };
        let since = date(parts.next())?;
        let seen = date(parts.next())?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self { skip, since, seen })
    }

    /// Of a full page whose rows have the modification dates `dates` (ascending), how many
    /// rows to hand out and where the next page starts.
    ///
    /// The rows of the page's last date are left for the next page, which starts at that date
    /// with nothing to skip; rows read before it can then move without shifting an unread one
    /// out of reach. Only a page of one single date (more rows changed in one second than a
    /// page holds) is handed out whole and continued by a skip within that date — the one case
    /// in which a row of that date modified during the listing can still shift another past
    /// the skip.
    fn after_page(&self, dates: &[&str]) -> (usize, Cursor) {
        let Some(last) = dates.last() else {
            return (0, self.clone());
        };
        let boundary = dates.iter().position(|d| d == last).unwrap_or(0);
        let skip = match boundary {
            0 if self.since.as_deref() == Some(*last) => self.skip + dates.len() as u64,
            0 => dates.len() as u64,
            _ => 0,
        };
        let kept = if boundary == 0 { dates.len() } else { boundary };
        let next = Cursor {
            skip,
            since: Some((*last).to_owned()),
            seen: self.seen.clone(),
        };
        (kept, next)
    }
}

/// [`OneCClient`] over 1C's standard OData interface.
#[derive(Debug)]
pub struct ODataClient {
    http: HttpCore,
    schema: OneCSchema,
    /// Set when the publication answered that it has no `$batch`; later batches go one
    /// customer per request.
    no_batch: AtomicBool,
}

/// The outcome of one batch exchange: per part, its responses, or a failure for all parts.
enum Exchange {
    Answered(Vec<Vec<PartResponse>>),
    Failed(OneCError),
    Unsupported,
}

impl ODataClient {
    pub fn new(config: &OneCConfig) -> Result<Self, OneCError> {
        Ok(Self {
            http: HttpCore::new(config, DIALECT)?,
            schema: config.schema.clone(),
            no_batch: AtomicBool::new(false),
        })
    }

    fn lookup_url(&self, platform_id: &str) -> url::Url {
        let filter = format!(
            "{} eq {}",
            self.schema.platform_id_attribute,
            string_literal(platform_id)
        );
        self.collection_url(&[("$format", "json"), ("$filter", &filter)])
    }

    /// One `POST $batch` with these parts; the answer must hold exactly one entry per part.
    async fn exchange(&self, operation: &'static str, parts: &[BatchPart]) -> Exchange {
        let (content_type, body) = batch::encode(parts);
        let url = self.http.url(&["odata", "standard.odata", "$batch"]);
        let request = self
            .http
            .batch_request(Method::POST, url)
            .header(CONTENT_TYPE, content_type)
            .body(body);
        let response = match self
            .http
            .send_as(operation, request, BodyFormat::Multipart)
            .await
        {
            Ok(response) => response,
            Err(e) if batch_unsupported(&e) => return Exchange::Unsupported,
            Err(e) => return Exchange::Failed(e),
        };
        let content_type = response
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match batch::decode(content_type, &response.body) {
            Ok(answers)
                if answers.len() == parts.len() && answers.iter().all(|a| !a.is_empty()) =>
            {
                Exchange::Answered(answers)
            }
            Ok(answers) => Exchange::Failed(malformed(
                response.status,
                format!("{} answers for {} batch parts", answers.len(), parts.len()),
                None,
            )),
            Err(reason) => Exchange::Failed(malformed(
                response.status,
                format!("unreadable batch answer: {reason}"),
                None,
            )),
        }
    }

    /// The batch flow: one `$batch` of lookups by platform id, then one `$batch` with a change
    /// set per customer (POST when not found, PATCH of the oldest match otherwise).
    async fn upsert_chunk(
        &self,
        items: &[&Counterparty],
    ) -> Option<Vec<Result<UpsertOutcome, OneCError>>> {
        let mut results: Vec<Option<Result<UpsertOutcome, OneCError>>> =
            items.iter().map(|_| None).collect();
        let lookups: Vec<BatchPart> = items
            .iter()
            .map(|cp| {
                BatchPart::Query(PartRequest {
                    method: Method::GET,
                    url: self.lookup_url(&cp.platform_id).to_string(),
                    json_body: None,
                })
            })
            .collect();
        let found = match self.exchange("find_by_platform_id", &lookups).await {
            Exchange::Unsupported => return None,
            Exchange::Failed(e) => {
                return Some(e.for_each_item(items.len()).into_iter().map(Err).collect())
            }
            Exchange::Answered(answers) => answers,
        };
        // Writes for the customers whose lookup succeeded, in item order.
        let mut writes = Vec::new();
        let mut parts = Vec::new();
        for (i, answer) in found.into_iter().enumerate() {
            let existing = answer
                .into_iter()
                .next()
                .ok_or_else(|| malformed(StatusCode::OK, "empty batch answer", None))
                .and_then(part_result)
                .and_then(|response| entities(&response));
            let existing = match existing {
                Ok(existing) => existing,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            if existing.len() > 1 {
                tracing::warn!(
                    platform_id = %items[i].platform_id,
                    duplicates = existing.len(),
                    "1C holds several counterparties with this platform id; updating the oldest"
                );
            }
            let body =
                serde_json::to_vec(&Value::Object(self.entity_body(items[i]))).unwrap_or_default();
            let write = match oldest(existing) {
                Some(entity) => {
                    match ref_and_version(&entity, StatusCode::OK)
                        .and_then(|(ref_key, _)| Ok((self.entity_url(&ref_key)?, ref_key)))
                    {
                        Ok((url, ref_key)) => (
                            PartRequest {
                                method: Method::PATCH,
                                url: url.to_string(),
                                json_body: Some(body),
                            },
                            Some(ref_key),
                        ),
                        Err(e) => {
                            results[i] = Some(Err(e));
                            continue;
                        }
                    }
                }
                None => (
                    PartRequest {
                        method: Method::POST,
                        url: self.collection_url(&[("$format", "json")]).to_string(),
                        json_body: Some(body),
                    },
                    None,
                ),
            };
            parts.push(BatchPart::ChangeSet(vec![write.0]));
            writes.push((i, write.1));
        }
        if !writes.is_empty() {
            match self.exchange("upsert_customers", &parts).await {
                Exchange::Answered(answers) => {
                    for ((i, known_ref), answer) in writes.into_iter().zip(answers) {
                        let outcome = match answer.into_iter().next().map(part_result) {
                            Some(Ok(response)) => self
                                .written(&response, known_ref.as_deref())
                                .await
                                .map(|(onec_id, data_version)| UpsertOutcome {
                                    onec_id,
                                    data_version,
                                    created: known_ref.is_none(),
                                }),
                            Some(Err(e)) => Err(e),
                            None => Err(malformed(StatusCode::OK, "empty batch answer", None)),
                        };
                        results[i] = Some(outcome);
                    }
                }
                Exchange::Failed(e) => {
                    for ((i, _), e) in writes.iter().zip(e.for_each_item(writes.len())) {
                        results[*i] = Some(Err(e));
                    }
                }
                // It answered the lookups, so it has $batch; a refusal now is an error.
                Exchange::Unsupported => {
                    let e = OneCError::Rejected {
                        status: 404,
                        code: None,
                        message: "1C refused the write batch".into(),
                    };
                    for ((i, _), e) in writes.iter().zip(e.for_each_item(writes.len())) {
                        results[*i] = Some(Err(e));
                    }
                }
            }
        }
        Some(
            results
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| Err(OneCError::InvalidRequest("customer not sent".into())))
                })
                .collect(),
        )
    }

    fn resource(&self) -> String {
        format!("Catalog_{}", self.schema.catalog)
    }

    fn collection_url(&self, query_pairs: &[(&str, &str)]) -> url::Url {
        let mut url = self
            .http
            .url(&["odata", "standard.odata", &self.resource()]);
        url.set_query(Some(&query(query_pairs)));
        url
    }

    fn entity_url(&self, ref_key: &str) -> Result<url::Url, OneCError> {
        let guid = uuid::Uuid::parse_str(ref_key)
            .map_err(|_| OneCError::InvalidRequest("1C reference is not a GUID".into()))?;
        let segment = format!("{}(guid'{}')", self.resource(), guid.hyphenated());
        let mut url = self.http.url(&["odata", "standard.odata", &segment]);
        url.set_query(Some(&query(&[("$format", "json")])));
        Ok(url)
    }

    async fn lookup(&self, platform_id: &str) -> Result<Vec<Map<String, Value>>, OneCError> {
        let url = self.lookup_url(platform_id);
        let response = self
            .http
            .send("find_by_platform_id", self.http.request(Method::GET, url))
            .await?;
        entities(&response)
    }

    async fn get_entity(
        &self,
        operation: &'static str,
        ref_key: &str,
    ) -> Result<Option<Map<String, Value>>, OneCError> {
        let request = self.http.request(Method::GET, self.entity_url(ref_key)?);
        match self.http.send(operation, request).await {
            Ok(response) => entity(&response).map(Some),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Ref_Key and DataVersion of a write's answer, read back when the body did not carry them.
    async fn written(
        &self,
        response: &Response,
        known_ref: Option<&str>,
    ) -> Result<(String, String), OneCError> {
        if !response.body.is_empty() {
            let body = entity(response)?;
            return ref_and_version(&body, response.status);
        }
        let location_ref = response
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(guid_from_location);
        let ref_key = known_ref
            .map(str::to_owned)
            .or(location_ref)
            .ok_or_else(|| malformed(response.status, "write answer has no entity", None))?;
        let read_back = self
            .get_entity("read_back", &ref_key)
            .await?
            .ok_or_else(|| malformed(response.status, "written entity not found", None))?;
        ref_and_version(&read_back, StatusCode::OK)
    }

    fn entity_body(&self, cp: &Counterparty) -> Map<String, Value> {
        let s = &self.schema;
        let text = |v: &Option<String>| Value::String(v.clone().unwrap_or_default());
        let mut body = Map::new();
        // Extras first, so a misconfigured extra cannot overwrite a mapped property.
        for (name, value) in &cp.extra {
            body.insert(name.clone(), Value::String(value.clone()));
        }
        body.insert("Description".into(), Value::String(cp.name.clone()));
        body.insert(
            "НаименованиеПолное".into(),
            Value::String(cp.full_name.clone()),
        );
        body.insert(
            "ЮридическоеФизическоеЛицо".into(),
            Value::String(
                match cp.kind {
                    CounterpartyKind::LegalEntity => LEGAL_ENTITY,
                    CounterpartyKind::Individual => INDIVIDUAL,
                }
                .into(),
            ),
        );
        body.insert("ИНН".into(), text(&cp.inn));
        body.insert("КПП".into(), text(&cp.kpp));
        body.insert(
            s.platform_id_attribute.clone(),
            Value::String(cp.platform_id.clone()),
        );
        body.insert(s.role_attribute.clone(), text(&cp.role));
        body.insert(s.status_attribute.clone(), text(&cp.status));
        body.insert(s.contact_person_attribute.clone(), text(&cp.contact_person));
        body.insert("DeletionMark".into(), Value::Bool(cp.deletion_mark));
        body.insert(CONTACT_INFO.into(), Value::Array(contact_rows(cp)));
        body
    }

    fn read_entity(&self, entity: &Map<String, Value>) -> Counterparty {
        let s = &self.schema;
        let text = |name: &str| {
            entity
                .get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let inn = text("ИНН");
        let kpp = text("КПП");
        let kind = match text("ЮридическоеФизическоеЛицо").as_deref() {
            Some(LEGAL_ENTITY) => CounterpartyKind::LegalEntity,
            Some(INDIVIDUAL) => CounterpartyKind::Individual,
            // Unset in 1C: a KPP or a 10-digit INN only exists for organisations.
            _ if kpp.is_some() || inn.as_ref().is_some_and(|i| i.len() == 10) => {
                CounterpartyKind::LegalEntity
            }
            _ => CounterpartyKind::Individual,
        };
        let name = text("Description").unwrap_or_default();
        let (email, phone) = contacts_from_rows(entity.get(CONTACT_INFO));
        Counterparty {
            platform_id: text(&s.platform_id_attribute).unwrap_or_default(),
            onec_id: text("Ref_Key").filter(|r| r != ZERO_GUID),
            data_version: text("DataVersion"),
            kind,
            full_name: text("НаименованиеПолное").unwrap_or_else(|| name.clone()),
            name,
            first_name: None,
            last_name: None,
            contact_person: text(&s.contact_person_attribute),
            inn,
            kpp,
            email,
            phone,
            role: text(&s.role_attribute),
            status: text(&s.status_attribute),
            deletion_mark: entity
                .get("DeletionMark")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            extra: self.extras(entity),
        }
    }

    /// Top-level string properties that are neither standard nor mapped: the extra attributes.
    fn extras(&self, entity: &Map<String, Value>) -> BTreeMap<String, String> {
        let s = &self.schema;
        let known: [&str; 17] = [
            "Ref_Key",
            "DataVersion",
            "Code",
            "Description",
            "DeletionMark",
            "Predefined",
            "PredefinedDataName",
            "IsFolder",
            "НаименованиеПолное",
            "ЮридическоеФизическоеЛицо",
            "ИНН",
            "КПП",
            CONTACT_INFO,
            &s.platform_id_attribute,
            &s.role_attribute,
            &s.status_attribute,
            &s.contact_person_attribute,
        ];
        entity
            .iter()
            .filter(|(name, _)| {
                !known.contains(&name.as_str())
                    && Some(name.as_str()) != s.modified_at_attribute.as_deref()
                    // Annotations (`odata.metadata`, `…@odata.navigationLinkUrl`); 1C
                    // attribute names never hold '.' or '@'.
                    && !name.contains(['@', '.'])
                    && !name.ends_with("_Key")
                    && !name.ends_with("_Type")
            })
            .filter_map(|(name, value)| match value {
                Value::String(v) if !v.is_empty() && v != ZERO_GUID && v != EMPTY_DATE => {
                    Some((name.clone(), v.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn modified_at(&self, entity: &Map<String, Value>) -> Option<String> {
        let attribute = self.schema.modified_at_attribute.as_deref()?;
        entity
            .get(attribute)
            .and_then(Value::as_str)
            .filter(|v| *v != EMPTY_DATE && valid_datetime(v))
            .map(str::to_owned)
    }
}

fn contact_rows(cp: &Counterparty) -> Vec<Value> {
    let mut rows = Vec::new();
    if let Some(email) = &cp.email {
        rows.push(serde_json::json!({
            "LineNumber": (rows.len() + 1).to_string(),
            "Тип": EMAIL_TYPE,
            "Представление": email,
            "АдресЭП": email,
        }));
    }
    if let Some(phone) = &cp.phone {
        rows.push(serde_json::json!({
            "LineNumber": (rows.len() + 1).to_string(),
            "Тип": PHONE_TYPE,
            "Представление": phone,
            "НомерТелефона": phone,
        }));
    }
    rows
}

fn contacts_from_rows(rows: Option<&Value>) -> (Option<String>, Option<String>) {
    let mut email = None;
    let mut phone = None;
    for row in rows.and_then(Value::as_array).into_iter().flatten() {
        let field = |name: &str| {
            row.get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        match row.get("Тип").and_then(Value::as_str) {
            Some(EMAIL_TYPE) if email.is_none() => {
                email = field("АдресЭП").or_else(|| field("Представление"));
            }
            Some(PHONE_TYPE) if phone.is_none() => {
                phone = field("НомерТелефона").or_else(|| field("Представление"));
            }
            _ => {}
        }
    }
    (email, phone)
}

fn guid_from_location(location: &str) -> Option<String> {
    let decoded = percent_encoding::percent_decode_str(location).decode_utf8_lossy();
    let start = decoded.find("guid'")? + "guid'".len();
    let len = decoded[start..].find('\'')?;
    let guid = uuid::Uuid::parse_str(&decoded[start..start + len]).ok()?;
    Some(guid.hyphenated().to_string())
}

fn parse_value(response: &Response) -> Result<Value, OneCError> {
    serde_json::from_slice(&response.body).map_err(|e| {
        malformed(
            response.status,
            "body is not the expected JSON",
            Some(Box::new(e)),
        )
    })
}

fn entity(response: &Response) -> Result<Map<String, Value>, OneCError> {
    match parse_value(response)? {
        Value::Object(map) => Ok(map),
        _ => Err(malformed(response.status, "entity is not an object", None)),
    }
}

fn entities(response: &Response) -> Result<Vec<Map<String, Value>>, OneCError> {
    let Value::Object(mut body) = parse_value(response)? else {
        return Err(malformed(response.status, "answer is not an object", None));
    };
    let Some(Value::Array(items)) = body.remove("value") else {
        return Err(malformed(
            response.status,
            "answer has no value array",
            None,
        ));
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(map) if has_ref(&map) => Ok(map),
            _ => Err(malformed(response.status, "an entity has no Ref_Key", None)),
        })
        .collect()
}

/// A response inside a batch, classified as the same response outside one would be.
fn part_result(part: PartResponse) -> Result<Response, OneCError> {
    classify(part.status, &part.headers, &part.body, &DIALECT)?;
    Ok(Response {
        status: part.status,
        headers: part.headers,
        body: part.body,
    })
}

fn has_ref(entity: &Map<String, Value>) -> bool {
    entity
        .get("Ref_Key")
        .and_then(Value::as_str)
        .is_some_and(|r| !r.is_empty() && r != ZERO_GUID)
}

fn ref_and_version(
    entity: &Map<String, Value>,
    status: StatusCode,
) -> Result<(String, String), OneCError> {
    let get = |name: &str| {
        entity
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty() && *v != ZERO_GUID)
            .map(str::to_owned)
    };
    let ref_key = get("Ref_Key").ok_or_else(|| malformed(status, "answer has no Ref_Key", None))?;
    let version =
        get("DataVersion").ok_or_else(|| malformed(status, "answer has no DataVersion", None))?;
    Ok((ref_key, version))
}

fn is_not_found(error: &OneCError) -> bool {
    // 1C answers a missing entity with 404 and an odata.error body; a bare or HTML 404 means
    // a wrong publication and stays an error.
    matches!(
        error,
        OneCError::Rejected {
            status: 404,
            code: Some(_),
            ..
        }
    )
}

/// Of several counterparties with one platform id (created in 1C by hand), the oldest.
fn oldest(mut found: Vec<Map<String, Value>>) -> Option<Map<String, Value>> {
    let key = |e: &Map<String, Value>| {
        (
            e.get("Code")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            e.get("Ref_Key")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        )
    };
    found.sort_by_key(key);
    found.into_iter().next()
}

#[async_trait]
impl OneCClient for ODataClient {
    async fn upsert_customer(&self, cp: &Counterparty) -> Result<UpsertOutcome, OneCError> {
        if cp.platform_id.trim().is_empty() {
            return Err(OneCError::InvalidRequest("platform id is empty".into()));
        }
        // Look up first, so a retried create whose first answer was lost updates instead.
        let found = self.lookup(&cp.platform_id).await?;
        if found.len() > 1 {
            tracing::warn!(
                platform_id = %cp.platform_id,
                duplicates = found.len(),
                "1C holds several counterparties with this platform id; updating the oldest"
            );
        }
        let body = Value::Object(self.entity_body(cp));
        match oldest(found) {
            Some(existing) => {
                let (ref_key, _) = ref_and_version(&existing, StatusCode::OK)?;
                let request = self
                    .http
                    .request(Method::PATCH, self.entity_url(&ref_key)?)
                    .json(&body);
                let response = self.http.send("upsert_customer", request).await?;
                let (onec_id, data_version) = self.written(&response, Some(&ref_key)).await?;
                Ok(UpsertOutcome {
                    onec_id,
                    data_version,
                    created: false,
                })
            }
            None => {
                let url = self.collection_url(&[("$format", "json")]);
                let request = self.http.request(Method::POST, url).json(&body);
                let response = self.http.send("upsert_customer", request).await?;
                let (onec_id, data_version) = self.written(&response, None).await?;
                Ok(UpsertOutcome {
                    onec_id,
                    data_version,
                    created: true,
                })
            }
        }
    }

    async fn upsert_customers(
        &self,
        items: &[Counterparty],
    ) -> Vec<Result<UpsertOutcome, OneCError>> {
        let (mut results, sendable) = batch_items::triage(items);
        // A platform id appears at most once per batch: two lookups in one batch would both
        // miss, and both POSTs would create. Repeats go in a later round.
        let mut rounds: Vec<Vec<usize>> = Vec::new();
        for i in sendable {
            let pid = &items[i].platform_id;
            match rounds
                .iter_mut()
                .find(|round| round.iter().all(|&j| items[j].platform_id != *pid))
            {
                Some(round) => round.push(i),
                None => rounds.push(vec![i]),
            }
        }
        let chunks = rounds
            .iter()
            .flat_map(|round| round.chunks(MAX_BATCH_ITEMS))
            .collect::<Vec<_>>();
        for chunk in chunks {
            let batch: Vec<&Counterparty> = chunk.iter().map(|&i| &items[i]).collect();
            let answered = if self.no_batch.load(Ordering::Relaxed) {
                None
            } else {
                self.upsert_chunk(&batch).await
            };
            let answered = match answered {
                Some(answered) => answered,
                None => {
                    batch_items::note_no_batch(
                        &self.no_batch,
                        "this 1C publication has no OData $batch",
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
        match self.get_entity("fetch_customer", onec_id).await? {
            Some(entity) => {
                if !has_ref(&entity) {
                    return Err(malformed(StatusCode::OK, "entity has no Ref_Key", None));
                }
                Ok(Some(self.read_entity(&entity)))
            }
            None => Ok(None),
        }
    }

    async fn find_by_platform_id(
        &self,
        platform_id: &str,
    ) -> Result<Option<Counterparty>, OneCError> {
        let found = self.lookup(platform_id).await?;
        if found.len() > 1 {
            tracing::warn!(
                platform_id,
                duplicates = found.len(),
                "1C holds several counterparties with this platform id; using the oldest"
            );
        }
        Ok(oldest(found).map(|e| self.read_entity(&e)))
    }

    async fn list_changed(
        &self,
        watermark: Option<&str>,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<ChangePage, OneCError> {
        let top = page_size.max(1);
        let cursor = match cursor {
            Some(text) => Cursor::decode(text)
                .ok_or_else(|| OneCError::InvalidRequest("unreadable change cursor".into()))?,
            None => {
                let since = watermark.filter(|w| !w.is_empty()).map(str::to_owned);
                if since.as_deref().is_some_and(|w| !valid_datetime(w)) {
                    return Err(OneCError::InvalidRequest(
                        "watermark is not a 1C date (YYYY-MM-DDTHH:MM:SS)".into(),
                    ));
                }
                Cursor {
                    skip: 0,
                    since,
                    seen: None,
                }
            }
        };
        let attribute = self.schema.modified_at_attribute.as_deref();
        let filter = match (attribute, &cursor.since) {
            (Some(attr), Some(since)) => Some(format!("{attr} ge datetime'{since}'")),
            _ => None,
        };
        let orderby = match attribute {
            Some(attr) => format!("{attr} asc,Ref_Key asc"),
            None => "Ref_Key asc".to_owned(),
        };
        let top_text = top.to_string();
        let skip_text = cursor.skip.to_string();
        let mut pairs = vec![("$format", "json")];
        if let Some(filter) = &filter {
            pairs.push(("$filter", filter));
        }
        pairs.push(("$orderby", &orderby));
        pairs.push(("$top", &top_text));
        pairs.push(("$skip", &skip_text));
        let url = self.collection_url(&pairs);
        let response = self
            .http
            .send("list_changed", self.http.request(Method::GET, url))
            .await?;
        let mut found = entities(&response)?;
        let full = found.len() as u64 >= u64::from(top);
        let next = match attribute {
            Some(attr) if full => {
                let dates: Vec<&str> = found
                    .iter()
                    .map(|e| {
                        e.get(attr)
                            .and_then(Value::as_str)
                            .filter(|v| valid_datetime(v))
                            .unwrap_or(EMPTY_DATE)
                    })
                    .collect();
                let (kept, next) = cursor.after_page(&dates);
                found.truncate(kept);
                Some(next)
            }
            // Without a date the whole catalogue is listed by reference; rows are only added.
            None if full => Some(Cursor {
                skip: cursor.skip + found.len() as u64,
                since: None,
                seen: None,
            }),
            _ => None,
        };
        let watermark = found
            .iter()
            .filter_map(|e| self.modified_at(e))
            .chain(cursor.since.clone().filter(|d| d != EMPTY_DATE))
            .chain(cursor.seen.clone())
            .max();
        let next_cursor = next.map(|next| {
            Cursor {
                seen: watermark.clone(),
                ..next
            }
            .encode()
        });
        Ok(ChangePage {
            items: found.iter().map(|e| self.read_entity(e)).collect(),
            next_cursor,
            watermark: if attribute.is_some() { watermark } else { None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onec::config::{Credentials, Transport};

    fn client() -> ODataClient {
        let config = OneCConfig::new(
            url::Url::parse("https://1c.example.ru/trade/").unwrap(),
            Transport::OData,
            Credentials::new("u", "p"),
            false,
        )
        .unwrap();
        ODataClient::new(&config).unwrap()
    }

    fn legal() -> Counterparty {
        Counterparty {
            platform_id: "p-1".into(),
            onec_id: None,
            data_version: None,
            kind: CounterpartyKind::LegalEntity,
            name: "Ромашка".into(),
            full_name: "ООО \"Ромашка\"".into(),
            first_name: None,
            last_name: None,
            contact_person: Some("Петров Пётр".into()),
            inn: Some("7707083893".into()),
            kpp: Some("770701001".into()),
            email: Some("info@romashka.ru".into()),
            phone: Some("+79123456789".into()),
            role: Some("Опт".into()),
            status: Some("Активен".into()),
            deletion_mark: false,
            extra: BTreeMap::from([("Город".into(), "Казань".into())]),
        }
    }

    #[test]
    fn the_catalog_path_is_percent_encoded_utf8() {
        let url = client().collection_url(&[("$format", "json")]);
        assert_eq!(
            url.as_str(),
            "https://1c.example.ru/trade/odata/standard.odata/\
             Catalog_%D0%9A%D0%BE%D0%BD%D1%82%D1%80%D0%B0%D0%B3%D0%B5%D0%BD%D1%82%D1%8B\
             ?$format=json"
        );
    }

    #[test]
    fn an_entity_url_addresses_the_guid_and_refuses_anything_else() {
        let c = client();
        let url = c
            .entity_url("1FA1A135-D89B-11E6-8343-40167E2531C3")
            .unwrap();
        assert!(url
            .as_str()
            .ends_with("(guid'1fa1a135-d89b-11e6-8343-40167e2531c3')?$format=json"));
        assert!(matches!(
            c.entity_url("x') or true or ('"),
            Err(OneCError::InvalidRequest(_))
        ));
    }

    #[test]
    fn a_filter_literal_doubles_quotes_and_the_query_encodes_spaces_and_cyrillic() {
        let filter = format!("ИдентификаторНаСайте eq {}", string_literal("o'brien&co"));
        assert_eq!(filter, "ИдентификаторНаСайте eq 'o''brien&co'");
        let q = query(&[("$format", "json"), ("$filter", &filter)]);
        assert!(q.starts_with("$format=json&$filter=%D0%98"), "{q}");
        assert!(q.ends_with("%20eq%20'o''brien%26co'"), "{q}");
    }

    #[test]
    fn an_odata_error_yields_its_string_code_and_message_value() {
        let body =
            r#"{"odata.error":{"code":"-1","message":{"lang":"ru","value":"Не заполнен ИНН"}}}"#;
        let detail = parse_error_body(body.as_bytes()).unwrap();
        assert_eq!(detail.code.as_deref(), Some("-1"));
        assert_eq!(detail.message.as_deref(), Some("Не заполнен ИНН"));
        let numeric = parse_error_body(br#"{"odata.error":{"code":9,"message":"x"}}"#).unwrap();
        assert_eq!(numeric.code.as_deref(), Some("9"));
        assert!(parse_error_body(br#"{"error":{}}"#).is_none());
    }

    #[test]
    fn a_counterparty_survives_the_trip_through_an_entity() {
        // Given a counterparty written as an entity, with what 1C adds on its side
        let c = client();
        let mut entity = c.entity_body(&legal());
        entity.insert(
            "Ref_Key".into(),
            "1fa1a135-d89b-11e6-8343-40167e2531c3".into(),
        );
        entity.insert("DataVersion".into(), "AAAAAAAETag=".into());
        entity.insert("Code".into(), "00-000021".into());
        entity.insert("Parent_Key".into(), ZERO_GUID.into());
        entity.insert("ДатаИзменения".into(), "2026-11-28T15:04:05".into());

        // When it is read back
        let cp = c.read_entity(&entity);

        // Then it equals the original plus 1C's reference and version
        let mut expected = legal();
        expected.onec_id = Some("1fa1a135-d89b-11e6-8343-40167e2531c3".into());
        expected.data_version = Some("AAAAAAAETag=".into());
        assert_eq!(cp, expected);
    }

    #[test]
    fn contact_information_is_sent_whole_with_line_numbers() {
        let entity = client().entity_body(&legal());
        let rows = entity[CONTACT_INFO].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["LineNumber"], "1");
        assert_eq!(rows[0]["Тип"], EMAIL_TYPE);
        assert_eq!(rows[0]["АдресЭП"], "info@romashka.ru");
        assert_eq!(rows[1]["LineNumber"], "2");
        assert_eq!(rows[1]["НомерТелефона"], "+79123456789");
        assert_eq!(entity["ЮридическоеФизическоеЛицо"], LEGAL_ENTITY);
        assert_eq!(entity["ИдентификаторНаСайте"], "p-1");
    }

    #[test]
    fn the_all_zero_guid_means_no_reference() {
        let mut entity = Map::new();
        entity.insert("Ref_Key".into(), ZERO_GUID.into());
        entity.insert("Description".into(), "x".into());
        assert_eq!(client().read_entity(&entity).onec_id, None);
        assert!(!has_ref(&entity));
    }

    #[test]
    fn of_duplicates_the_one_with_the_lowest_code_is_chosen() {
        let e = |code: &str, r: &str| {
            let mut m = Map::new();
            m.insert("Code".into(), code.into());
            m.insert("Ref_Key".into(), r.into());
            m
        };
        let chosen = oldest(vec![
            e("00-000031", "b"),
            e("00-000007", "c"),
            e("00-000012", "a"),
        ])
        .unwrap();
        assert_eq!(chosen["Ref_Key"], "c");
    }

    #[test]
    fn a_full_page_leaves_its_last_dates_rows_to_the_next_page_which_starts_at_that_date() {
        const D1: &str = "2026-11-28T10:00:01";
        const D2: &str = "2026-11-28T10:00:02";
        const D3: &str = "2026-11-28T10:00:03";
        let start = Cursor {
            skip: 0,
            since: Some(D1.into()),
            seen: None,
        };
        // Rows of several dates: the trailing D3 rows wait for the next page
        let (kept, next) = start.after_page(&[D1, D2, D3, D3]);
        assert_eq!(kept, 2);
        assert_eq!((next.since.as_deref(), next.skip), (Some(D3), 0));
        // A page of one date is handed out whole; the next skips within that date
        let (kept, next) = next.after_page(&[D3, D3, D3, D3]);
        assert_eq!(kept, 4);
        assert_eq!((next.since.as_deref(), next.skip), (Some(D3), 4));
        let (kept, next) = next.after_page(&[D3, D3, D3, D3]);
        assert_eq!((kept, next.skip), (4, 8));
        // A page of one date later than where it started skips only that date's rows
        let (kept, next) = start.after_page(&[D2, D2]);
        assert_eq!(kept, 2);
        assert_eq!((next.since.as_deref(), next.skip), (Some(D2), 2));
    }

    #[test]
    fn a_cursor_round_trips_and_rejects_injection() {
        let cursor = Cursor {
            skip: 40,
            since: Some("2026-11-28T15:04:05".into()),
            seen: Some("2026-11-28T16:00:00".into()),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        let bare = Cursor {
            skip: 3,
            since: None,
            seen: None,
        };
        assert_eq!(Cursor::decode(&bare.encode()), Some(bare.clone()));
        assert_eq!(Cursor::decode("3"), Some(bare));
        assert_eq!(Cursor::decode("3|2026' or 1 eq 1|"), None);
        assert_eq!(Cursor::decode("3||x"), None);
        assert_eq!(Cursor::decode("x"), None);
    }

    #[test]
    fn annotations_are_not_taken_for_extra_attributes() {
        let c = client();
        let mut entity = c.entity_body(&legal());
        entity.insert(
            "odata.metadata".into(),
            "http://h/$metadata#X/@Element".into(),
        );
        entity.insert("Parent@navigationLinkUrl".into(), "X".into());
        assert_eq!(
            c.read_entity(&entity).extra,
            BTreeMap::from([("Город".to_owned(), "Казань".to_owned())])
        );
    }

    #[test]
    fn the_location_header_yields_the_new_reference() {
        let location = "https://h/trade/odata/standard.odata/Catalog_%D0%9A(guid'1fa1a135-d89b-11e6-8343-40167e2531c3')";
        assert_eq!(
            guid_from_location(location).as_deref(),
            Some("1fa1a135-d89b-11e6-8343-40167e2531c3")
        );
        assert_eq!(guid_from_location("https://h/x"), None);
    }
}

#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
