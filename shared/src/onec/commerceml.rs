//! Transport `commerceml`: CommerceML 2.10 `Контрагент` documents posted to an HTTP service.

use super::config::{OneCConfig, Transport};
use super::http::{malformed, BodyFormat, Dialect, ErrorDetail, HttpCore, Response};
use super::json::{changes_since, hs_root_segments, with_changes_query};
use super::xml::{self, Element};
use super::{ChangePage, Counterparty, CounterpartyKind, OneCClient, OneCError, UpsertOutcome};
use async_trait::async_trait;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use std::collections::BTreeMap;

const DIALECT: Dialect = Dialect {
    transport: Transport::CommerceMl,
    format: BodyFormat::Xml,
    business_code: "business",
    parse_error: parse_error_body,
};

pub(crate) const NAMESPACE: &str = "urn:1C.ru:commerceml_2";
const SCHEMA_VERSION: &str = "2.10";
const ZERO_GUID: &str = "00000000-0000-0000-0000-000000000000";
const EMAIL: &str = "Почта";
const MOBILE_PHONE: &str = "Телефон мобильный";
const CONTACT_PERSON: &str = "Контактное лицо";
const ROLE_LABEL: &str = "Роль";
const STATUS_LABEL: &str = "Статус";
const DELETION_LABEL: &str = "ПометкаУдаления";

// Length limits of the CommerceML 2.10 types the elements use.
const MAX_ID: usize = 40; // ИдентификаторГлобальныйТип
const MAX_NAME: usize = 255; // НаименованиеТип, СтрокаТип
const MAX_COMMENT: usize = 3000; // КомментарийТип

/// `<Ошибка><Код>…</Код><Сообщение>…</Сообщение></Ошибка>`, as the root or a child of it.
pub(crate) fn parse_error_body(body: &[u8]) -> Option<ErrorDetail> {
    let root = xml::parse(body).ok()?;
    let error = if root.name == "Ошибка" {
        &root
    } else {
        root.child("Ошибка")?
    };
    Some(ErrorDetail {
        code: error.child_text("Код").map(str::to_owned),
        message: error.child_text("Сообщение").map(str::to_owned),
    })
}

/// `Роль: X; Статус: Y`, with whichever parts exist, and `ПометкаУдаления: да` for a
/// counterparty to be marked for deletion: the standard `Контрагент` type has no element for
/// any of them. The mark is only ever set this way; an export without it leaves 1C's mark as it
/// is (a deactivated customer is not exported again).
pub(crate) fn comment(cp: &Counterparty) -> Option<String> {
    let mark = cp.deletion_mark.then_some("да");
    let parts: Vec<String> = [
        (ROLE_LABEL, cp.role.as_deref()),
        (STATUS_LABEL, cp.status.as_deref()),
        (DELETION_LABEL, mark),
    ]
    .into_iter()
    .filter_map(|(label, value)| value.map(|v| format!("{label}: {v}")))
    .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Role and status back from a `Комментарий`, in any order and spacing.
pub(crate) fn parse_comment(text: &str) -> (Option<String>, Option<String>) {
    let mut role = None;
    let mut status = None;
    for part in text.split(';') {
        let Some((label, value)) = part.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let label = label.trim().to_lowercase();
        if label == ROLE_LABEL.to_lowercase() {
            role = Some(value.to_owned());
        } else if label == STATUS_LABEL.to_lowercase() {
            status = Some(value.to_owned());
        }
    }
    (role, status)
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), OneCError> {
    if value.chars().count() > max {
        return Err(OneCError::InvalidRequest(format!(
            "{field} is longer than {max} characters (CommerceML limit)"
        )));
    }
    if !value.chars().all(xml::is_xml_char) {
        return Err(OneCError::InvalidRequest(format!(
            "{field} contains characters XML cannot carry"
        )));
    }
    Ok(())
}

fn check(cp: &Counterparty) -> Result<(), OneCError> {
    if cp.platform_id.trim().is_empty() {
        return Err(OneCError::InvalidRequest("platform id is empty".into()));
    }
    check_text("platform id", &cp.platform_id, MAX_ID)?;
    check_text("name", &cp.name, MAX_NAME)?;
    check_text("full name", &cp.full_name, MAX_NAME)?;
    for (field, value) in [
        ("first name", &cp.first_name),
        ("last name", &cp.last_name),
        ("contact person", &cp.contact_person),
        ("email", &cp.email),
        ("phone", &cp.phone),
    ] {
        if let Some(value) = value {
            check_text(field, value, MAX_NAME)?;
        }
    }
    if let Some(inn) = &cp.inn {
        if !(10..=12).contains(&inn.chars().count()) || !inn.chars().all(|c| c.is_ascii_digit()) {
            return Err(OneCError::InvalidRequest(
                "INN must be 10 to 12 digits".into(),
            ));
        }
    }
    if let Some(kpp) = &cp.kpp {
        if kpp.chars().count() != 9 || !kpp.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(OneCError::InvalidRequest("KPP must be 9 characters".into()));
        }
    }
    if let Some(c) = comment(cp) {
        check_text("role and status", &c, MAX_COMMENT)?;
    }
    Ok(())
}

