//! The exporter handler with batch calls to 1C (`ONEC_BATCH_SIZE` > 1), with in-memory ports:
//! per-message outcomes from per-customer results of one call.

use aws_lambda_events::event::sqs::SqsEvent;
use exporter::{handle, Deps, HandlerSettings};
use serde_json::json;
use shared::export::CustomerExportService;
use shared::mapping::CustomerDataMapper;
use shared::metrics::Metrics;
use shared::onec::{ChangePage, Counterparty, OneCClient, OneCError, UpsertOutcome};
use shared::ports::DeadLetterReason;
use shared::sync_log::SyncLogStatus;
use shared::testing::{
    FakeCustomerStore, FakeMessageControl, FakeOneCClient, FakeSyncLog, Scripted,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::{customer, failed_ids, settings};

const PRIORITY_ARN: &str = "arn:aws:sqs:eu-central-1:123456789012:onec-sync-export-priority";

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A 1C with a batch interface: records every batch call; a queued whole-request failure
/// answers the next batch; otherwise each item goes to the per-customer fake (and its script).
struct BatchingOneC {
    inner: Arc<FakeOneCClient>,
    batches: Mutex<Vec<Vec<String>>>,
    next_failure: Mutex<Option<OneCError>>,
}

impl BatchingOneC {
    fn batches(&self) -> Vec<Vec<String>> {
        self.batches.lock().expect("not poisoned").clone()
    }

    fn fail_next_batch(&self, err: OneCError) {
        *self.next_failure.lock().expect("not poisoned") = Some(err);
    }
}

// `OneCClient` is an `async_trait`; these are its methods written out.
impl OneCClient for BatchingOneC {
    fn upsert_customer<'a, 'b, 'r>(
        &'a self,
        cp: &'b Counterparty,
    ) -> Boxed<'r, Result<UpsertOutcome, OneCError>>
    where
        'a: 'r,
        'b: 'r,
    {
        self.inner.upsert_customer(cp)
    }

    fn upsert_customers<'a, 'b, 'r>(
        &'a self,
        items: &'b [Counterparty],
    ) -> Boxed<'r, Vec<Result<UpsertOutcome, OneCError>>>
    where
        'a: 'r,
        'b: 'r,
    {
        Box::pin(async move {
            self.batches
                .lock()
                .expect("not poisoned")
                .push(items.iter().map(|cp| cp.platform_id.clone()).collect());
            let failure = self.next_failure.lock().expect("not poisoned").take();
            if let Some(err) = failure {
                return err
                    .for_each_item(items.len())
                    .into_iter()
                    .map(Err)
                    .collect();
            }
            let mut results = Vec::new();
            for cp in items {
                results.push(self.inner.upsert_customer(cp).await);
            }
            results
        })
    }

    fn fetch_customer<'a, 'b, 'r>(
        &'a self,
        onec_id: &'b str,
    ) -> Boxed<'r, Result<Option<Counterparty>, OneCError>>
    where
        'a: 'r,
        'b: 'r,
    {
        self.inner.fetch_customer(onec_id)
    }

    fn find_by_platform_id<'a, 'b, 'r>(
        &'a self,
        platform_id: &'b str,
    ) -> Boxed<'r, Result<Option<Counterparty>, OneCError>>
    where
        'a: 'r,
        'b: 'r,
    {
        self.inner.find_by_platform_id(platform_id)
    }

    fn list_changed<'a, 'b, 'c, 'r>(
        &'a self,
        watermark: Option<&'b str>,
        cursor: Option<&'c str>,
        page_size: u32,
    ) -> Boxed<'r, Result<ChangePage, OneCError>>
    where
        'a: 'r,
        'b: 'r,
        'c: 'r,
    {
        self.inner.list_changed(watermark, cursor, page_size)
    }
}

struct World {
    store: Arc<FakeCustomerStore>,
    log: Arc<FakeSyncLog>,
    per_customer: Arc<FakeOneCClient>,
    onec: Arc<BatchingOneC>,
    control: Arc<FakeMessageControl>,
    deps: Deps,
}

