//! The standard OData transport, over real HTTP.

mod common;

use common::*;
use onec_emulator::EmulatorHandle;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// `Catalog_Контрагенты` percent-encoded, as a client builds the path.
const CATALOG: &str = "Catalog_%D0%9A%D0%BE%D0%BD%D1%82%D1%80%D0%B0%D0%B3%D0%B5%D0%BD%D1%82%D1%8B";

fn odata(
    client: &reqwest::Client,
    emulator: &EmulatorHandle,
    method: Method,
    rest: &str,
) -> reqwest::RequestBuilder {
    let separator = if rest.contains('?') { '&' } else { '?' };
    request(
        client,
        emulator,
        method,
        &format!("/odata/standard.odata/{CATALOG}{rest}{separator}$format=json"),
    )
}

fn counterparty_body(platform_id: &str) -> Value {
    json!({
        "Description": "ТЕХНО-ЛОГИСТИК ООО",
        "НаименованиеПолное": "ООО \"ТЕХНО-ЛОГИСТИК\"",
        "ЮридическоеФизическоеЛицо": "ЮридическоеЛицо",
        "ИНН": "5024089920",
        "КПП": "501701001",
        "ИдентификаторНаСайте": platform_id,
        "РольНаСайте": "Опт",
        "СтатусКлиента": "Активен",
        "КонтактноеЛицо": "Петров Пётр",
        "DeletionMark": false,
        "Город": "Казань",
        "НеизвестноеСвойство@odata.bind": "ignored",
        "КонтактнаяИнформация": [
            {"LineNumber": "1", "Тип": "АдресЭлектроннойПочты", "Представление": "a@b.ru", "АдресЭП": "a@b.ru"},
            {"LineNumber": "2", "Тип": "Телефон", "Представление": "+79123456789", "НомерТелефона": "+79123456789"}
        ]
    })
}

async fn create(client: &reqwest::Client, emulator: &EmulatorHandle, platform_id: &str) -> Value {
    let response = odata(client, emulator, Method::POST, "")
        .json(&counterparty_body(platform_id))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.expect("JSON")
}

async fn filter(
    client: &reqwest::Client,
    emulator: &EmulatorHandle,
    filter: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let response = odata(client, emulator, Method::GET, "")
        .query(&[("$filter", filter)])
        .query(extra)
        .send()
        .await
        .expect("answered");
    (response.status(), response.json().await.expect("JSON"))
}

