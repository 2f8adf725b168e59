//! Transport `commerceml`: CommerceML 2.10 `Контрагент` documents to and from an HTTP service.

use crate::hs_json::changes_params;
use crate::server::{query_pairs, query_param, AppState};
use crate::store::{
    check_before_write, local_now, offset, onec_date, CounterpartyFields, CounterpartyKind,
    CounterpartyRecord, Store, StoreError,
};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use encoding_rs::{Encoding, UTF_8};
use quick_xml::events::{BytesStart, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use quick_xml::Writer;
use std::collections::BTreeMap;
use std::sync::Arc;

const NAMESPACES: [&str; 2] = ["urn:1C.ru:commerceml_2", "urn:1C.ru:commerceml_210"];
const NAMESPACE: &str = "urn:1C.ru:commerceml_2";
const EMAIL_TYPE: &str = "Почта";
const PHONE_TYPE: &str = "Телефон мобильный";
const CONTACT_RELATION: &str = "Контактное лицо";
const MAX_DEPTH: usize = 64;

/// Why a document was refused: `<Ошибка><Код>…</Код><Сообщение>…</Сообщение></Ошибка>`.
#[derive(Debug)]
struct CmlError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl CmlError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "validation",
            message: message.into(),
        }
    }
}

impl From<StoreError> for CmlError {
    fn from(err: StoreError) -> Self {
        let (status, code) = match &err {
            StoreError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            StoreError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            StoreError::Business(_) => (StatusCode::INTERNAL_SERVER_ERROR, "business"),
        };
        Self {
            status,
            code,
            message: err.to_string(),
        }
    }
}

impl IntoResponse for CmlError {
    fn into_response(self) -> Response {
        error(self.status, self.code, &self.message)
    }
}

pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let document = render(|w| {
        w.create_element("Ошибка").write_inner_content(|w| {
            text_element(w, "Код", code)?;
            text_element(w, "Сообщение", message)
        })?;
        Ok(())
    });
    xml_response(status, document, UTF_8)
}

fn xml_response(
    status: StatusCode,
    document: std::io::Result<String>,
    encoding: &'static Encoding,
) -> Response {
    let Ok(document) = document else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "XML serialisation failed",
        )
            .into_response();
    };
    let declaration = format!("<?xml version=\"1.0\" encoding=\"{}\"?>\n", encoding.name());
    // Characters windows-1251 lacks become numeric character references, valid XML either way.
    let document = declaration + &document;
    let (bytes, _, _) = encoding.encode(&document);
    (
        status,
        [(
            header::CONTENT_TYPE,
            format!("application/xml; charset={}", encoding.name()),
        )],
        Body::from(bytes.into_owned()),
    )
        .into_response()
}

fn render(
    write: impl FnOnce(&mut Writer<Vec<u8>>) -> std::io::Result<()>,
) -> std::io::Result<String> {
    let mut writer = Writer::new(Vec::new());
    write(&mut writer)?;
    String::from_utf8(writer.into_inner()).map_err(std::io::Error::other)
}

fn text_element(w: &mut Writer<Vec<u8>>, name: &str, value: &str) -> std::io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

/// A parsed element: local name, attributes, children and text.
#[derive(Debug, Default)]
struct Element {
    name: String,
    namespace: Option<String>,
    attributes: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trimmed text of a child, `None` when absent or blank.
    fn value(&self, name: &str) -> Option<String> {
        self.child(name)
            .map(|c| c.text.trim().to_string())
            .filter(|t| !t.is_empty())
    }
}

/// Parses a whole document in its declared encoding; a DOCTYPE is refused outright, so no
/// entity can be declared, let alone expanded.
fn parse_document(bytes: &[u8]) -> Result<(Element, &'static Encoding), CmlError> {
    let syntax = |e: quick_xml::Error| CmlError::invalid(format!("malformed XML: {e}"));
    let mut reader = NsReader::from_reader(bytes);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        // Namespace names are decoded with the encoding known before this event; they are ASCII.
        let decoder = reader.decoder();
        let (namespace, event) = reader.read_resolved_event().map_err(syntax)?;
        let namespace = match namespace {
            ResolveResult::Bound(ns) => Some(
                decoder
                    .decode(ns.as_ref())
                    .map_err(|e| syntax(e.into()))?
                    .into_owned(),
            ),
            _ => None,
        };
        match event {
            Event::DocType(_) => {
                return Err(CmlError::invalid("a document with a DOCTYPE is refused"))
            }
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(CmlError::invalid("the document is nested too deeply"));
                }
                stack.push(open_element(&reader, &start, namespace)?);
            }
            Event::Empty(start) => {
                let element = open_element(&reader, &start, namespace)?;
                attach(&mut stack, &mut root, element)?;
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| CmlError::invalid("unbalanced end tag"))?;
                attach(&mut stack, &mut root, element)?;
            }
            Event::Text(text) => {
                let text = text.decode().map_err(|e| syntax(e.into()))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::CData(data) => {
                let data = data.decode().map_err(|e| syntax(e.into()))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&data);
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(syntax)? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = reference.decode().map_err(|e| syntax(e.into()))?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| CmlError::invalid(format!("unknown entity &{name};")))?
                            .to_string()
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(CmlError::invalid("the document ends inside an element"));
    }
    let root = root.ok_or_else(|| CmlError::invalid("the document has no root element"))?;
    Ok((root, reader.decoder().encoding()))
}

