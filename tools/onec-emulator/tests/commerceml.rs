//! The CommerceML transport, over real HTTP.

mod common;

use common::*;
use onec_emulator::EmulatorHandle;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const PATH: &str = "/hs/site/commerceml/customers";

fn exchange(encoding: &str, counterparties: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="{encoding}"?>
<ОбменКонтрагентами xmlns="urn:1C.ru:commerceml_2" ВерсияСхемы="2.10" ДатаФормирования="2026-11-28T15:04:05">
  <Контрагенты>{counterparties}</Контрагенты>
</ОбменКонтрагентами>"#
    )
}

fn individual(id: &str) -> String {
    format!(
        r#"<Контрагент>
      <Ид>{id}</Ид>
      <Наименование>Иванов Иван</Наименование>
      <ПолноеНаименование>Иванов Иван Иванович</ПолноеНаименование>
      <Фамилия>Иванов</Фамилия>
      <Имя>Иван</Имя>
      <ИНН>500100732259</ИНН>
      <Комментарий>Роль: Опт; Статус: Активен</Комментарий>
      <Контакты>
        <Контакт><Тип>Почта</Тип><Значение>ivanov@example.ru</Значение></Контакт>
        <Контакт><Тип>Телефон мобильный</Тип><Значение>+79123456789</Значение></Контакт>
      </Контакты>
    </Контрагент>"#
    )
}

fn legal_entity(id: &str, inn: &str) -> String {
    format!(
        r#"<Контрагент>
      <Ид>{id}</Ид>
      <Наименование>Рога и Копыта</Наименование>
      <ОфициальноеНаименование>ООО &quot;Рога &amp; Копыта&quot;</ОфициальноеНаименование>
      <ИНН>{inn}</ИНН>
      <КПП>770701001</КПП>
      <Комментарий>Роль: Дилер</Комментарий>
      <Представители>
        <Представитель>
          <Наименование>Петров Пётр</Наименование>
          <ПолноеНаименование>Петров Пётр</ПолноеНаименование>
          <Отношение>Контактное лицо</Отношение>
        </Представитель>
      </Представители>
    </Контрагент>"#
    )
}

async fn post_xml(
    emulator: &EmulatorHandle,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, String, String) {
    let response = request(&client(), emulator, Method::POST, PATH)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("answered");
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_string();
    let bytes = response.bytes().await.expect("body");
    let (text, _) = if content_type.contains("windows-1251") {
        encoding_rs::WINDOWS_1251.decode_without_bom_handling(&bytes)
    } else {
        encoding_rs::UTF_8.decode_without_bom_handling(&bytes)
    };
    (status, content_type, text.into_owned())
}

async fn get_text(emulator: &EmulatorHandle, path: &str) -> (StatusCode, String) {
    let response = request(&client(), emulator, Method::GET, path)
        .send()
        .await
        .expect("answered");
    (response.status(), response.text().await.expect("body"))
}

#[tokio::test]
async fn a_utf8_exchange_creates_both_kinds_and_answers_the_result_per_counterparty() {
    // Given an individual and a legal entity with a contact person, in UTF-8
    let emulator = start().await;
    let body = exchange(
        "UTF-8",
        &(individual("p-1") + &legal_entity("p-2", "7707083893")),
    );

    // When posted
    let (status, _, answer) = post_xml(
        &emulator,
        "application/xml; charset=utf-8",
        body.into_bytes(),
    )
    .await;

    // Then both are created and reported with reference and version
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.contains("<РезультатОбмена xmlns=\"urn:1C.ru:commerceml_2\">"));
    assert_eq!(answer.matches("<Создан>true</Создан>").count(), 2);
    let person = &emulator.find_by_platform_id("p-1")[0];
    assert!(answer.contains(&format!("<Ссылка>{}</Ссылка>", person.onec_id)));
    assert!(answer.contains(&format!(
        "<НомерВерсии>{}</НомерВерсии>",
        person.data_version
    )));
    assert_eq!(person.fields.email.as_deref(), Some("ivanov@example.ru"));
    assert_eq!(person.fields.phone.as_deref(), Some("+79123456789"));
    assert_eq!(person.fields.role.as_deref(), Some("Опт"));
    assert_eq!(person.fields.status.as_deref(), Some("Активен"));
    assert_eq!(person.fields.first_name.as_deref(), Some("Иван"));
    let company = &emulator.find_by_platform_id("p-2")[0];
    assert_eq!(company.fields.full_name, "ООО \"Рога & Копыта\"");
    assert_eq!(
        company.fields.contact_person.as_deref(),
        Some("Петров Пётр")
    );
    assert_eq!(company.fields.kpp.as_deref(), Some("770701001"));
    assert_eq!(company.fields.status, None);

    // And posting the same document again updates instead of creating
    let again = exchange("UTF-8", &individual("p-1"));
    let (_, _, answer) = post_xml(&emulator, "application/xml", again.into_bytes()).await;
    assert!(answer.contains("<Создан>false</Создан>"));
    assert_eq!(emulator.counterparties().len(), 2);
}