#[tokio::test]
async fn a_post_answers_201_with_location_and_the_full_entity() {
    // Given an empty emulator
    let emulator = start().await;
    let client = client();

    // When a counterparty is POSTed
    let response = odata(&client, &emulator, Method::POST, "")
        .json(&counterparty_body("p-1"))
        .send()
        .await
        .expect("answered");

    // Then 201, DataServiceVersion 3.0, a Location naming the new key, and the whole entity
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["dataserviceversion"], "3.0");
    let location = response.headers()["location"]
        .to_str()
        .expect("ASCII")
        .to_string();
    let body: Value = response.json().await.expect("JSON");
    let ref_key = body["Ref_Key"].as_str().expect("Ref_Key");
    assert_eq!(
        location,
        format!(
            "{}/odata/standard.odata/{CATALOG}(guid'{ref_key}')",
            emulator.base_url()
        )
    );
    assert!(body["odata.metadata"]
        .as_str()
        .is_some_and(|m| m.ends_with("$metadata#Catalog_Контрагенты/@Element")));
    assert!(body["DataVersion"].as_str().is_some_and(|v| !v.is_empty()));
    assert_eq!(body["Code"], "00-000001");
    assert_eq!(body["Parent_Key"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(body["ИдентификаторНаСайте"], "p-1");
    assert_eq!(body["Город"], "Казань");
    assert!(body.get("НеизвестноеСвойство@odata.bind").is_none());
    assert_eq!(body["КонтактнаяИнформация"][1]["LineNumber"], "2");
    assert_eq!(
        body["КонтактнаяИнформация"][1]["НомерТелефона"],
        "+79123456789"
    );
    assert!(body["ДатаИзменения"]
        .as_str()
        .is_some_and(|d| d.len() == 19));

    // And the counterparty is readable by key
    let fetched: Value = odata(
        &client,
        &emulator,
        Method::GET,
        &format!("(guid'{ref_key}')"),
    )
    .send()
    .await
    .expect("answered")
    .json()
    .await
    .expect("JSON");
    assert_eq!(fetched["DataVersion"], body["DataVersion"]);
}

#[tokio::test]
async fn a_patch_changes_the_data_version_and_replaces_the_tabular_section_whole() {
    // Given a counterparty with an e-mail and a phone
    let emulator = start().await;
    let client = client();
    let created = create(&client, &emulator, "p-1").await;
    let ref_key = created["Ref_Key"].as_str().expect("Ref_Key");

    // When it is PATCHed with a new status and a contact section holding only the phone
    let response = odata(&client, &emulator, Method::PATCH, &format!("(guid'{ref_key}')"))
        .json(&json!({
            "СтатусКлиента": "Заблокирован",
            "КонтактнаяИнформация": [{"LineNumber": "1", "Тип": "Телефон", "Представление": "+79000000000", "НомерТелефона": "+79000000000"}]
        }))
        .send()
        .await
        .expect("answered");

    // Then the answer is the updated entity: new version, untouched attributes kept, e-mail gone
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    assert_ne!(body["DataVersion"], created["DataVersion"]);
    assert_eq!(body["СтатусКлиента"], "Заблокирован");
    assert_eq!(body["РольНаСайте"], "Опт");
    assert_eq!(
        body["КонтактнаяИнформация"].as_array().map(Vec::len),
        Some(1)
    );
    let stored = emulator.counterparty(ref_key).expect("stored");
    assert_eq!(stored.fields.email, None);
    assert_eq!(stored.fields.phone.as_deref(), Some("+79000000000"));
}

#[tokio::test]
async fn a_filter_by_the_platform_attribute_finds_the_counterparty_and_quotes_are_doubled() {
    // Given two counterparties, one of whose platform id has a quote
    let emulator = start().await;
    let client = client();
    create(&client, &emulator, "o'brien").await;
    create(&client, &emulator, "p-2").await;

    // When filtering by the platform attribute (quote doubled) and by a missing id
    let (status, found) = filter(
        &client,
        &emulator,
        "ИдентификаторНаСайте eq 'o''brien' and DeletionMark eq false",
        &[],
    )
    .await;
    let (_, none) = filter(&client, &emulator, "ИдентификаторНаСайте eq 'p-404'", &[]).await;

    // Then exactly the right one comes back in a collection document
    assert_eq!(status, StatusCode::OK);
    assert!(found["odata.metadata"]
        .as_str()
        .is_some_and(|m| m.ends_with("$metadata#Catalog_Контрагенты")));
    assert_eq!(found["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(found["value"][0]["ИдентификаторНаСайте"], "o'brien");
    assert_eq!(none["value"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn a_post_with_a_known_platform_id_creates_a_second_counterparty_like_real_1c() {
    // Given a counterparty created over OData
    let emulator = start().await;
    let client = client();
    create(&client, &emulator, "p-1").await;

    // When the same body is POSTed again (a retry that skipped the lookup)
    create(&client, &emulator, "p-1").await;

    // Then 1C holds a duplicate, and a JSON upsert for that id reports the conflict
    assert_eq!(emulator.find_by_platform_id("p-1").len(), 2);
    let mut json_customer = customer("p-1");
    json_customer["kind"] = json!("legal_entity");
    let (status, body) = post_customer(&client, &emulator, &json_customer).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "conflict");
}

#[tokio::test]
async fn the_cyrillic_path_works_percent_encoded_and_as_reqwest_encodes_it() {
    // Given a counterparty
    let emulator = start().await;
    let client = client();
    create(&client, &emulator, "p-1").await;

    // When the collection is read through a URL written with raw Cyrillic (the client library
    // percent-encodes it) and through the pre-encoded path
    let raw = client
        .get(format!(
            "{}/odata/standard.odata/Catalog_Контрагенты?$format=json",
            emulator.base_url()
        ))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("answered");
    let encoded = odata(&client, &emulator, Method::GET, "")
        .send()
        .await
        .expect("answered");

    // Then both are served the same collection
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(encoded.status(), StatusCode::OK);
    let raw: Value = raw.json().await.expect("JSON");
    let encoded: Value = encoded.json().await.expect("JSON");
    assert_eq!(raw["value"], encoded["value"]);
    assert_eq!(raw["value"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn top_and_skip_page_through_an_ordered_collection() {
    // Given five counterparties
    let emulator = start().await;
    let client = client();
    for i in 1..=5 {
        create(&client, &emulator, &format!("p-{i}")).await;
    }

    // When paging by two, ordered by the modification date and key (the import's query)
    let mut seen = Vec::new();
    let mut skip = 0;
    loop {
        let skip_text = skip.to_string();
        let (status, page) = filter(
            &client,
            &emulator,
            "ДатаИзменения ge datetime'2000-01-01T00:00:00'",
            &[
                ("$orderby", "ДатаИзменения asc,Ref_Key asc"),
                ("$top", "2"),
                ("$skip", &skip_text),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let items = page["value"].as_array().cloned().unwrap_or_default();
        seen.extend(items.iter().map(|i| {
            (
                i["ДатаИзменения"].as_str().unwrap_or("").to_string(),
                i["Ref_Key"].as_str().unwrap_or("").to_string(),
            )
        }));
        if items.len() < 2 {
            break;
        }
        skip += 2;
    }

    // Then every counterparty is seen once, in (date, key) order
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);

    // And descending order reverses it
    let (_, desc) = filter(
        &client,
        &emulator,
        "DeletionMark eq false",
        &[("$orderby", "Code desc"), ("$top", "1")],
    )
    .await;
    assert_eq!(desc["value"][0]["Code"], "00-000005");
}

#[tokio::test]
async fn errors_have_the_odata_error_shape() {
    // Given a counterparty
    let emulator = start().await;
    let client = client();
    create(&client, &emulator, "p-1").await;

    // When fetching an unknown key, filtering with a broken $filter, and POSTing a bad INN
    let missing = odata(
        &client,
        &emulator,
        Method::GET,
        &format!("(guid'{}')", uuid::Uuid::new_v4()),
    )
    .send()
    .await
    .expect("answered");
    let (bad_filter_status, bad_filter) =
        filter(&client, &emulator, "ИдентификаторНаСайте eq 'p-1", &[]).await;
    let mut bad_inn = counterparty_body("p-2");
    bad_inn["ИНН"] = json!("123");
    let rejected = odata(&client, &emulator, Method::POST, "")
        .json(&bad_inn)
        .send()
        .await
        .expect("answered");

    // Then 404/9, 400/14 and 500/-1, each with a Russian message
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let missing: Value = missing.json().await.expect("JSON");
    assert_eq!(missing["odata.error"]["code"], "9");
    assert_eq!(missing["odata.error"]["message"]["lang"], "ru");
    assert_eq!(bad_filter_status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_filter["odata.error"]["code"], "14");
    assert_eq!(rejected.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let rejected: Value = rejected.json().await.expect("JSON");
    assert_eq!(rejected["odata.error"]["code"], "-1");
    assert!(rejected["odata.error"]["message"]["value"]
        .as_str()
        .is_some_and(|m| m.contains("ИНН")));
    assert!(emulator.find_by_platform_id("p-2").is_empty());
}

#[tokio::test]
async fn a_delete_removes_the_counterparty_physically() {
    // Given a counterparty
    let emulator = start().await;
    let client = client();
    let created = create(&client, &emulator, "p-1").await;
    let key = format!("(guid'{}')", created["Ref_Key"].as_str().expect("Ref_Key"));

    // When it is deleted, then fetched
    let deleted = odata(&client, &emulator, Method::DELETE, &key)
        .send()
        .await
        .expect("answered");
    let fetched = odata(&client, &emulator, Method::GET, &key)
        .send()
        .await
        .expect("answered");

    // Then 204, then 404, and nothing is left
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(fetched.status(), StatusCode::NOT_FOUND);
    assert!(emulator.counterparties().is_empty());
}

#[tokio::test]
async fn a_counterparty_written_over_odata_reads_back_over_json_and_admin() {
    // Given a counterparty created over OData
    let emulator = start().await;
    let client = client();
    let created = create(&client, &emulator, "p-1").await;

    // When it is read over the JSON service and the admin API
    let via_json: Value = request(
        &client,
        &emulator,
        Method::GET,
        "/hs/site/customers?platform_id=p-1",
    )
    .send()
    .await
    .expect("answered")
    .json()
    .await
    .expect("JSON");
    let via_admin: Value = client
        .get(format!("{}/counterparties", emulator.admin_url()))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");

    // Then both show the same record and version
    let item = &via_json["items"][0];
    assert_eq!(item["onec_id"], created["Ref_Key"]);
    assert_eq!(item["data_version"], created["DataVersion"]);
    assert_eq!(item["kind"], "legal_entity");
    assert_eq!(item["inn"], "5024089920");
    assert_eq!(item["email"], "a@b.ru");
    assert_eq!(item["contact_person"], "Петров Пётр");
    assert_eq!(item["extra"]["Город"], "Казань");
    assert_eq!(via_admin[0]["onec_id"], created["Ref_Key"]);
    assert!(via_admin[0]["change_seq"].as_u64().is_some());
}