fn open_element(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    namespace: Option<String>,
) -> Result<Element, CmlError> {
    let decoder = reader.decoder();
    let invalid = |e: &dyn std::fmt::Display| CmlError::invalid(format!("malformed XML: {e}"));
    let name = decoder
        .decode(start.local_name().as_ref())
        .map_err(|e| invalid(&e))?
        .into_owned();
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| invalid(&e))?;
        let key = decoder
            .decode(attribute.key.local_name().as_ref())
            .map_err(|e| invalid(&e))?
            .into_owned();
        let value = attribute
            .decoded_and_normalized_value(quick_xml::XmlVersion::Implicit1_0, decoder)
            .map_err(|e| invalid(&e))?
            .into_owned();
        attributes.push((key, value));
    }
    Ok(Element {
        name,
        namespace,
        attributes,
        ..Element::default()
    })
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), CmlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err(CmlError::invalid("more than one root element")),
    }
    Ok(())
}

/// Reads one `Контрагент` (the official 2.10 type; the legal-entity and individual groups are
/// inline, older `РеквизитыЮрЛица`/`РеквизитыФизЛица` wrappers are accepted too).
fn counterparty(element: &Element) -> Result<(String, CounterpartyFields, Option<bool>), CmlError> {
    let id = element
        .value("Ид")
        .ok_or_else(|| CmlError::invalid("a Контрагент has no Ид"))?;
    let legal = element.child("РеквизитыЮрЛица").unwrap_or(element);
    let person = element.child("РеквизитыФизЛица").unwrap_or(element);
    let (kind, full_name, details) = if let Some(official) = legal.value("ОфициальноеНаименование")
    {
        (CounterpartyKind::LegalEntity, official, legal)
    } else if let Some(full) = person.value("ПолноеНаименование") {
        (CounterpartyKind::Individual, full, person)
    } else {
        return Err(CmlError::invalid(format!(
            "Контрагент {id} has neither ОфициальноеНаименование nor ПолноеНаименование"
        )));
    };
    let name = element
        .value("Наименование")
        .unwrap_or_else(|| full_name.clone());

    // The contract's fields without a standard element: `Роль: …; Статус: …; ПометкаУдаления: да`.
    let (mut role, mut status, mut marked_in_comment) = (None, None, None);
    for part in element.value("Комментарий").unwrap_or_default().split(';') {
        let part = part.trim();
        if let Some(value) = part.strip_prefix("Роль:") {
            role = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        } else if let Some(value) = part.strip_prefix("Статус:") {
            status = Some(value.trim().to_string()).filter(|v| !v.is_empty());
        } else if let Some(value) = part.strip_prefix("ПометкаУдаления:") {
            marked_in_comment = match value.trim() {
                "да" | "true" => Some(true),
                "нет" | "false" => Some(false),
                other => {
                    return Err(CmlError::invalid(format!(
                        "ПометкаУдаления in Комментарий must be да or нет, not {other:?}"
                    )))
                }
            };
        }
    }

    let (mut email, mut phone) = (None, None);
    for contact in element
        .child("Контакты")
        .into_iter()
        .flat_map(|c| c.children("Контакт"))
    {
        match contact.value("Тип").as_deref() {
            Some(EMAIL_TYPE) => email = contact.value("Значение"),
            Some(t) if t.starts_with("Телефон") => phone = contact.value("Значение"),
            _ => {}
        }
    }

    let contact_person = element
        .child("Представители")
        .into_iter()
        .flat_map(|r| r.children("Представитель"))
        .find(|r| {
            r.value("Отношение")
                .is_none_or(|rel| rel == CONTACT_RELATION)
        })
        .and_then(|r| {
            r.value("Наименование")
                .or_else(|| r.value("ПолноеНаименование"))
                .or_else(|| r.child("Контрагент").and_then(|c| c.value("Наименование")))
        });

    let deletion_mark = match element.value("ПометкаУдаления").as_deref() {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => {
            return Err(CmlError::invalid(format!(
                "ПометкаУдаления must be true or false, not {other:?}"
            )))
        }
    }
    .or(marked_in_comment);

    let fields = CounterpartyFields {
        platform_id: Some(id.clone()),
        kind,
        name,
        full_name,
        first_name: details.value("Имя"),
        last_name: details.value("Фамилия"),
        contact_person,
        inn: details.value("ИНН"),
        kpp: details.value("КПП"),
        email,
        phone,
        role,
        status,
        deletion_mark: deletion_mark.unwrap_or(false),
        extra: BTreeMap::new(),
    };
    Ok((id, fields, deletion_mark))
}