fn text_element<W: std::io::Write>(
    w: &mut Writer<W>,
    name: &str,
    value: &str,
) -> std::io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

fn optional_element<W: std::io::Write>(
    w: &mut Writer<W>,
    name: &str,
    value: Option<&str>,
) -> std::io::Result<()> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => text_element(w, name, v),
        None => Ok(()),
    }
}

/// One `Контрагент`, elements in the order of the CommerceML 2.10 type.
fn write_counterparty<W: std::io::Write>(
    w: &mut Writer<W>,
    cp: &Counterparty,
) -> std::io::Result<()> {
    w.create_element("Контрагент").write_inner_content(|w| {
        text_element(w, "Ид", &cp.platform_id)?;
        text_element(w, "Наименование", &cp.name)?;
        match cp.kind {
            CounterpartyKind::LegalEntity => {
                text_element(w, "ОфициальноеНаименование", &cp.full_name)?;
            }
            CounterpartyKind::Individual => {
                text_element(w, "ПолноеНаименование", &cp.full_name)?;
                optional_element(w, "Фамилия", cp.last_name.as_deref())?;
                optional_element(w, "Имя", cp.first_name.as_deref())?;
            }
        }
        optional_element(w, "ИНН", cp.inn.as_deref())?;
        optional_element(w, "КПП", cp.kpp.as_deref())?;
        optional_element(w, "Комментарий", comment(cp).as_deref())?;
        let contacts: Vec<(&str, &str)> = [(EMAIL, &cp.email), (MOBILE_PHONE, &cp.phone)]
            .into_iter()
            .filter_map(|(kind, value)| value.as_deref().map(|v| (kind, v)))
            .filter(|(_, v)| !v.is_empty())
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
        let contact_person = cp.contact_person.as_deref().filter(|p| !p.is_empty());
        if let (CounterpartyKind::LegalEntity, Some(person)) = (cp.kind, contact_person) {
            w.create_element("Представители").write_inner_content(|w| {
                w.create_element("Представитель").write_inner_content(|w| {
                    text_element(w, "Наименование", person)?;
                    // The type requires the individual's group; its one required element.
                    text_element(w, "ПолноеНаименование", person)?;
                    text_element(w, "Отношение", CONTACT_PERSON)
                })?;
                Ok(())
            })?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The `ОбменКонтрагентами` message the client posts: UTF-8, every text escaped by the writer,
/// valid against `customers-exchange.xsd`. `InvalidRequest` when a value breaks a CommerceML
/// limit (an `Ид` over 40 characters, a name over 255, a malformed INN/KPP).
pub fn exchange_message(
    counterparties: &[Counterparty],
    generated_at: chrono::NaiveDateTime,
) -> Result<Vec<u8>, OneCError> {
    for cp in counterparties {
        check(cp)?;
    }
    let generated_at = generated_at.format("%Y-%m-%dT%H:%M:%S").to_string();
    let mut w = Writer::new(Vec::new());
    let written: std::io::Result<()> = (|| {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.create_element("ОбменКонтрагентами")
            .with_attribute(("xmlns", NAMESPACE))
            .with_attribute(("ВерсияСхемы", SCHEMA_VERSION))
            .with_attribute(("ДатаФормирования", generated_at.as_str()))
            .write_inner_content(|w| {
                w.create_element("Контрагенты").write_inner_content(|w| {
                    for cp in counterparties {
                        write_counterparty(w, cp)?;
                    }
                    Ok(())
                })?;
                Ok(())
            })?;
        Ok(())
    })();
    written.map_err(|e| OneCError::InvalidRequest(format!("cannot write CommerceML: {e}")))?;
    Ok(w.into_inner())
}

/// A `Контрагент` element as 1C exports it (standard elements plus Ссылка, НомерВерсии,
/// ПометкаУдаления, ДатаИзменения).
pub(crate) fn read_counterparty(el: &Element) -> Counterparty {
    let text = |name: &str| el.child_text(name).map(str::to_owned);
    let legal_name = text("ОфициальноеНаименование");
    let kind = if legal_name.is_some() {
        CounterpartyKind::LegalEntity
    } else {
        CounterpartyKind::Individual
    };
    let full_name = legal_name.or_else(|| text("ПолноеНаименование"));
    let name = text("Наименование")
        .or_else(|| full_name.clone())
        .unwrap_or_default();
    let (role, status) = el
        .child_text("Комментарий")
        .map(parse_comment)
        .unwrap_or_default();
    let mut email = None;
    let mut phone = None;
    for contact in el
        .children_named("Контакты")
        .flat_map(|c| c.children_named("Контакт"))
    {
        let value = contact.child_text("Значение").map(str::to_owned);
        match contact.child_text("Тип") {
            Some(EMAIL) if email.is_none() => email = value,
            Some(t) if t.starts_with("Телефон") && phone.is_none() => phone = value,
            _ => {}
        }
    }
    let contact_person = el
        .children_named("Представители")
        .flat_map(|p| p.children_named("Представитель"))
        .find(|p| p.child_text("Отношение") == Some(CONTACT_PERSON))
        .and_then(|p| {
            p.child_text("Наименование")
                .or_else(|| p.child_text("ПолноеНаименование"))
        })
        .map(str::to_owned);
    Counterparty {
        platform_id: text("Ид").unwrap_or_default(),
        onec_id: text("Ссылка").filter(|r| r != ZERO_GUID),
        data_version: text("НомерВерсии"),
        kind,
        full_name: full_name.unwrap_or_else(|| name.clone()),
        name,
        first_name: text("Имя"),
        last_name: text("Фамилия"),
        contact_person,
        inn: text("ИНН"),
        kpp: text("КПП"),
        email,
        phone,
        role,
        status,
        deletion_mark: el
            .child_text("ПометкаУдаления")
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1"),
        extra: BTreeMap::new(),
    }
}

fn parse_document(response: &Response) -> Result<Element, OneCError> {
    let root = xml::parse(&response.body).map_err(|e| {
        malformed(
            response.status,
            "body is not the expected XML",
            Some(Box::new(e)),
        )
    })?;
    if root.name == "Ошибка" {
        // 1C wrote an error document although it answered 2xx.
        let detail = parse_error_body(&response.body)
            .unwrap_or_default()
            .for_logs();
        return Err(OneCError::Rejected {
            status: response.status.as_u16(),
            message: detail
                .message
                .unwrap_or_else(|| "1C reported an error".into()),
            code: detail.code,
        });
    }
    Ok(root)
}

/// The `Контрагент` items of an `ОбменКонтрагентами` answer, each required to carry Ссылка.
fn counterparties(root: &Element, status: StatusCode) -> Result<Vec<Counterparty>, OneCError> {
    if root.name != "ОбменКонтрагентами" {
        return Err(malformed(
            status,
            "answer is not an ОбменКонтрагентами document",
            None,
        ));
    }
    let items: Vec<Counterparty> = root
        .children_named("Контрагенты")
        .flat_map(|list| list.children_named("Контрагент"))
        .map(read_counterparty)
        .collect();
    if items.iter().any(|cp| cp.onec_id.is_none()) {
        return Err(malformed(status, "a counterparty has no Ссылка", None));
    }
    Ok(items)
}

fn is_not_found(error: &OneCError) -> bool {
    matches!(
        error,
        OneCError::Rejected {
            status: 404,
            code: Some(_),
            ..
        }
    )
}

/// [`OneCClient`] speaking CommerceML 2.10 to an HTTP service.
#[derive(Debug)]
pub struct CommerceMlClient {
    http: HttpCore,
    root: Vec<String>,
    time_zone: chrono_tz::Tz,
}

impl CommerceMlClient {
    pub fn new(config: &OneCConfig) -> Result<Self, OneCError> {
        let time_zone = config.schema.time_zone.parse().map_err(|_| {
            OneCError::InvalidRequest("1C time zone is not an IANA zone name".into())
        })?;
        Ok(Self {
            http: HttpCore::new(config, DIALECT)?,
            root: hs_root_segments(&config.hs_root),
            time_zone,
        })
    }

    fn url(&self, tail: &[&str]) -> url::Url {
        let mut segments: Vec<&str> = vec!["hs"];
        segments.extend(self.root.iter().map(String::as_str));
        segments.push("commerceml");
        segments.extend_from_slice(tail);
        self.http.url(&segments)
    }

    fn now_local(&self) -> chrono::NaiveDateTime {
        chrono::Utc::now()
            .with_timezone(&self.time_zone)
            .naive_local()
    }
}

#[async_trait]
impl OneCClient for CommerceMlClient {
    async fn upsert_customer(&self, cp: &Counterparty) -> Result<UpsertOutcome, OneCError> {
        let body = exchange_message(std::slice::from_ref(cp), self.now_local())?;
        let request = self
            .http
            .request(Method::POST, self.url(&["customers"]))
            .header(CONTENT_TYPE, "application/xml; charset=utf-8")
            .body(body);
        let response = self.http.send("upsert_customer", request).await?;
        let root = parse_document(&response)?;
        if root.name != "РезультатОбмена" {
            return Err(malformed(
                response.status,
                "answer is not a РезультатОбмена document",
                None,
            ));
        }
        let results: Vec<&Element> = root.children_named("Контрагент").collect();
        let result = results
            .iter()
            .find(|r| r.child_text("Ид") == Some(cp.platform_id.as_str()))
            .or(if results.len() == 1 {
                results.first()
            } else {
                None
            })
            .ok_or_else(|| malformed(response.status, "answer has no result for the id", None))?;
        let required = |name: &str| {
            result
                .child_text(name)
                .filter(|v| *v != ZERO_GUID)
                .map(str::to_owned)
                .ok_or_else(|| malformed(response.status, format!("answer has no {name}"), None))
        };
        Ok(UpsertOutcome {
            onec_id: required("Ссылка")?,
            data_version: required("НомерВерсии")?,
            created: match result.child_text("Создан") {
                Some(v) => v.eq_ignore_ascii_case("true") || v == "1",
                None => response.status == StatusCode::CREATED,
            },
        })
    }

    async fn fetch_customer(&self, onec_id: &str) -> Result<Option<Counterparty>, OneCError> {
        let request = self
            .http
            .request(Method::GET, self.url(&["customers", onec_id]));
        match self.http.send("fetch_customer", request).await {
            Ok(response) => {
                let root = parse_document(&response)?;
                Ok(counterparties(&root, response.status)?.into_iter().next())
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
        let response = self
            .http
            .send("find_by_platform_id", self.http.request(Method::GET, url))
            .await?;
        let root = parse_document(&response)?;
        Ok(counterparties(&root, response.status)?.into_iter().next())
    }

    async fn list_changed(
        &self,
        watermark: Option<&str>,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<ChangePage, OneCError> {
        let since = changes_since(watermark, cursor);
        let url = with_changes_query(self.url(&["changes"]), since, page_size);
        let response = self
            .http
            .send("list_changed", self.http.request(Method::GET, url))
            .await?;
        let root = parse_document(&response)?;
        let items = counterparties(&root, response.status)?;
        let last_seq = root
            .attribute("ПоследнийНомер")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let has_more = root
            .attribute("ЕстьЕще")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if has_more && last_seq.is_none() {
            return Err(malformed(
                response.status,
                "ЕстьЕще without ПоследнийНомер",
                None,
            ));
        }
        Ok(ChangePage {
            items,
            next_cursor: if has_more { last_seq.clone() } else { None },
            watermark: last_seq.or_else(|| since.map(str::to_owned)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn when() -> chrono::NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 28)
            .unwrap()
            .and_hms_opt(15, 4, 5)
            .unwrap()
    }

    pub(crate) fn individual() -> Counterparty {
        Counterparty {
            platform_id: "7b0c1d2e-0000-4000-8000-000000000001".into(),
            onec_id: None,
            data_version: None,
            kind: CounterpartyKind::Individual,
            name: "Иванов Иван".into(),
            full_name: "Иванов Иван Иванович".into(),
            first_name: Some("Иван".into()),
            last_name: Some("Иванов".into()),
            contact_person: None,
            inn: Some("500100732259".into()),
            kpp: None,
            email: Some("ivanov@example.ru".into()),
            phone: Some("+79123456789".into()),
            role: Some("Опт".into()),
            status: Some("Активен".into()),
            deletion_mark: false,
            extra: BTreeMap::new(),
        }
    }

    fn legal() -> Counterparty {
        Counterparty {
            kind: CounterpartyKind::LegalEntity,
            name: "Ромашка & <Ко> \"Лютик\" 'Ц'".into(),
            full_name: "ООО \"Ромашка\"".into(),
            first_name: None,
            last_name: None,
            contact_person: Some("Петров Пётр".into()),
            inn: Some("7707083893".into()),
            kpp: Some("770701001".into()),
            ..individual()
        }
    }

    #[test]
    fn elements_follow_the_xsd_order_of_the_counterparty_type() {
        let xml = String::from_utf8(exchange_message(&[individual()], when()).unwrap()).unwrap();
        let order = [
            "<Ид>",
            "<Наименование>",
            "<ПолноеНаименование>",
            "<Фамилия>",
            "<Имя>",
            "<ИНН>",
            "<Комментарий>Роль: Опт; Статус: Активен</Комментарий>",
            "<Контакты>",
        ];
        let positions: Vec<usize> = order.iter().map(|t| xml.find(t).unwrap()).collect();
        assert!(positions.windows(2).all(|p| p[0] < p[1]), "{xml}");
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        assert!(xml.contains("ВерсияСхемы=\"2.10\" ДатаФормирования=\"2026-11-28T15:04:05\""));
        assert!(xml.contains("<Тип>Телефон мобильный</Тип><Значение>+79123456789</Значение>"));
    }

    #[test]
    fn special_characters_are_escaped_and_survive_a_round_trip() {
        // Given a legal entity whose name has every XML special character
        let xml = exchange_message(&[legal()], when()).unwrap();
        let text = String::from_utf8(xml.clone()).unwrap();
        assert!(text.contains("&amp; &lt;Ко&gt;"), "{text}");

        // When the message is read back
        let root = xml::parse(&xml).unwrap();
        let el = root
            .child("Контрагенты")
            .and_then(|c| c.child("Контрагент"))
            .unwrap();
        let cp = read_counterparty(el);

        // Then nothing was lost
        assert_eq!(cp, legal());
    }

    #[test]
    fn a_platform_id_longer_than_40_characters_is_refused() {
        let cp = Counterparty {
            platform_id: "x".repeat(41),
            ..individual()
        };
        assert!(matches!(
            exchange_message(&[cp], when()),
            Err(OneCError::InvalidRequest(_))
        ));
    }

    #[test]
    fn control_characters_are_refused_rather_than_sent() {
        let cp = Counterparty {
            name: "bad\u{1}name".into(),
            ..individual()
        };
        assert!(matches!(
            exchange_message(&[cp], when()),
            Err(OneCError::InvalidRequest(_))
        ));
    }

    #[test]
    fn the_comment_is_parsed_in_any_order_and_spacing() {
        assert_eq!(
            parse_comment("Роль: Опт; Статус: Активен"),
            (Some("Опт".into()), Some("Активен".into()))
        );
        assert_eq!(
            parse_comment("  статус:Заблокирован ;роль :  Розница  "),
            (Some("Розница".into()), Some("Заблокирован".into()))
        );
        assert_eq!(parse_comment("просто текст"), (None, None));
        let with = |role: Option<&str>, deletion_mark: bool| Counterparty {
            role: role.map(str::to_owned),
            status: None,
            deletion_mark,
            ..individual()
        };
        assert_eq!(
            comment(&with(Some("Опт"), false)).as_deref(),
            Some("Роль: Опт")
        );
        assert_eq!(comment(&with(None, false)), None);
        assert_eq!(
            comment(&with(Some("Опт"), true)).as_deref(),
            Some("Роль: Опт; ПометкаУдаления: да")
        );
    }

    #[test]
    fn an_export_item_with_extension_elements_is_read() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<ОбменКонтрагентами xmlns="urn:1C.ru:commerceml_2" ВерсияСхемы="2.10" ДатаФормирования="2026-11-28T15:04:05" ПоследнийНомер="17" ЕстьЕще="true">
  <Контрагенты><Контрагент><Ид>p-1</Ид><Наименование>Ромашка</Наименование>
    <ОфициальноеНаименование>ООО Ромашка</ОфициальноеНаименование><ИНН>7707083893</ИНН>
    <Ссылка>1fa1a135-d89b-11e6-8343-40167e2531c3</Ссылка><НомерВерсии>AAAAAAAETag=</НомерВерсии>
    <ПометкаУдаления>true</ПометкаУдаления><ДатаИзменения>2026-11-28T15:04:05</ДатаИзменения>
  </Контрагент></Контрагенты></ОбменКонтрагентами>"#;
        let root = xml::parse(doc.as_bytes()).unwrap();
        let items = counterparties(&root, StatusCode::OK).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].kind, CounterpartyKind::LegalEntity);
        assert_eq!(items[0].data_version.as_deref(), Some("AAAAAAAETag="));
        assert!(items[0].deletion_mark);
        assert_eq!(root.attribute("ПоследнийНомер"), Some("17"));
    }

    #[test]
    fn an_error_document_yields_code_and_message() {
        let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(
            "<?xml version=\"1.0\" encoding=\"windows-1251\"?><Ошибка><Код>business</Код><Сообщение>Нельзя</Сообщение></Ошибка>",
        );
        let detail = parse_error_body(&bytes).unwrap();
        assert_eq!(detail.code.as_deref(), Some("business"));
        assert_eq!(detail.message.as_deref(), Some("Нельзя"));
        assert!(parse_error_body(b"<html><title>x</title></html>").is_none());
    }

    #[test]
    fn an_error_document_answered_with_2xx_is_a_rejection_with_contact_data_masked() {
        // Given 1C answering 200 with an error document that echoes an e-mail in both parts
        let response = Response {
            status: StatusCode::OK,
            headers: reqwest::header::HeaderMap::new(),
            body: format!(
                "<Ошибка><Код>ivan.petrov@example.ru</Код><Сообщение>Дубль ivan.petrov@example.ru {}</Сообщение></Ошибка>",
                "x".repeat(5000)
            )
            .into_bytes(),
        };

        // When it is read
        let Err(OneCError::Rejected { code, message, .. }) = parse_document(&response) else {
            panic!("a 2xx error document is a rejection");
        };

        // Then neither part carries the address, and both are cut to length
        let code = code.expect("the code is kept");
        assert!(!code.contains("ivan.petrov") && !message.contains("ivan.petrov"));
        assert!(code.chars().count() <= 41);
        assert!(message.chars().count() <= super::super::http::MAX_DETAIL_CHARS + 1);
    }
}

#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