fn world(batch_size: usize) -> World {
    let store = Arc::new(FakeCustomerStore::new());
    let log = Arc::new(FakeSyncLog::new());
    let per_customer = Arc::new(FakeOneCClient::new());
    let onec = Arc::new(BatchingOneC {
        inner: per_customer.clone(),
        batches: Mutex::new(Vec::new()),
        next_failure: Mutex::new(None),
    });
    let control = Arc::new(FakeMessageControl::new());
    let metrics = Arc::new(Metrics::new("OnecSync", "exporter"));
    let service = CustomerExportService::new(
        store.clone(),
        log.clone(),
        onec.clone(),
        CustomerDataMapper::default(),
        metrics.clone(),
        "json",
    )
    .with_batch_size(batch_size);
    let deps = Deps {
        service,
        control: control.clone(),
        metrics,
        settings: HandlerSettings {
            breaker_threshold: 100,
            ..settings(2)
        },
    };
    World {
        store,
        log,
        per_customer,
        onec,
        control,
        deps,
    }
}

/// One SQS record per (message id, customer id, version), delivered for the first time.
fn event(messages: &[(&str, &str, u64)]) -> SqsEvent {
    let records: Vec<_> = messages
        .iter()
        .map(|(message_id, customer_id, version)| {
            json!({
                "messageId": message_id,
                "receiptHandle": format!("r-{message_id}"),
                "body": json!({"customer_id": customer_id, "reason": "registration",
                               "version": version, "changed_at": "2026-11-28T10:15:30Z"})
                    .to_string(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": PRIORITY_ARN,
                "awsRegion": "eu-central-1"
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("a Lambda SQS event")
}

fn registrations(w: &World, n: usize) -> SqsEvent {
    let ids: Vec<(String, String)> = (1..=n)
        .map(|i| (format!("m-{i}"), format!("u-{i}")))
        .collect();
    for (_, customer_id) in &ids {
        w.store.insert(&customer(customer_id, 1));
    }
    let messages: Vec<(&str, &str, u64)> = ids
        .iter()
        .map(|(m, c)| (m.as_str(), c.as_str(), 1))
        .collect();
    event(&messages)
}

#[tokio::test]
async fn the_messages_of_an_invocation_reach_1c_in_batches_of_the_configured_size() {
    // Given seven registrations and a batch size of three
    let w = world(3);
    let batch = registrations(&w, 7);

    // When the invocation is handled
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then 1C got three batch calls covering every customer once, and every row is synced
    assert!(failed_ids(&response).is_empty());
    let mut sizes: Vec<usize> = w.onec.batches().iter().map(Vec::len).collect();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![1, 3, 3]);
    for i in 1..=7 {
        let id = format!("u-{i}");
        let row = w.store.row(&id).expect("row");
        let cp = w.per_customer.counterparty(&id).expect("in 1C");
        assert_eq!(row["onec_id"], json!(cp.onec_id));
        assert_eq!(row["sync_status"], json!("synced"));
    }
}

#[tokio::test]
async fn one_customer_1c_rejects_in_a_batch_is_dead_lettered_alone() {
    // Given three registrations in one batch, the second of which 1C will refuse
    let w = world(10);
    let batch = registrations(&w, 3);
    w.per_customer.script([
        Scripted::Pass,
        Scripted::Fail(OneCError::Rejected {
            status: 500,
            code: Some("business".into()),
            message: "ИНН уже используется".into(),
        }),
        Scripted::Pass,
    ]);

    // When the invocation is handled
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then one call carried all three; only the refused message went to the DLQ
    assert_eq!(w.onec.batches().len(), 1);
    assert!(failed_ids(&response).is_empty(), "nothing to redeliver");
    let letters = w.control.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].original_message_id, "m-2");
    assert_eq!(letters[0].reason, DeadLetterReason::PermanentFailure);
    assert_eq!(
        w.store.row("u-2").expect("row")["sync_status"],
        json!("error")
    );
    // And the others are synced
    assert_eq!(
        w.store.row("u-1").expect("row")["sync_status"],
        json!("synced")
    );
    assert_eq!(
        w.store.row("u-3").expect("row")["sync_status"],
        json!("synced")
    );
}

#[tokio::test]
async fn a_customer_whose_data_cannot_be_mapped_fails_alone_and_is_not_sent() {
    // Given three registrations, the second with an INN that fails its checksum
    let w = world(10);
    let batch = registrations(&w, 3);
    let mut bad = customer("u-2", 1);
    bad.tax_id = Some("1234567895".into());
    w.store.insert(&bad);

    // When the invocation is handled
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then the batch carried only the valid customers and the invalid one was dead-lettered
    assert!(failed_ids(&response).is_empty());
    assert_eq!(
        w.onec.batches(),
        vec![vec!["u-1".to_owned(), "u-3".to_owned()]]
    );
    let letters = w.control.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].original_message_id, "m-2");
    assert_eq!(letters[0].error_kind, "validation");
}