/// `POST /hs/<root>/commerceml/customers`: create or update every `Контрагент` by `Ид`, all
/// or nothing.
pub(crate) async fn upsert(State(app): State<Arc<AppState>>, body: Bytes) -> Response {
    let result = (|| {
        let (root, encoding) = parse_document(&body)?;
        if root.name != "ОбменКонтрагентами" {
            return Err(CmlError::invalid(format!(
                "the root element must be ОбменКонтрагентами, not {}",
                root.name
            )));
        }
        if !root
            .namespace
            .as_deref()
            .is_some_and(|ns| NAMESPACES.contains(&ns))
        {
            return Err(CmlError::invalid(format!(
                "the root element must be in the namespace {NAMESPACE}"
            )));
        }
        if root.attribute("ВерсияСхемы").is_none() {
            return Err(CmlError::invalid("ОбменКонтрагентами has no ВерсияСхемы"));
        }
        let items = root
            .child("Контрагенты")
            .map(|c| {
                c.children("Контрагент")
                    .map(counterparty)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        if items.is_empty() {
            return Err(CmlError::invalid("Контрагенты holds no Контрагент"));
        }
        let results = apply_all(&mut app.store(), items)?;
        let document = render(|w| {
            w.create_element("РезультатОбмена")
                .with_attribute(("xmlns", NAMESPACE))
                .write_inner_content(|w| {
                    for (id, record, created) in &results {
                        w.create_element("Контрагент").write_inner_content(|w| {
                            text_element(w, "Ид", id)?;
                            text_element(w, "Ссылка", &record.onec_id)?;
                            text_element(w, "НомерВерсии", &record.data_version)?;
                            text_element(w, "Создан", if *created { "true" } else { "false" })
                        })?;
                    }
                    Ok(())
                })?;
            Ok(())
        });
        // Answer in the encoding the exchange file was written in.
        Ok(xml_response(StatusCode::OK, document, encoding))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

type Applied = (String, CounterpartyRecord, bool);

fn apply_all(
    store: &mut Store,
    items: Vec<(String, CounterpartyFields, Option<bool>)>,
) -> Result<Vec<Applied>, CmlError> {
    // Check everything first so a refusal leaves the catalogue untouched.
    for (id, fields, _) in &items {
        check_before_write(fields)?;
        if store.find_by_platform_id(id).len() > 1 {
            return Err(
                StoreError::Conflict(format!("several counterparties store Ид {id}")).into(),
            );
        }
    }
    let mut results = Vec::with_capacity(items.len());
    for (id, mut fields, deletion_mark) in items {
        if let Some(existing) = store.find_by_platform_id(&id).first() {
            // CommerceML has no place for extra attributes or a kept deletion mark: keep them.
            fields.extra = existing.fields.extra.clone();
            if deletion_mark.is_none() {
                fields.deletion_mark = existing.fields.deletion_mark;
            }
        }
        let (record, created) = store.upsert_by_platform_id(fields)?;
        results.push((id, record, created));
    }
    Ok(results)
}

fn write_counterparty(w: &mut Writer<Vec<u8>>, record: &CounterpartyRecord) -> std::io::Result<()> {
    let f = &record.fields;
    w.create_element("Контрагент").write_inner_content(|w| {
        if let Some(id) = &f.platform_id {
            text_element(w, "Ид", id)?;
        }
        text_element(w, "Наименование", &f.name)?;
        match f.kind {
            CounterpartyKind::LegalEntity => {
                text_element(w, "ОфициальноеНаименование", &f.full_name)?;
                for (name, value) in [("ИНН", &f.inn), ("КПП", &f.kpp)] {
                    if let Some(value) = value {
                        text_element(w, name, value)?;
                    }
                }
            }
            CounterpartyKind::Individual => {
                text_element(w, "ПолноеНаименование", &f.full_name)?;
                for (name, value) in [
                    ("Фамилия", &f.last_name),
                    ("Имя", &f.first_name),
                    ("ИНН", &f.inn),
                ] {
                    if let Some(value) = value {
                        text_element(w, name, value)?;
                    }
                }
            }
        }
        let comment: Vec<String> = [("Роль", &f.role), ("Статус", &f.status)]
            .into_iter()
            .filter_map(|(label, v)| v.as_ref().map(|v| format!("{label}: {v}")))
            .collect();
        if !comment.is_empty() {
            text_element(w, "Комментарий", &comment.join("; "))?;
        }
        let contacts: Vec<(&str, &String)> = [(EMAIL_TYPE, &f.email), (PHONE_TYPE, &f.phone)]
            .into_iter()
            .filter_map(|(t, v)| v.as_ref().map(|v| (t, v)))
            .collect();
        if !contacts.is_empty() {
            w.create_element("Контакты").write_inner_content(|w| {
                for (kind, value) in &contacts {
                    w.create_element("Контакт").write_inner_content(|w| {
                        text_element(w, "Тип", kind)?;
                        text_element(w, "Значение", value)
                    })?;
                }
                Ok(())
            })?;
        }
        if let Some(person) = &f.contact_person {
            w.create_element("Представители").write_inner_content(|w| {
                w.create_element("Представитель").write_inner_content(|w| {
                    text_element(w, "Наименование", person)?;
                    text_element(w, "ПолноеНаименование", person)?;
                    text_element(w, "Отношение", CONTACT_RELATION)
                })?;
                Ok(())
            })?;
        }
        // 1C's own exports append these after the standard elements.
        text_element(w, "Ссылка", &record.onec_id)?;
        text_element(w, "НомерВерсии", &record.data_version)?;
        text_element(
            w,
            "ПометкаУдаления",
            if f.deletion_mark { "true" } else { "false" },
        )?;
        text_element(w, "ДатаИзменения", &onec_date::format(&record.modified_at))
    })?;
    Ok(())
}

fn exchange_document(
    app: &AppState,
    records: &[&CounterpartyRecord],
    paging: Option<(u64, bool)>,
) -> Response {
    let now = onec_date::format(&local_now(offset(app.config.utc_offset_hours)));
    let document = render(|w| {
        let mut root = w
            .create_element("ОбменКонтрагентами")
            .with_attribute(("xmlns", NAMESPACE))
            .with_attribute(("ВерсияСхемы", "2.10"))
            .with_attribute(("ДатаФормирования", now.as_str()));
        let last;
        if let Some((last_seq, has_more)) = paging {
            last = last_seq.to_string();
            root = root
                .with_attribute(("ПоследнийНомер", last.as_str()))
                .with_attribute(("ЕстьЕще", if has_more { "true" } else { "false" }));
        }
        root.write_inner_content(|w| {
            w.create_element("Контрагенты").write_inner_content(|w| {
                for record in records {
                    write_counterparty(w, record)?;
                }
                Ok(())
            })?;
            Ok(())
        })?;
        Ok(())
    });
    xml_response(StatusCode::OK, document, UTF_8)
}

/// `GET /hs/<root>/commerceml/customers/<onec_id>`.
pub(crate) async fn fetch(
    State(app): State<Arc<AppState>>,
    Path(onec_id): Path<String>,
) -> Response {
    let store = app.store();
    match store.get(&onec_id) {
        Some(record) => exchange_document(&app, &[record], None),
        None => CmlError::from(StoreError::NotFound(onec_id)).into_response(),
    }
}

/// `GET /hs/<root>/commerceml/customers?platform_id=<id>`.
pub(crate) async fn find(State(app): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref());
    let Some(platform_id) = query_param(&pairs, "platform_id") else {
        return CmlError::invalid("the platform_id parameter is required").into_response();
    };
    let store = app.store();
    let records = store.find_by_platform_id(platform_id);
    exchange_document(&app, &records, None)
}

/// `GET /hs/<root>/commerceml/changes?since=<seq>&limit=<n>`.
pub(crate) async fn changes(State(app): State<Arc<AppState>>, RawQuery(q): RawQuery) -> Response {
    let pairs = query_pairs(q.as_deref());
    let (since, limit) = match changes_params(&pairs) {
        Ok(params) => params,
        Err(message) => return CmlError::invalid(message).into_response(),
    };
    let store = app.store();
    let (records, has_more) = store.changes_since(since, limit);
    let last_seq = records.last().map_or(since, |r| r.change_seq);
    exchange_document(&app, &records, Some((last_seq, has_more)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_and_character_references_are_resolved_in_text() {
        // Given text with predefined entities and a character reference
        let xml = "<a xmlns=\"urn:1C.ru:commerceml_2\"><b>ООО &quot;Рога &amp; Копыта&quot; &#8470;1</b></a>";
        // When parsed
        let (root, _) = parse_document(xml.as_bytes()).expect("parses");
        // Then the text is whole and the namespace is resolved
        assert_eq!(root.value("b").as_deref(), Some("ООО \"Рога & Копыта\" №1"));
        assert_eq!(root.namespace.as_deref(), Some(NAMESPACE));
    }

    #[test]
    fn an_undeclared_entity_is_refused() {
        let xml = "<a><b>&xxe;</b></a>";
        assert!(parse_document(xml.as_bytes()).is_err());
    }
}
