//! Transport `odata`: `/odata/standard.odata/Catalog_<catalog>` as 1C's standard interface
//! serves it (OData v3, JSON only).

use crate::config::EmulatorConfig;
use crate::server::{encode_segment, query_pairs, query_param, AppState};
use crate::store::{
    onec_date, CounterpartyFields, CounterpartyKind, CounterpartyRecord, StoreError,
};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDateTime;
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use std::sync::Arc;

const ZERO_GUID: &str = "00000000-0000-0000-0000-000000000000";
const EMAIL_TYPE: &str = "АдресЭлектроннойПочты";
const PHONE_TYPE: &str = "Телефон";
const CONTACT_INFO: &str = "КонтактнаяИнформация";
const LEGAL_ENTITY: &str = "ЮридическоеЛицо";
const INDIVIDUAL: &str = "ФизическоеЛицо";

/// An `odata.error` answer.
#[derive(Debug)]
struct ODataError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ODataError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_query(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "14", message)
    }

    fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "9",
            "Экземпляр сущности не найден по переданному ключу",
        )
    }
}

impl From<StoreError> for ODataError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(_) => Self::not_found(),
            StoreError::Conflict(message) => Self::new(StatusCode::BAD_REQUEST, "15", message),
            // What 1C answers when `ПередЗаписью` sets Отказ: a 500 with code -1.
            StoreError::Business(message) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "-1",
                format!("Ошибка при вызове метода контекста (Записать): {message}"),
            ),
        }
    }
}

impl IntoResponse for ODataError {
    fn into_response(self) -> Response {
        odata_json(
            self.status,
            &json!({"odata.error": {"code": self.code, "message": {"lang": "ru", "value": self.message}}}),
        )
    }
}

fn odata_json(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                "application/json;odata=minimalmetadata;charset=utf-8",
            ),
            (header::HeaderName::from_static("dataserviceversion"), "3.0"),
        ],
        Body::from(body),
    )
        .into_response()
}

/// What the path addresses.
enum Target {
    Collection,
    Entity(String),
}

fn parse_target(resource: &str, config: &EmulatorConfig) -> Result<Target, ODataError> {
    let entity_set = format!("Catalog_{}", config.catalog);
    let Some(rest) = resource.strip_prefix(entity_set.as_str()) else {
        return Err(ODataError::new(
            StatusCode::NOT_FOUND,
            "8",
            format!("Тип сущности не найден: {resource}"),
        ));
    };
    if rest.is_empty() {
        return Ok(Target::Collection);
    }
    let key = rest
        .strip_prefix("(guid'")
        .and_then(|k| k.strip_suffix("')"))
        .ok_or_else(|| ODataError::new(StatusCode::BAD_REQUEST, "6", "Неправильный URL"))?;
    let key = uuid::Uuid::parse_str(key)
        .map_err(|_| ODataError::new(StatusCode::BAD_REQUEST, "6", "Неправильный ключ сущности"))?;
    Ok(Target::Entity(key.to_string()))
}

/// Only `$format=json` (or an `Accept` asking for JSON) is emulated; 1C's default is Atom.
fn require_json(pairs: &[(String, String)], headers: &HeaderMap) -> Result<(), ODataError> {
    let format_is_json = query_param(pairs, "$format")
        .is_some_and(|f| f == "json" || f.starts_with("application/json"));
    let accepts_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if format_is_json || accepts_json {
        Ok(())
    } else {
        Err(ODataError::new(
            StatusCode::NOT_ACCEPTABLE,
            "3",
            "Тип представления не поддерживается эмулятором: используйте $format=json",
        ))
    }
}

fn metadata_url(app: &AppState, element: bool) -> String {
    format!(
        "{}/odata/standard.odata/$metadata#Catalog_{}{}",
        app.base_url,
        app.config.catalog,
        if element { "/@Element" } else { "" }
    )
}

