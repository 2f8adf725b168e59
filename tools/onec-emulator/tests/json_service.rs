//! The HTTP-service JSON transport and the admin API, over real HTTP.

mod common;

use common::*;
use onec_emulator::{CounterpartyFields, CounterpartyKind, CounterpartyPatch};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn requests_without_valid_credentials_are_refused_and_utf8_credentials_are_accepted() {
    // Given an emulator whose user and password are Cyrillic
    let emulator = start().await;
    let client = client();
    let url = format!("{}/hs/site/customers?platform_id=x", emulator.base_url());

    // When asking without credentials, with a wrong password, and with the right UTF-8 ones
    let anonymous = client.get(&url).send().await.expect("answered");
    let wrong = client
        .get(&url)
        .basic_auth(USER, Some("не тот"))
        .send()
        .await
        .expect("answered");
    let right = client
        .get(&url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("answered");

    // Then the first two get 401 with 1C's realm, the last one is served
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"1C:Enterprise\""
    );
    assert_eq!(wrong.status(), 401);
    assert_eq!(right.status(), 200);
}

#[tokio::test]
async fn a_json_upsert_creates_then_updates_the_same_counterparty() {
    // Given an empty emulator
    let emulator = start().await;
    let client = client();

    // When the same platform id is posted twice, the second time with a new status
    let (first_status, first) = post_customer(&client, &emulator, &customer("p-1")).await;
    let mut changed = customer("p-1");
    changed["status"] = json!("Заблокирован");
    let (second_status, second) = post_customer(&client, &emulator, &changed).await;

    // Then 201 then 200, one counterparty, and a new data version
    assert_eq!(first_status, 201);
    assert_eq!(first["created"], true);
    assert_eq!(second_status, 200);
    assert_eq!(second["created"], false);
    assert_eq!(first["onec_id"], second["onec_id"]);
    assert_ne!(first["data_version"], second["data_version"]);
    assert_eq!(first["code"], "00-000001");
    let all = emulator.counterparties();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].fields.status.as_deref(), Some("Заблокирован"));

    // And the counterparty reads back as the contract's customer object
    let onec_id = first["onec_id"].as_str().expect("onec_id");
    let fetched: Value = request(
        &client,
        &emulator,
        Method::GET,
        &format!("/hs/site/customers/{onec_id}"),
    )
    .send()
    .await
    .expect("answered")
    .json()
    .await
    .expect("JSON");
    assert_eq!(fetched["platform_id"], "p-1");
    assert_eq!(fetched["kind"], "individual");
    assert_eq!(fetched["extra"]["Город"], "Казань");
    assert_eq!(fetched["data_version"], second["data_version"]);
    assert!(fetched.get("change_seq").is_none());
}

#[tokio::test]
async fn invalid_customers_are_answered_with_the_contract_error_shape() {
    // Given an emulator
    let emulator = start().await;
    let client = client();

    // When posting a body without a name, an unknown kind, broken JSON and an 11-digit INN
    let mut no_name = customer("p-1");
    no_name.as_object_mut().expect("object").remove("name");
    let mut bad_kind = customer("p-2");
    bad_kind["kind"] = json!("robot");
    let mut bad_inn = customer("p-3");
    bad_inn["inn"] = json!("12345678901");
    let (no_name_status, no_name_body) = post_customer(&client, &emulator, &no_name).await;
    let (bad_kind_status, _) = post_customer(&client, &emulator, &bad_kind).await;
    let (bad_inn_status, bad_inn_body) = post_customer(&client, &emulator, &bad_inn).await;
    let broken = request(&client, &emulator, Method::POST, "/hs/site/customers")
        .body("{not json")
        .send()
        .await
        .expect("answered");
    let missing = request(
        &client,
        &emulator,
        Method::GET,
        &format!("/hs/site/customers/{}", uuid::Uuid::new_v4()),
    )
    .send()
    .await
    .expect("answered");

    // Then validation errors are 422/400, the INN is a business refusal, an unknown id is 404
    assert_eq!(no_name_status, 422);
    assert_eq!(no_name_body["error"]["code"], "validation");
    assert_eq!(bad_kind_status, 422);
    assert_eq!(broken.status(), 400);
    assert_eq!(bad_inn_status, 500);
    assert_eq!(bad_inn_body["error"]["code"], "business");
    assert_eq!(missing.status(), 404);
    let missing: Value = missing.json().await.expect("JSON");
    assert_eq!(missing["error"]["code"], "not_found");
    assert!(emulator.counterparties().is_empty());
}

