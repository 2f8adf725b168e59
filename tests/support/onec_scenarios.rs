//! Client scenarios every 1C transport must pass against the emulator; each `onec_<transport>`
//! test file runs them for its transport.

use crate::emulator::{
    counts_by_onec_id, individual, legal_entity, platform_id, respond, Emulator, SHORT_TIMEOUT,
};
use onec_emulator::{
    CounterpartyFields, CounterpartyKind as EmuKind, CounterpartyPatch, FaultPlan, ScriptedAnswer,
};
use shared::error::{Classify, ErrorClass};
use shared::onec::{Counterparty, OneCClient, OneCError, Transport, UpsertOutcome};
use std::collections::BTreeMap;

/// What a transport can carry: OData has no first/last name properties; CommerceML's
/// `Контрагент` type has no place for extra attributes or the deletion mark.
pub fn as_carried_by(transport: Transport, cp: &Counterparty) -> Counterparty {
    let mut cp = cp.clone();
    cp.onec_id = None;
    cp.data_version = None;
    match transport {
        Transport::Json => {}
        Transport::OData => {
            cp.first_name = None;
            cp.last_name = None;
        }
        Transport::CommerceMl => {
            cp.extra.clear();
            cp.deletion_mark = false;
        }
    }
    cp
}

/// The sample individual with an extra attribute, for the transports that carry extras.
pub fn individual_with_extra(platform_id: &str) -> Counterparty {
    let mut cp = individual(platform_id);
    cp.extra = BTreeMap::from([("Город".to_owned(), "Казань".to_owned())]);
    cp
}

pub fn assert_error(
    result: Result<impl std::fmt::Debug, OneCError>,
    kind: &str,
    class: ErrorClass,
) -> OneCError {
    match result {
        Ok(value) => panic!("expected a {kind} error, got Ok({value:?})"),
        Err(error) => {
            assert_eq!(error.kind(), kind, "{error:?}");
            assert_eq!(error.class(), class, "{error:?}");
            error
        }
    }
}

async fn upsert(client: &dyn OneCClient, cp: &Counterparty) -> UpsertOutcome {
    client
        .upsert_customer(cp)
        .await
        .unwrap_or_else(|e| panic!("upsert failed: {e:?}"))
}

/// Create, then update with the same platform id: one counterparty, a new version.
pub async fn an_update_with_the_same_platform_id_keeps_one_counterparty(transport: Transport) {
    // Given an emulator and a new customer
    let emulator = Emulator::start().await;
    let client = emulator.client(transport);
    let id = platform_id();
    let mut cp = individual_with_extra(&id);

    // When it is exported, changed and exported again
    let created = upsert(client.as_ref(), &cp).await;
    cp.role = Some("Опт".into());
    cp.email = Some("new@example.ru".into());
    let updated = upsert(client.as_ref(), &cp).await;

    // Then the second export updated the first counterparty
    assert!(created.created);
    assert!(!updated.created);
    assert_eq!(updated.onec_id, created.onec_id);
    assert_ne!(updated.data_version, created.data_version);
    assert_eq!(emulator.count_for(&id), 1);
    let fetched = client
        .fetch_customer(&created.onec_id)
        .await
        .expect("fetch succeeds")
        .expect("the counterparty exists");
    assert_eq!(fetched.role.as_deref(), Some("Опт"));
    assert_eq!(fetched.email.as_deref(), Some("new@example.ru"));
    assert_eq!(
        fetched.data_version.as_deref(),
        Some(updated.data_version.as_str())
    );
    emulator.stop().await;
}