/// A counterparty as the standard interface shows it: every attribute, empty strings for
/// empty values, zero GUIDs for empty references.
fn entity(config: &EmulatorConfig, record: &CounterpartyRecord) -> Map<String, Value> {
    let f = &record.fields;
    let text = |v: &Option<String>| Value::String(v.clone().unwrap_or_default());
    let mut e = Map::new();
    // Extras first, so a standard property always wins a name clash.
    for (name, value) in &f.extra {
        e.insert(name.clone(), Value::String(value.clone()));
    }
    e.insert("Ref_Key".into(), json!(record.onec_id));
    e.insert("DataVersion".into(), json!(record.data_version));
    e.insert("DeletionMark".into(), json!(f.deletion_mark));
    e.insert("Parent_Key".into(), json!(ZERO_GUID));
    e.insert("IsFolder".into(), json!(false));
    e.insert("Predefined".into(), json!(false));
    e.insert("PredefinedDataName".into(), json!(""));
    e.insert("Code".into(), json!(record.code));
    e.insert("Description".into(), json!(f.name));
    e.insert("НаименованиеПолное".into(), json!(f.full_name));
    e.insert(
        "ЮридическоеФизическоеЛицо".into(),
        json!(match f.kind {
            CounterpartyKind::LegalEntity => LEGAL_ENTITY,
            CounterpartyKind::Individual => INDIVIDUAL,
        }),
    );
    e.insert("ИНН".into(), text(&f.inn));
    e.insert("КПП".into(), text(&f.kpp));
    e.insert("ГоловнойКонтрагент_Key".into(), json!(record.onec_id));
    e.insert(config.platform_id_attribute.clone(), text(&f.platform_id));
    e.insert(config.role_attribute.clone(), text(&f.role));
    e.insert(config.status_attribute.clone(), text(&f.status));
    e.insert(
        config.contact_person_attribute.clone(),
        text(&f.contact_person),
    );
    e.insert(
        config.modified_at_attribute.clone(),
        json!(onec_date::format(&record.modified_at)),
    );
    let mut rows = Vec::new();
    let mut row = |kind: &str, value: &str, email: &str, phone: &str| {
        rows.push(json!({
            "LineNumber": (rows.len() + 1).to_string(),
            "Тип": kind,
            "Вид_Key": ZERO_GUID,
            "Представление": value,
            "АдресЭП": email,
            "НомерТелефона": phone,
            "ЗначенияПолей": "",
        }));
    };
    if let Some(email) = &f.email {
        row(EMAIL_TYPE, email, email, "");
    }
    if let Some(phone) = &f.phone {
        row(PHONE_TYPE, phone, "", phone);
    }
    e.insert(CONTACT_INFO.into(), Value::Array(rows));
    e
}

/// Applies the properties of a POST/PATCH body; unknown non-string properties are ignored, as
/// 1C ignores properties the object does not have. String properties that are not standard
/// are kept as extra attributes (the emulated catalogue has every attribute a mapping names).
fn apply_body(
    config: &EmulatorConfig,
    body: &Map<String, Value>,
    fields: &mut CounterpartyFields,
) -> Result<(), ODataError> {
    let invalid = |name: &str| {
        ODataError::new(
            StatusCode::BAD_REQUEST,
            "4",
            format!("Неправильное значение свойства: {name}"),
        )
    };
    let string = |name: &str, value: &Value| -> Result<String, ODataError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Null => Ok(String::new()),
            _ => Err(invalid(name)),
        }
    };
    let optional = |name: &str, value: &Value| -> Result<Option<String>, ODataError> {
        string(name, value).map(|s| Some(s).filter(|s| !s.is_empty()))
    };
    for (name, value) in body {
        match name.as_str() {
            "Description" => fields.name = string(name, value)?,
            "НаименованиеПолное" => fields.full_name = string(name, value)?,
            "ЮридическоеФизическоеЛицо" => {
                fields.kind = match string(name, value)?.as_str() {
                    LEGAL_ENTITY => CounterpartyKind::LegalEntity,
                    INDIVIDUAL => CounterpartyKind::Individual,
                    _ => return Err(invalid(name)),
                }
            }
            "ИНН" => fields.inn = optional(name, value)?,
            "КПП" => fields.kpp = optional(name, value)?,
            "DeletionMark" => {
                fields.deletion_mark = value.as_bool().ok_or_else(|| invalid(name))?
            }
            CONTACT_INFO => {
                apply_contact_info(value, fields).map_err(|e| e.unwrap_or_else(|| invalid(name)))?
            }
            n if n == config.platform_id_attribute => fields.platform_id = optional(name, value)?,
            n if n == config.role_attribute => fields.role = optional(name, value)?,
            n if n == config.status_attribute => fields.status = optional(name, value)?,
            n if n == config.contact_person_attribute => {
                fields.contact_person = optional(name, value)?
            }
            // Assigned by 1C itself, or references and annotations the emulator has no use for.
            "Ref_Key" | "DataVersion" | "Code" | "IsFolder" | "Predefined"
            | "PredefinedDataName" => {}
            n if n == config.modified_at_attribute => {}
            n if n.contains('@')
                || n.contains('.')
                || n.ends_with("_Key")
                || n.ends_with("_Type") => {}
            _ => match value {
                Value::String(s) if s.is_empty() => {
                    fields.extra.remove(name);
                }
                Value::String(s) => {
                    fields.extra.insert(name.clone(), s.clone());
                }
                _ => {}
            },
        }
    }
    Ok(())
}