#[tokio::test]
async fn finding_by_platform_id_returns_zero_or_one_item() {
    // Given one counterparty
    let emulator = start().await;
    let client = client();
    post_customer(&client, &emulator, &customer("p-1")).await;

    // When looking up a known and an unknown platform id
    let find = |pid: &'static str| {
        request(&client, &emulator, Method::GET, "/hs/site/customers")
            .query(&[("platform_id", pid)])
            .send()
    };
    let known: Value = find("p-1")
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let unknown: Value = find("p-404")
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");

    // Then exactly one and zero items come back
    assert_eq!(known["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(known["items"][0]["platform_id"], "p-1");
    assert_eq!(unknown["items"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn the_changes_feed_pages_in_write_order_with_has_more() {
    // Given three counterparties, the first one then edited in 1C
    let emulator = start().await;
    let client = client();
    let (_, first) = post_customer(&client, &emulator, &customer("p-1")).await;
    post_customer(&client, &emulator, &customer("p-2")).await;
    post_customer(&client, &emulator, &customer("p-3")).await;
    let onec_id = first["onec_id"].as_str().expect("id");
    emulator
        .edit_in_1c(
            onec_id,
            CounterpartyPatch {
                role: Some(Some("Розница".into())),
                ..CounterpartyPatch::default()
            },
        )
        .expect("edited");

    // When paging the feed two at a time
    let page = |since: Option<String>| {
        let mut req =
            request(&client, &emulator, Method::GET, "/hs/site/changes").query(&[("limit", "2")]);
        if let Some(since) = since {
            req = req.query(&[("since", since)]);
        }
        async move {
            req.send()
                .await
                .expect("answered")
                .json::<Value>()
                .await
                .expect("JSON")
        }
    };
    let one = page(None).await;
    let two = page(one["last_seq"].as_str().map(str::to_string)).await;
    let three = page(two["last_seq"].as_str().map(str::to_string)).await;

    // Then pages come oldest first, the edited counterparty last, and the feed ends
    let pids = |p: &Value| -> Vec<String> {
        p["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["platform_id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(pids(&one), ["p-2", "p-3"]);
    assert_eq!(one["has_more"], true);
    assert_eq!(pids(&two), ["p-1"]);
    assert_eq!(two["items"][0]["role"], "Розница");
    assert_eq!(two["has_more"], false);
    assert!(pids(&three).is_empty());
    assert_eq!(three["last_seq"], two["last_seq"]);
}

#[tokio::test]
async fn an_edit_in_1c_bumps_the_version_and_appears_in_the_changes_feed() {
    // Given a counterparty entered in 1C by an operator, via the admin API
    let emulator = start().await;
    let client = client();
    let created: Value = client
        .post(format!("{}/counterparties", emulator.admin_url()))
        .json(&json!({"kind": "legal_entity", "name": "ООО Ромашка", "inn": "7707083893", "kpp": "770701001"}))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let onec_id = created["onec_id"].as_str().expect("id");

    // When the operator edits its status over the admin API
    let edited = client
        .patch(format!("{}/counterparties/{onec_id}", emulator.admin_url()))
        .json(&json!({"status": "Заблокирован"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(edited.status(), 200);
    let edited: Value = edited.json().await.expect("JSON");
    let feed: Value = request(&client, &emulator, Method::GET, "/hs/site/changes")
        .query(&[("since", created["change_seq"].to_string())])
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");

    // Then the version moved on and the feed after the creation holds exactly the edit
    assert_ne!(created["data_version"], edited["data_version"]);
    assert!(edited["change_seq"].as_u64() > created["change_seq"].as_u64());
    assert_eq!(feed["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(feed["items"][0]["status"], "Заблокирован");
    assert_eq!(feed["items"][0]["platform_id"], Value::Null);
    assert_eq!(feed["last_seq"], edited["change_seq"].to_string());
}

#[tokio::test]
async fn the_admin_api_refuses_a_platform_id_another_counterparty_holds() {
    // Given two counterparties, one with a platform id
    let emulator = start().await;
    emulator
        .create_in_1c(CounterpartyFields {
            platform_id: Some("p-1".into()),
            ..CounterpartyFields::new(CounterpartyKind::Individual, "Петров")
        })
        .expect("created");
    let other = emulator
        .create_in_1c(CounterpartyFields::new(
            CounterpartyKind::Individual,
            "Сидоров",
        ))
        .expect("created");

    // When the second is given the first one's platform id
    let response = client()
        .patch(format!(
            "{}/counterparties/{}",
            emulator.admin_url(),
            other.onec_id
        ))
        .json(&json!({"platform_id": "p-1"}))
        .send()
        .await
        .expect("answered");

    // Then it is a conflict and nothing changed
    assert_eq!(response.status(), 409);
    assert_eq!(emulator.find_by_platform_id("p-1").len(), 1);
}

#[tokio::test]
async fn a_body_above_the_limit_is_refused_with_413() {
    // Given an emulator with a 1 KiB body limit
    let emulator = start_with(onec_emulator::EmulatorConfig {
        body_limit_bytes: 1024,
        ..Default::default()
    })
    .await;

    // When posting 2 KiB
    let mut big = customer("p-1");
    big["name"] = json!("я".repeat(1024));
    let response = request(&client(), &emulator, Method::POST, "/hs/site/customers")
        .json(&big)
        .send()
        .await
        .expect("answered");

    // Then it is refused and nothing is stored
    assert_eq!(response.status(), 413);
    assert!(emulator.counterparties().is_empty());
}

#[tokio::test]
async fn reset_forgets_counterparties_and_stats() {
    // Given a counterparty and some traffic
    let emulator = start().await;
    let client = client();
    post_customer(&client, &emulator, &customer("p-1")).await;
    assert_eq!(emulator.stats().creates, 1);

    // When the admin API resets the emulator
    let response = client
        .post(format!("{}/reset", emulator.admin_url()))
        .send()
        .await
        .expect("answered");

    // Then nothing is left
    assert_eq!(response.status(), 204);
    assert!(emulator.counterparties().is_empty());
    assert_eq!(emulator.stats().requests_total(), 0);
    assert_eq!(emulator.stats().creates, 0);
}