/// A deactivation's upsert (the deletion mark set) marks the counterparty in 1C, and a read
/// shows the mark: the exporter's deactivation path on every transport.
pub async fn an_upsert_with_the_deletion_mark_marks_the_counterparty(transport: Transport) {
    // Given an exported customer
    let emulator = Emulator::start().await;
    let client = emulator.client(transport);
    let mut cp = individual(&platform_id());
    let created = upsert(client.as_ref(), &cp).await;
    assert!(
        !emulator
            .handle
            .counterparty(&created.onec_id)
            .expect("in 1C")
            .fields
            .deletion_mark
    );

    // When it is sent again with the deletion mark, as a deactivation does
    cp.deletion_mark = true;
    let marked = upsert(client.as_ref(), &cp).await;

    // Then 1C holds the same counterparty, marked for deletion, and says so when read
    assert_eq!(marked.onec_id, created.onec_id);
    let record = emulator
        .handle
        .counterparty(&created.onec_id)
        .expect("still in 1C: marked, never deleted");
    assert!(record.fields.deletion_mark);
    let fetched = client
        .fetch_customer(&created.onec_id)
        .await
        .expect("fetch succeeds")
        .expect("the counterparty exists");
    assert!(fetched.deletion_mark);
    emulator.stop().await;
}

/// Fetch by reference and find by platform id give back what was written.
pub async fn what_was_written_reads_back_by_reference_and_by_platform_id(transport: Transport) {
    // Given an individual and a legal entity exported to 1C
    let emulator = Emulator::start().await;
    let client = emulator.client(transport);
    let person = individual_with_extra(&platform_id());
    let company = legal_entity(&platform_id());
    let person_out = upsert(client.as_ref(), &person).await;
    let company_out = upsert(client.as_ref(), &company).await;

    for (cp, out) in [(&person, &person_out), (&company, &company_out)] {
        // When it is fetched by reference and found by platform id
        let fetched = client
            .fetch_customer(&out.onec_id)
            .await
            .expect("fetch succeeds")
            .expect("the counterparty exists");
        let found = client
            .find_by_platform_id(&cp.platform_id)
            .await
            .expect("find succeeds")
            .expect("the counterparty is found");

        // Then both equal what was sent, as far as the transport carries it
        for read in [&fetched, &found] {
            assert_eq!(read.onec_id.as_deref(), Some(out.onec_id.as_str()));
            assert_eq!(
                read.data_version.as_deref(),
                Some(out.data_version.as_str())
            );
            assert_eq!(as_carried_by(transport, read), as_carried_by(transport, cp));
        }
    }
    emulator.stop().await;
}

/// Unknown references and platform ids are `None`, not errors.
pub async fn unknown_ids_are_reported_as_absent(transport: Transport) {
    let emulator = Emulator::start().await;
    let client = emulator.client(transport);

    let by_ref = client
        .fetch_customer(&uuid::Uuid::new_v4().to_string())
        .await
        .expect("a missing counterparty is not an error");
    let by_platform_id = client
        .find_by_platform_id(&platform_id())
        .await
        .expect("a missing platform id is not an error");

    assert_eq!(by_ref, None);
    assert_eq!(by_platform_id, None);
    emulator.stop().await;
}

/// Every page of `list_changed` until `next_cursor` is `None`; the last page's watermark.
pub async fn list_all(
    client: &dyn OneCClient,
    watermark: Option<&str>,
    page_size: u32,
) -> (Vec<Counterparty>, Option<String>, usize) {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_changed(watermark, cursor.as_deref(), page_size)
            .await
            .unwrap_or_else(|e| panic!("list_changed failed: {e:?}"));
        pages += 1;
        assert!(page.items.len() <= page_size as usize, "page too large");
        items.extend(page.items);
        assert!(pages < 100, "paging does not end");
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return (items, page.watermark, pages),
        }
    }
}