/// The tabular section replaces e-mail and phone whole, as 1C replaces every row on write.
/// `Err(None)` is a malformed value; `Err(Some)` a specific refusal.
fn apply_contact_info(
    value: &Value,
    fields: &mut CounterpartyFields,
) -> Result<(), Option<ODataError>> {
    let rows = value.as_array().ok_or(None)?;
    let mut email = None;
    let mut phone = None;
    for row in rows {
        let row = row.as_object().ok_or(None)?;
        if !row.contains_key("LineNumber") {
            // Real 1C fails the write when a row has no LineNumber.
            return Err(Some(ODataError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "-1",
                "Произошла внутренняя ошибка OData сервиса: у строки табличной части не задан LineNumber",
            )));
        }
        let field = |name: &str| {
            row.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        match field("Тип") {
            Some(EMAIL_TYPE) => {
                email = field("АдресЭП")
                    .or(field("Представление"))
                    .map(str::to_string)
            }
            Some(PHONE_TYPE) => {
                phone = field("НомерТелефона")
                    .or(field("Представление"))
                    .map(str::to_string)
            }
            _ => {}
        }
    }
    fields.email = email;
    fields.phone = phone;
    Ok(())
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, ODataError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ODataError::new(
            StatusCode::BAD_REQUEST,
            "2",
            "Неправильный формат запроса: ожидается объект JSON",
        )),
    }
}

fn entity_response(app: &AppState, status: StatusCode, record: &CounterpartyRecord) -> Response {
    let mut body = Map::new();
    body.insert("odata.metadata".into(), json!(metadata_url(app, true)));
    body.extend(entity(&app.config, record));
    odata_json(status, &Value::Object(body))
}

pub(crate) async fn get(
    State(app): State<Arc<AppState>>,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let result = require_json(&pairs, &headers)
        .and_then(|()| parse_target(&resource, &app.config))
        .and_then(|target| match target {
            Target::Entity(id) => {
                let store = app.store();
                let record = store.get(&id).ok_or_else(ODataError::not_found)?;
                Ok(entity_response(&app, StatusCode::OK, record))
            }
            Target::Collection => collection(&app, &pairs),
        });
    result.unwrap_or_else(IntoResponse::into_response)
}