#[tokio::test]
async fn a_windows_1251_exchange_parses_and_is_answered_in_windows_1251() {
    // Given a document declared and encoded as windows-1251
    let emulator = start().await;
    let text = exchange("windows-1251", &legal_entity("p-1", "7707083893"));
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1251.encode(&text);
    assert!(!unmappable);

    // When posted
    let (status, content_type, answer) = post_xml(
        &emulator,
        "application/xml; charset=windows-1251",
        bytes.into_owned(),
    )
    .await;

    // Then the Cyrillic arrived intact and the answer uses the same encoding
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(content_type.contains("windows-1251"));
    assert!(answer.starts_with("<?xml version=\"1.0\" encoding=\"windows-1251\"?>"));
    assert!(answer.contains("<Создан>true</Создан>"));
    let stored = &emulator.find_by_platform_id("p-1")[0];
    assert_eq!(stored.fields.name, "Рога и Копыта");
    assert_eq!(stored.fields.role.as_deref(), Some("Дилер"));
}

#[tokio::test]
async fn a_document_with_a_doctype_is_refused() {
    // Given a document declaring an external entity
    let emulator = start().await;
    let body = exchange("UTF-8", &individual("&xxe;")).replacen(
        "<ОбменКонтрагентами",
        "<!DOCTYPE ОбменКонтрагентами [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n<ОбменКонтрагентами",
        1,
    );

    // When posted
    let (status, _, answer) = post_xml(&emulator, "application/xml", body.into_bytes()).await;

    // Then it is a 400 Ошибка and nothing was written
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.contains("<Ошибка><Код>validation</Код>"));
    assert!(answer.contains("DOCTYPE"));
    assert!(emulator.counterparties().is_empty());
}

#[tokio::test]
async fn a_business_refusal_rejects_the_whole_document() {
    // Given a document whose second counterparty has a 9-digit INN
    let emulator = start().await;
    let body = exchange(
        "UTF-8",
        &(individual("p-1") + &legal_entity("p-2", "770708389")),
    );

    // When posted
    let (status, _, answer) = post_xml(&emulator, "application/xml", body.into_bytes()).await;

    // Then it is a 500 business error and neither counterparty exists
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(answer.contains("<Код>business</Код>"));
    assert!(emulator.counterparties().is_empty());
}

#[tokio::test]
async fn malformed_or_foreign_documents_are_refused_with_400() {
    // Given a truncated document, one in another namespace and one without a Контрагент
    let emulator = start().await;
    let truncated: String = exchange("UTF-8", &individual("p-1"))
        .chars()
        .take(200)
        .collect();
    let foreign =
        exchange("UTF-8", &individual("p-1")).replace("urn:1C.ru:commerceml_2", "urn:example");
    let empty = exchange("UTF-8", "");

    // When each is posted, then each is refused
    for body in [truncated, foreign, empty] {
        let (status, _, answer) = post_xml(&emulator, "application/xml", body.into_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer.contains("<Ошибка>"));
    }
    assert!(emulator.counterparties().is_empty());
}