#[tokio::test]
async fn a_whole_batch_503_backs_off_every_message_of_the_batch() {
    // Given four registrations and 1C answering the batch call with 503
    let w = world(10);
    let batch = registrations(&w, 4);
    w.onec.fail_next_batch(OneCError::Unavailable {
        status: 503,
        retry_after: Some(Duration::from_secs(120)),
        detail: None,
    });

    // When the invocation is handled
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then every message is reported for redelivery, hidden for at least 1C's Retry-After
    assert_eq!(failed_ids(&response), vec!["m-1", "m-2", "m-3", "m-4"]);
    let delays = w.control.delays();
    assert_eq!(delays.len(), 4);
    assert!(delays.iter().all(|d| d.delay >= Duration::from_secs(120)));
    assert!(w.control.dead_letters().is_empty());
    // And each attempt is in the sync log, none on the users rows (the rows get the outcome)
    assert!(w.store.writes().is_empty());
    for i in 1..=4 {
        let entries = w.log.entries_for(&format!("u-{i}"));
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].status, SyncLogStatus::Retrying);
    }
    assert!(w.per_customer.counterparties().is_empty());
}

#[tokio::test]
async fn a_batch_waiting_for_the_1c_session_when_the_breaker_opens_is_not_sent() {
    // Given batches of two, one 1C session, a breaker that opens on the first transient
    // failure, and a slow 1C failing both customers of the first batch
    let mut w = world(2);
    w.deps.settings.concurrency = 1;
    w.deps.settings.breaker_threshold = 1;
    w.per_customer.set_latency(Duration::from_millis(20));
    let unavailable = || OneCError::Unavailable {
        status: 503,
        retry_after: None,
        detail: None,
    };
    w.per_customer
        .script([Scripted::Fail(unavailable()), Scripted::Fail(unavailable())]);
    let batch = registrations(&w, 4);

    // When handled: the second batch is mapped and waits for the session the first one holds
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then only the first batch reached 1C, and all four messages back off
    assert_eq!(w.onec.batches(), vec![vec!["u-1", "u-2"]]);
    assert_eq!(w.per_customer.call_count(), 2);
    assert_eq!(failed_ids(&response), vec!["m-1", "m-2", "m-3", "m-4"]);
    // And the second batch's customers say why they were not sent
    for id in ["u-3", "u-4"] {
        let entries = w.log.entries_for(id);
        assert_eq!(entries.len(), 1, "{id}");
        assert_eq!(entries[0].status, SyncLogStatus::Retrying);
        assert_eq!(
            entries[0].details.error_kind.as_deref(),
            Some("circuit_open")
        );
    }
}

#[tokio::test]
async fn duplicate_messages_for_one_customer_in_an_invocation_become_one_batch_item() {
    // Given two deliveries of one change, a newer change of the same customer, and another
    let w = world(10);
    w.store.insert(&customer("u-1", 2));
    w.store.insert(&customer("u-2", 1));
    let batch = event(&[
        ("m-1", "u-1", 1),
        ("m-1b", "u-1", 1),
        ("m-2", "u-2", 1),
        ("m-3", "u-1", 2),
    ]);

    // When the invocation is handled
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then 1C saw each customer once, and every message is done
    assert!(failed_ids(&response).is_empty());
    assert_eq!(
        w.onec.batches(),
        vec![vec!["u-1".to_owned(), "u-2".to_owned()]]
    );
    assert_eq!(w.per_customer.counterparties().len(), 2);
    let row = w.store.row("u-1").expect("row");
    assert_eq!(row["synced_version"], json!(2));
    // And one success per customer is logged, not one per delivery
    let logged = w
        .log
        .entries_for("u-1")
        .into_iter()
        .filter(|e| format!("{:?}", e.status).contains("Success"))
        .count();
    assert_eq!(logged, 1);
}

#[tokio::test]
async fn a_batch_size_of_one_keeps_one_call_per_customer() {
    // Given three registrations and batching off
    let w = world(1);
    let batch = registrations(&w, 3);

    // When the invocation is handled
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then no batch call was made and every customer went through the single-customer path
    assert!(failed_ids(&response).is_empty());
    assert!(w.onec.batches().is_empty());
    assert_eq!(w.per_customer.upsert_requests().len(), 3);
}