fn collection(app: &AppState, pairs: &[(String, String)]) -> Result<Response, ODataError> {
    let filter = query_param(pairs, "$filter")
        .map(filter::parse)
        .transpose()
        .map_err(ODataError::bad_query)?;
    let order = query_param(pairs, "$orderby")
        .map(parse_orderby)
        .transpose()?
        .unwrap_or_default();
    let number = |name: &str| -> Result<Option<usize>, ODataError> {
        query_param(pairs, name)
            .map(|v| {
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| ODataError::bad_query(format!("Неправильное значение {name}")))
            })
            .transpose()
    };
    let skip = number("$skip")?.unwrap_or(0);
    let top = number("$top")?;
    let select: Option<Vec<String>> = query_param(pairs, "$select")
        .map(|s| s.split(',').map(|p| p.trim().to_string()).collect())
        .filter(|s: &Vec<String>| !s.iter().any(|p| p == "*" || p == "**"));

    let mut entities = Vec::new();
    let store = app.store();
    // A lookup by platform id uses the attribute's index, as in 1C (where it is indexed);
    // anything else scans the catalogue.
    let records = match &filter {
        Some(filter::Expr::Compare(property, filter::Op::Eq, filter::Literal::Str(value)))
            if *property == app.config.platform_id_attribute =>
        {
            let mut found = store.find_by_platform_id(value);
            found.sort_by(|a, b| a.code.cmp(&b.code));
            found
        }
        _ => store.all(),
    };
    for record in records {
        let e = entity(&app.config, record);
        let keep = match &filter {
            Some(f) => f.eval(&e).map_err(ODataError::bad_query)?,
            None => true,
        };
        if keep {
            entities.push(e);
        }
    }
    drop(store);
    for (property, _) in &order {
        if entities.first().is_some_and(|e| !e.contains_key(property)) {
            return Err(ODataError::bad_query(format!(
                "Свойство не найдено: {property}"
            )));
        }
    }
    // Stable sort on top of Code order, so ties keep a deterministic order across pages.
    entities.sort_by(|a, b| {
        order
            .iter()
            .map(|(p, desc)| {
                let ord = compare_values(a.get(p), b.get(p));
                if *desc {
                    ord.reverse()
                } else {
                    ord
                }
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    });
    let page = entities
        .into_iter()
        .skip(skip)
        .take(top.unwrap_or(usize::MAX))
        .map(|mut e| {
            if let Some(select) = &select {
                e.retain(|k, _| select.iter().any(|s| s == k));
            }
            Value::Object(e)
        })
        .collect::<Vec<_>>();
    Ok(odata_json(
        StatusCode::OK,
        &json!({"odata.metadata": metadata_url(app, false), "value": page}),
    ))
}

fn parse_orderby(raw: &str) -> Result<Vec<(String, bool)>, ODataError> {
    raw.split(',')
        .map(|item| {
            let mut words = item.split_whitespace();
            let property = words
                .next()
                .ok_or_else(|| ODataError::bad_query("Пустой элемент $orderby"))?;
            let desc = match words.next() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => {
                    return Err(ODataError::bad_query(format!(
                        "Неправильное направление сортировки: {other}"
                    )))
                }
            };
            if words.next().is_some() {
                return Err(ODataError::bad_query("Неправильный $orderby"));
            }
            Ok((property.to_string(), desc))
        })
        .collect()
}

fn compare_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::String(a)), Some(Value::String(b))) => a.cmp(b),
        (Some(Value::Bool(a)), Some(Value::Bool(b))) => a.cmp(b),
        (Some(Value::Number(a)), Some(Value::Number(b))) => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(Ordering::Equal),
        _ => Ordering::Equal,
    }
}

