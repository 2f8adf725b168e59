//! The standard OData transport against the 1C emulator over real HTTP.

use integration_tests::emulator;
use integration_tests::onec_scenarios as scenario;
use shared::onec::Transport;

const TRANSPORT: Transport = Transport::OData;

integration_tests::every_transport_scenario!(TRANSPORT);

/// Creates a counterparty over OData the way a careless integration would: a bare POST.
async fn post_directly(emulator: &emulator::Emulator, platform_id: &str, name: &str) -> String {
    let config = emulator.handle.config();
    let url = format!(
        "{}/odata/standard.odata/Catalog_Контрагенты?$format=json",
        emulator.handle.base_url()
    );
    let response = shared::https::reqwest_builder()
        .build()
        .unwrap()
        .post(url)
        .basic_auth(&config.username, Some(&config.password))
        .json(&serde_json::json!({
            "Description": name,
            "ЮридическоеФизическоеЛицо": "ЮридическоеЛицо",
            "ИдентификаторНаСайте": platform_id,
        }))
        .send()
        .await
        .expect("the emulator answers");
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.expect("a JSON entity");
    body["Ref_Key"]
        .as_str()
        .expect("the entity has a Ref_Key")
        .to_owned()
}

#[tokio::test]
async fn duplicates_already_in_1c_are_not_multiplied_and_the_oldest_is_updated() {
    // Given two counterparties in 1C that store the same platform id
    let emulator = emulator::Emulator::start().await;
    let client = emulator.client(TRANSPORT);
    let id = emulator::platform_id();
    let oldest = post_directly(&emulator, &id, "Первый").await;
    let newer = post_directly(&emulator, &id, "Второй").await;

    // When the customer is exported
    let out = client
        .upsert_customer(&emulator::legal_entity(&id))
        .await
        .expect("upsert succeeds");

    // Then the oldest (lowest Code) was updated and no third one was created
    assert_eq!(out.onec_id, oldest);
    assert!(!out.created);
    assert_eq!(emulator.count_for(&id), 2);
    let untouched = emulator
        .handle
        .counterparty(&newer)
        .expect("the newer duplicate is still there");
    assert_eq!(untouched.fields.name, "Второй");
    emulator.stop().await;
}

#[tokio::test]
async fn a_counterparty_modified_while_changes_are_listed_makes_no_other_one_skipped() {
    // Given six counterparties last changed one second apart
    let emulator = emulator::Emulator::start().await;
    let client = emulator.client(TRANSPORT);
    let mut refs = Vec::new();
    for second in 1..=6 {
        let out = client
            .upsert_customer(&emulator::individual(&emulator::platform_id()))
            .await
            .expect("upsert succeeds");
        let at = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
            .and_then(|d| d.and_hms_opt(10, 0, second))
            .expect("a valid date");
        emulator
            .handle
            .backdate(&out.onec_id, at)
            .expect("backdated");
        refs.push(out.onec_id);
    }

    // When the first page is read, the first counterparty is then edited in 1C (it moves to
    // the end of the change order), and the listing continues
    let first = client
        .list_changed(None, None, 3)
        .await
        .expect("the first page");
    assert!(first
        .items
        .iter()
        .any(|cp| cp.onec_id.as_ref() == Some(&refs[0])));
    emulator
        .handle
        .edit_in_1c(
            &refs[0],
            onec_emulator::CounterpartyPatch {
                role: Some(Some("Дилер".into())),
                ..Default::default()
            },
        )
        .expect("the edit in 1C succeeds");
    let mut listed: Vec<_> = first.items;
    let mut cursor = first.next_cursor;
    let mut watermark = first.watermark;
    while let Some(next) = cursor {
        let page = client
            .list_changed(None, Some(&next), 3)
            .await
            .expect("a page");
        listed.extend(page.items);
        cursor = page.next_cursor;
        watermark = page.watermark;
        assert!(listed.len() < 50, "paging does not end");
    }

    // Then every counterparty was listed (an offset over the whole range would have passed
    // over the fourth), the edited one again with its edit, and the watermark is its new date
    for onec_id in &refs {
        assert!(
            listed.iter().any(|cp| cp.onec_id.as_ref() == Some(onec_id)),
            "{onec_id} was never listed"
        );
    }
    let edited = listed.last().expect("something was listed");
    assert_eq!(edited.onec_id.as_ref(), Some(&refs[0]));
    assert_eq!(edited.role.as_deref(), Some("Дилер"));
    let record = emulator.handle.counterparty(&refs[0]).expect("in 1C");
    assert_eq!(
        watermark,
        Some(record.modified_at.format("%Y-%m-%dT%H:%M:%S").to_string())
    );
    emulator.stop().await;
}

#[tokio::test]
async fn without_a_modification_date_attribute_the_whole_catalogue_is_paged_once() {
    // Given a deployment whose catalogue has no modification date attribute
    let emulator = emulator::Emulator::start().await;
    let client = emulator.client_with(TRANSPORT, |c| c.schema.modified_at_attribute = None);
    for _ in 0..5 {
        client
            .upsert_customer(&emulator::individual(&emulator::platform_id()))
            .await
            .expect("upsert succeeds");
    }

    // When everything is listed in pages of 2
    let (items, watermark, _) = scenario::list_all(client.as_ref(), None, 2).await;

    // Then every counterparty appears exactly once, in reference order, with no watermark
    let mut expected: Vec<String> = emulator
        .handle
        .counterparties()
        .into_iter()
        .map(|r| r.onec_id)
        .collect();
    expected.sort();
    let listed: Vec<String> = items.iter().filter_map(|cp| cp.onec_id.clone()).collect();
    assert_eq!(listed, expected);
    assert_eq!(watermark, None);
    emulator.stop().await;
}

#[tokio::test]
async fn a_platform_id_with_a_quote_is_found_by_its_filter() {
    // Given a platform id holding a quote, which OData filter literals must double
    let emulator = emulator::Emulator::start().await;
    let client = emulator.client(TRANSPORT);
    let id = format!("o'brien-{}", emulator::platform_id());

    // When it is exported twice and looked up
    let first = client
        .upsert_customer(&emulator::individual(&id))
        .await
        .expect("first upsert succeeds");
    let second = client
        .upsert_customer(&emulator::individual(&id))
        .await
        .expect("second upsert succeeds");
    let found = client
        .find_by_platform_id(&id)
        .await
        .expect("find succeeds");

    // Then the lookup matched it: one counterparty, found by its id
    assert_eq!(first.onec_id, second.onec_id);
    assert_eq!(emulator.count_for(&id), 1);
    assert_eq!(found.and_then(|cp| cp.onec_id), Some(first.onec_id));
    emulator.stop().await;
}