#[tokio::test]
async fn reads_answer_exchange_documents_with_the_1c_extension_elements() {
    // Given a legal entity created over CommerceML
    let emulator = start().await;
    post_xml(
        &emulator,
        "application/xml",
        exchange("UTF-8", &legal_entity("p-1", "7707083893")).into_bytes(),
    )
    .await;
    let stored = emulator.find_by_platform_id("p-1")[0].clone();

    // When it is fetched by reference, found by platform id, and an unknown one is fetched
    let (status, by_ref) = get_text(&emulator, &format!("{PATH}/{}", stored.onec_id)).await;
    let (_, by_pid) = get_text(&emulator, &format!("{PATH}?platform_id=p-1")).await;
    let (_, none) = get_text(&emulator, &format!("{PATH}?platform_id=p-404")).await;
    let (missing, missing_body) =
        get_text(&emulator, &format!("{PATH}/{}", uuid::Uuid::new_v4())).await;

    // Then the document carries the standard elements, then Ссылка, НомерВерсии, ПометкаУдаления, ДатаИзменения
    assert_eq!(status, StatusCode::OK);
    assert!(by_ref
        .contains("<ОбменКонтрагентами xmlns=\"urn:1C.ru:commerceml_2\" ВерсияСхемы=\"2.10\""));
    assert!(by_ref.contains(
        "<ОфициальноеНаименование>ООО &quot;Рога &amp; Копыта&quot;</ОфициальноеНаименование>"
    ));
    assert!(by_ref.contains("<Отношение>Контактное лицо</Отношение>"));
    let tail = format!(
        "<Ссылка>{}</Ссылка><НомерВерсии>{}</НомерВерсии><ПометкаУдаления>false</ПометкаУдаления><ДатаИзменения>",
        stored.onec_id, stored.data_version
    );
    assert!(by_ref.contains(&tail), "{by_ref}");
    let items = |doc: &str| {
        doc.split_once("<Контрагенты>")
            .map(|(_, items)| items.to_string())
    };
    assert_eq!(items(&by_ref), items(&by_pid));
    assert_eq!(none.matches("<Контрагент>").count(), 0);
    assert_eq!(missing, StatusCode::NOT_FOUND);
    assert!(missing_body.contains("<Код>not_found</Код>"));
}

#[tokio::test]
async fn the_commerceml_changes_feed_pages_with_last_number_and_more_flag() {
    // Given three counterparties
    let emulator = start().await;
    let body = exchange(
        "UTF-8",
        &(individual("p-1") + &individual("p-2") + &individual("p-3")),
    );
    post_xml(&emulator, "application/xml", body.into_bytes()).await;

    // When the feed is read two at a time
    let (_, first) = get_text(&emulator, "/hs/site/commerceml/changes?limit=2").await;
    let second_seq = emulator.find_by_platform_id("p-2")[0].change_seq;
    let (_, second) = get_text(
        &emulator,
        &format!("/hs/site/commerceml/changes?limit=2&since={second_seq}"),
    )
    .await;

    // Then the first page has two and says there is more; the second has the last one
    assert!(
        first.contains(&format!("ПоследнийНомер=\"{second_seq}\" ЕстьЕще=\"true\"")),
        "{first}"
    );
    assert_eq!(first.matches("<Контрагент>").count(), 2);
    assert!(second.contains("ЕстьЕще=\"false\""));
    assert!(second.contains("<Ид>p-3</Ид>"));
    assert_eq!(second.matches("<Контрагент>").count(), 1);
}

#[tokio::test]
async fn a_counterparty_created_over_json_reads_over_odata_and_commerceml() {
    // Given a customer created over the JSON service
    let emulator = start().await;
    let client = client();
    let (_, created) = post_customer(&client, &emulator, &customer("p-1")).await;
    let onec_id = created["onec_id"].as_str().expect("id").to_string();

    // When it is read over OData and CommerceML
    let odata: Value = request(
        &client,
        &emulator,
        Method::GET,
        &format!("/odata/standard.odata/Catalog_Контрагенты(guid'{onec_id}')?$format=json"),
    )
    .send()
    .await
    .expect("answered")
    .json()
    .await
    .expect("JSON");
    let (_, xml) = get_text(&emulator, &format!("{PATH}/{onec_id}")).await;

    // Then both show the same counterparty and version
    assert_eq!(odata["ИдентификаторНаСайте"], "p-1");
    assert_eq!(odata["DataVersion"], created["data_version"]);
    assert_eq!(odata["ЮридическоеФизическоеЛицо"], "ФизическоеЛицо");
    assert!(xml.contains("<Ид>p-1</Ид>"));
    assert!(xml.contains(&format!(
        "<НомерВерсии>{}</НомерВерсии>",
        created["data_version"].as_str().unwrap_or("")
    )));
    assert!(xml.contains("<Комментарий>Роль: Опт; Статус: Активен</Комментарий>"));
    assert!(
        xml.contains("<Контакт><Тип>Почта</Тип><Значение>ivanov@example.ru</Значение></Контакт>")
    );
}