pub(crate) async fn post(
    State(app): State<Arc<AppState>>,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let result = (|| {
        require_json(&pairs, &headers)?;
        if !matches!(parse_target(&resource, &app.config)?, Target::Collection) {
            return Err(ODataError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "19",
                "Метод HTTP запрещен в данном контексте",
            ));
        }
        let body = parse_body(&body)?;
        let mut fields = CounterpartyFields::new(CounterpartyKind::LegalEntity, "");
        fields.full_name.clear();
        apply_body(&app.config, &body, &mut fields)?;
        // No dedupe by platform id: a plain POST always creates, exactly as 1C does.
        let record = app.store().create(fields)?;
        let mut response = entity_response(&app, StatusCode::CREATED, &record);
        let location = format!(
            "{}/odata/standard.odata/Catalog_{}(guid'{}')",
            app.base_url,
            encode_segment(&app.config.catalog),
            record.onec_id
        );
        if let Ok(location) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(response)
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn patch(
    State(app): State<Arc<AppState>>,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let result = (|| {
        require_json(&pairs, &headers)?;
        let Target::Entity(id) = parse_target(&resource, &app.config)? else {
            return Err(ODataError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "19",
                "Метод HTTP запрещен в данном контексте",
            ));
        };
        let body = parse_body(&body)?;
        let mut store = app.store();
        let mut fields = store
            .get(&id)
            .ok_or_else(ODataError::not_found)?
            .fields
            .clone();
        apply_body(&app.config, &body, &mut fields)?;
        let record = store.update(&id, |f| *f = fields)?;
        drop(store);
        Ok(entity_response(&app, StatusCode::OK, &record))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn delete(
    State(app): State<Arc<AppState>>,
    Path(resource): Path<String>,
) -> Response {
    let result = (|| {
        let Target::Entity(id) = parse_target(&resource, &app.config)? else {
            return Err(ODataError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "19",
                "Метод HTTP запрещен в данном контексте",
            ));
        };
        app.store().delete(&id)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `$filter`: comparisons (`eq ne gt ge lt le`) of a property with a literal (`'string'` with
/// `''` escapes, `guid'…'`, `datetime'…'`, `true`/`false`, numbers), `and`, `or`, `not`, and
/// parentheses.
mod filter {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    enum Token {
        Word(String),
        Str(String),
        Guid(String),
        DateTime(String),
        Number(f64),
        Open,
        Close,
    }

    fn tokenize(input: &str) -> Result<Vec<Token>, String> {
        let chars: Vec<char> = input.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        let quoted = |i: &mut usize| -> Result<String, String> {
            // `chars[*i]` is the opening quote; `''` inside is one quote.
            let mut value = String::new();
            *i += 1;
            loop {
                match chars.get(*i) {
                    None => return Err("Незакрытая строка в $filter".into()),
                    Some('\'') if chars.get(*i + 1) == Some(&'\'') => {
                        value.push('\'');
                        *i += 2;
                    }
                    Some('\'') => {
                        *i += 1;
                        return Ok(value);
                    }
                    Some(c) => {
                        value.push(*c);
                        *i += 1;
                    }
                }
            }
        };
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
            } else if c == '(' {
                tokens.push(Token::Open);
                i += 1;
            } else if c == ')' {
                tokens.push(Token::Close);
                i += 1;
            } else if c == '\'' {
                tokens.push(Token::Str(quoted(&mut i)?));
            } else if c.is_ascii_digit() || c == '-' {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                tokens.push(Token::Number(
                    text.parse()
                        .map_err(|_| format!("Неправильное число: {text}"))?,
                ));
            } else if c.is_alphabetic() || c == '_' {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if chars.get(i) == Some(&'\'') {
                    let value = quoted(&mut i)?;
                    match word.as_str() {
                        "guid" => tokens.push(Token::Guid(value)),
                        "datetime" => tokens.push(Token::DateTime(value)),
                        _ => return Err(format!("Неизвестный литерал: {word}")),
                    }
                } else {
                    tokens.push(Token::Word(word));
                }
            } else {
                return Err(format!("Неожиданный символ в $filter: {c}"));
            }
        }
        Ok(tokens)
    }

    #[derive(Debug, Clone, PartialEq)]
    pub(super) enum Literal {
        Str(String),
        Guid(String),
        DateTime(NaiveDateTime),
        Bool(bool),
        Number(f64),
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    pub(super) enum Op {
        Eq,
        Ne,
        Gt,
        Ge,
        Lt,
        Le,
    }

    #[derive(Debug, Clone, PartialEq)]
    pub(super) enum Expr {
        Compare(String, Op, Literal),
        And(Box<Expr>, Box<Expr>),
        Or(Box<Expr>, Box<Expr>),
        Not(Box<Expr>),
    }

    pub(super) fn parse(input: &str) -> Result<Expr, String> {
        let tokens = tokenize(input)?;
        let mut parser = Parser { tokens, pos: 0 };
        let expr = parser.or()?;
        if parser.pos != parser.tokens.len() {
            return Err("Лишние элементы в $filter".into());
        }
        Ok(expr)
    }

    struct Parser {
        tokens: Vec<Token>,
        pos: usize,
    }

    impl Parser {
        fn next(&mut self) -> Option<Token> {
            let token = self.tokens.get(self.pos).cloned();
            self.pos += 1;
            token
        }

        fn peek_word(&self, word: &str) -> bool {
            matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w == word)
        }

        fn or(&mut self) -> Result<Expr, String> {
            let mut left = self.and()?;
            while self.peek_word("or") {
                self.pos += 1;
                left = Expr::Or(Box::new(left), Box::new(self.and()?));
            }
            Ok(left)
        }

        fn and(&mut self) -> Result<Expr, String> {
            let mut left = self.unary()?;
            while self.peek_word("and") {
                self.pos += 1;
                left = Expr::And(Box::new(left), Box::new(self.unary()?));
            }
            Ok(left)
        }

        fn unary(&mut self) -> Result<Expr, String> {
            match self.next() {
                Some(Token::Open) => {
                    let inner = self.or()?;
                    match self.next() {
                        Some(Token::Close) => Ok(inner),
                        _ => Err("Ожидается ) в $filter".into()),
                    }
                }
                Some(Token::Word(w)) if w == "not" => Ok(Expr::Not(Box::new(self.unary()?))),
                Some(Token::Word(property)) => {
                    let op = match self.next() {
                        Some(Token::Word(op)) => match op.as_str() {
                            "eq" => Op::Eq,
                            "ne" => Op::Ne,
                            "gt" => Op::Gt,
                            "ge" => Op::Ge,
                            "lt" => Op::Lt,
                            "le" => Op::Le,
                            _ => return Err(format!("Неизвестная операция: {op}")),
                        },
                        _ => return Err("Ожидается операция сравнения".into()),
                    };
                    let literal = match self.next() {
                        Some(Token::Str(s)) => Literal::Str(s),
                        Some(Token::Guid(g)) => Literal::Guid(
                            uuid::Uuid::parse_str(&g)
                                .map_err(|_| format!("Неправильный guid: {g}"))?
                                .to_string(),
                        ),
                        Some(Token::DateTime(d)) => Literal::DateTime(parse_datetime(&d)?),
                        Some(Token::Number(n)) => Literal::Number(n),
                        Some(Token::Word(w)) if w == "true" => Literal::Bool(true),
                        Some(Token::Word(w)) if w == "false" => Literal::Bool(false),
                        _ => return Err("Ожидается значение для сравнения".into()),
                    };
                    Ok(Expr::Compare(property, op, literal))
                }
                _ => Err("Ожидается условие в $filter".into()),
            }
        }
    }

    fn parse_datetime(raw: &str) -> Result<NaiveDateTime, String> {
        [
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .ok_or_else(|| format!("Неправильная дата: {raw}"))
    }

    impl Expr {
        pub(super) fn eval(&self, entity: &Map<String, Value>) -> Result<bool, String> {
            match self {
                Self::And(a, b) => Ok(a.eval(entity)? && b.eval(entity)?),
                Self::Or(a, b) => Ok(a.eval(entity)? || b.eval(entity)?),
                Self::Not(a) => Ok(!a.eval(entity)?),
                Self::Compare(property, op, literal) => {
                    let value = entity
                        .get(property)
                        .ok_or_else(|| format!("Свойство не найдено: {property}"))?;
                    let ordering = compare(value, literal)
                        .ok_or_else(|| format!("Несовместимые типы в сравнении {property}"))?;
                    Ok(match op {
                        Op::Eq => ordering.is_eq(),
                        Op::Ne => ordering.is_ne(),
                        Op::Gt => ordering.is_gt(),
                        Op::Ge => ordering.is_ge(),
                        Op::Lt => ordering.is_lt(),
                        Op::Le => ordering.is_le(),
                    })
                }
            }
        }
    }

    fn compare(value: &Value, literal: &Literal) -> Option<Ordering> {
        match (value, literal) {
            (Value::String(v), Literal::Str(l)) => Some(v.as_str().cmp(l.as_str())),
            (Value::String(v), Literal::Guid(l)) => Some(v.to_ascii_lowercase().cmp(l)),
            (Value::String(v), Literal::DateTime(l)) => onec_date::parse(v).map(|v| v.cmp(l)),
            (Value::Bool(v), Literal::Bool(l)) => Some(v.cmp(l)),
            (Value::Number(v), Literal::Number(l)) => v.as_f64()?.partial_cmp(l),
            _ => None,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn entity() -> Map<String, Value> {
            json!({"ИдентификаторНаСайте": "o'brien", "DeletionMark": false,
                   "ДатаИзменения": "2026-11-28T15:04:05",
                   "Ref_Key": "1fa1a135-d89b-11e6-8343-40167e2531c3"})
            .as_object()
            .cloned()
            .unwrap_or_default()
        }

        #[test]
        fn doubled_quotes_guids_dates_and_booleans_combine_with_and() {
            // Given a filter using every literal kind the client sends
            let filter = parse(
                "ИдентификаторНаСайте eq 'o''brien' and DeletionMark eq false and \
                 ДатаИзменения ge datetime'2026-11-28T15:04:05' and \
                 Ref_Key eq guid'1FA1A135-D89B-11E6-8343-40167E2531C3'",
            )
            .expect("parses");
            // When evaluated, then the entity matches
            assert_eq!(filter.eval(&entity()), Ok(true));
        }

        #[test]
        fn a_later_watermark_excludes_the_entity() {
            let filter = parse("ДатаИзменения gt datetime'2026-11-28T15:04:05'").expect("parses");
            assert_eq!(filter.eval(&entity()), Ok(false));
        }

        #[test]
        fn malformed_filters_are_refused() {
            for bad in [
                "Код eq",
                "eq 'x'",
                "А eq 'x",
                "А eq 'x' and",
                "А like 'x'",
                "(А eq 'x'",
            ] {
                assert!(parse(bad).is_err(), "{bad} should not parse");
            }
        }
    }
}