/// Changes made in 1C are listed, each once, in change order; the watermark resumes after them.
pub async fn changes_made_in_1c_are_listed_once_in_order(transport: Transport) {
    // Given five exported customers, two of them edited in 1C, and one entered in 1C by hand
    let emulator = Emulator::start().await;
    let client = emulator.client(transport);
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.push(upsert(client.as_ref(), &individual(&platform_id())).await);
    }
    for out in [&outcomes[1], &outcomes[3]] {
        emulator
            .handle
            .edit_in_1c(
                &out.onec_id,
                CounterpartyPatch {
                    role: Some(Some("Дилер".into())),
                    ..CounterpartyPatch::default()
                },
            )
            .expect("the edit in 1C succeeds");
    }
    emulator
        .handle
        .create_in_1c(CounterpartyFields::new(EmuKind::LegalEntity, "Лютик"))
        .expect("the entry in 1C succeeds");

    // When every change is listed with a page size smaller than their number
    let (items, watermark, pages) = list_all(client.as_ref(), None, 2).await;

    // Then each counterparty appears exactly once, in the order 1C changed them
    let mut records = emulator.handle.counterparties();
    match transport {
        Transport::OData => {
            records.sort_by(|a, b| (a.modified_at, &a.onec_id).cmp(&(b.modified_at, &b.onec_id)))
        }
        Transport::Json | Transport::CommerceMl => records.sort_by_key(|r| r.change_seq),
    }
    let expected: Vec<&str> = records.iter().map(|r| r.onec_id.as_str()).collect();
    let listed: Vec<&str> = items
        .iter()
        .map(|cp| cp.onec_id.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(listed, expected);
    assert!(counts_by_onec_id(&items).values().all(|n| *n == 1));
    assert!(pages >= 3, "6 changes in pages of 2 take at least 3 pages");
    let edited = items
        .iter()
        .filter(|cp| cp.role.as_deref() == Some("Дилер"))
        .count();
    assert_eq!(edited, 2);
    let by_hand = items
        .iter()
        .find(|cp| cp.name == "Лютик")
        .expect("the counterparty entered in 1C is listed");
    assert_eq!(by_hand.platform_id, "");
    let watermark = watermark.expect("a listing that saw changes has a watermark");

    // And when one more is edited in 1C, listing from the watermark returns it
    emulator
        .handle
        .edit_in_1c(
            &outcomes[0].onec_id,
            CounterpartyPatch {
                status: Some(Some("Заблокирован".into())),
                ..CounterpartyPatch::default()
            },
        )
        .expect("the edit in 1C succeeds");
    let (since, _, _) = list_all(client.as_ref(), Some(&watermark), 2).await;
    let changed: Vec<&Counterparty> = since
        .iter()
        .filter(|cp| cp.onec_id.as_deref() == Some(outcomes[0].onec_id.as_str()))
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].status.as_deref(), Some("Заблокирован"));
    match transport {
        // A sequence number resumes exactly after the last change.
        Transport::Json | Transport::CommerceMl => assert_eq!(since.len(), 1),
        // A modification date re-reads its boundary second (`ge`): exactly the counterparties
        // modified at or after the watermark.
        Transport::OData => {
            let mut expected: Vec<String> = emulator
                .handle
                .counterparties()
                .into_iter()
                .filter(|r| r.modified_at.to_string().replace(' ', "T") >= watermark)
                .map(|r| r.onec_id)
                .collect();
            let mut listed: Vec<String> =
                since.iter().filter_map(|cp| cp.onec_id.clone()).collect();
            expected.sort();
            listed.sort();
            assert_eq!(listed, expected);
        }
    }
    emulator.stop().await;
}

/// Answers to script before a write so the write itself is the next request: OData looks the
/// platform id up first, and for a new id the true answer is an empty list.
fn before_the_write(transport: Transport) -> Vec<ScriptedAnswer> {
    match transport {
        Transport::OData => vec![respond(200, "application/json", r#"{"value":[]}"#)],
        Transport::Json | Transport::CommerceMl => Vec::new(),
    }
}

/// 1C commits the create, but the answer is lost (a gateway 502): the retry finds the
/// counterparty instead of creating a second one.
pub async fn a_lost_response_followed_by_a_retry_creates_no_duplicate(transport: Transport) {
    // Given 1C that will commit the next write and answer it with a gateway error page
    let emulator = Emulator::start().await;
    let client = emulator.client(transport);
    let cp = legal_entity(&platform_id());
    let mut script = before_the_write(transport);
    script.push(ScriptedAnswer::CommitThenStatus {
        commit_then_status: 502,
    });
    emulator.script(script);

    // When the export fails transiently and is retried
    let first = client.upsert_customer(&cp).await;
    assert_error(first, "html_page", ErrorClass::Transient);
    assert_eq!(
        emulator.count_for(&cp.platform_id),
        1,
        "the write was committed"
    );
    let retry = upsert(client.as_ref(), &cp).await;

    // Then the retry updated the committed counterparty: still exactly one
    assert!(!retry.created);
    assert_eq!(emulator.count_for(&cp.platform_id), 1);
    assert_eq!(emulator.handle.counterparties().len(), 1);
    emulator.stop().await;
}

/// 1C commits the create, then hangs past the client's timeout: the retry creates no duplicate.
pub async fn a_timed_out_write_that_1c_committed_is_not_duplicated_by_the_retry(
    transport: Transport,
) {
    // Given 1C that commits every write and then hangs longer than the client waits
    let emulator = Emulator::start().await;
    let client = emulator.client_with(transport, |c| c.request_timeout = SHORT_TIMEOUT);
    let cp = individual(&platform_id());
    emulator.script(before_the_write(transport));
    emulator.handle.set_faults(FaultPlan {
        lost_response_rate: 1.0,
        hang_ms: 5_000,
        ..FaultPlan::default()
    });

    // When the export times out, 1C recovers and the export is retried
    let first = client.upsert_customer(&cp).await;
    assert_error(first, "timeout", ErrorClass::Transient);
    assert_eq!(
        emulator.count_for(&cp.platform_id),
        1,
        "the write was committed"
    );
    emulator.handle.set_faults(FaultPlan::default());
    let retry = upsert(client.as_ref(), &cp).await;

    // Then there is still exactly one counterparty for the platform id
    assert!(!retry.created);
    assert_eq!(emulator.count_for(&cp.platform_id), 1);
    emulator.stop().await;
}

/// The scenarios above as `#[tokio::test]`s of the calling module, for one transport: each
/// transport's suite runs every one of them under its own name.
#[macro_export]
macro_rules! every_transport_scenario {
    ($transport:expr) => {
        #[tokio::test]
        async fn an_update_with_the_same_platform_id_keeps_one_counterparty() {
            $crate::onec_scenarios::an_update_with_the_same_platform_id_keeps_one_counterparty($transport).await;
        }
        #[tokio::test]
        async fn what_was_written_reads_back_by_reference_and_by_platform_id() {
            $crate::onec_scenarios::what_was_written_reads_back_by_reference_and_by_platform_id($transport).await;
        }
        #[tokio::test]
        async fn an_upsert_with_the_deletion_mark_marks_the_counterparty() {
            $crate::onec_scenarios::an_upsert_with_the_deletion_mark_marks_the_counterparty($transport).await;
        }
        #[tokio::test]
        async fn unknown_ids_are_reported_as_absent() {
            $crate::onec_scenarios::unknown_ids_are_reported_as_absent($transport).await;
        }
        #[tokio::test]
        async fn changes_made_in_1c_are_listed_once_in_order() {
            $crate::onec_scenarios::changes_made_in_1c_are_listed_once_in_order($transport).await;
        }
        #[tokio::test]
        async fn a_lost_response_followed_by_a_retry_creates_no_duplicate() {
            $crate::onec_scenarios::a_lost_response_followed_by_a_retry_creates_no_duplicate($transport).await;
        }
        #[tokio::test]
        async fn a_timed_out_write_that_1c_committed_is_not_duplicated_by_the_retry() {
            $crate::onec_scenarios::a_timed_out_write_that_1c_committed_is_not_duplicated_by_the_retry($transport).await;
        }
    };
}
