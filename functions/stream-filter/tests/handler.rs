//! Handler tests: the sample events in `events/` through the real decision logic, with in-memory
//! queue and store fakes.

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::Event;
use chrono::{DateTime, Utc};
use shared::filter::{FilterPolicy, IgnoreReason, RemovePolicy};
use shared::message::{ExportMessage, ExportReason, Lane};
use shared::metrics::Metrics;
use shared::ports::{ExportQueue, PendingMarker, QueueError, StoreError, WriteOutcome};
use shared::testing::FakeCustomerStore;
use std::collections::BTreeSet;
use std::sync::Mutex;
use stream_filter::{handle, process, Deps, FilterError, FilterOutcome};

const INSERT: &str = include_str!("../../../events/dynamodb-insert.json");
const MODIFY_SIGNIFICANT: &str = include_str!("../../../events/dynamodb-modify-significant.json");
const MODIFY_BOOKKEEPING: &str = include_str!("../../../events/dynamodb-modify-bookkeeping.json");
const REMOVE: &str = include_str!("../../../events/dynamodb-remove.json");
const MALFORMED: &str = include_str!("../../../events/dynamodb-malformed.json");
const CREATED_IN_1C: &str = include_str!("../../../events/dynamodb-insert-created-in-1c.json");
const BATCH: &str = include_str!("../../../events/dynamodb-batch.json");

/// `ApproximateCreationDateTime` of every sample record.
const SAMPLE_TIME: i64 = 1_764_324_930;

fn event(json: &str) -> Event {
    serde_json::from_str(json).expect("sample events are valid stream events")
}

fn sample_time() -> DateTime<Utc> {
    DateTime::from_timestamp(SAMPLE_TIME, 0).expect("a valid timestamp")
}

fn policy() -> FilterPolicy {
    FilterPolicy::new(
        [
            "email",
            "phone",
            "first_name",
            "last_name",
            "company_name",
            "tax_id",
            "kpp",
        ],
        RemovePolicy::Deactivate,
    )
}

fn message(id: &str, reason: ExportReason, version: u64, onec_id: Option<&str>) -> ExportMessage {
    ExportMessage {
        customer_id: id.into(),
        reason,
        version,
        changed_at: sample_time(),
        onec_id: onec_id.map(str::to_owned),
    }
}

/// Records what it was asked to send; refuses messages for chosen customers, or whole calls.
#[derive(Default)]
struct FakeQueue {
    sent: Mutex<Vec<(Lane, ExportMessage)>>,
    calls: Mutex<Vec<(Lane, usize)>>,
    refused_customers: BTreeSet<String>,
    failing_lane: Option<Lane>,
}

impl FakeQueue {
    fn refusing(customer_id: &str) -> Self {
        Self {
            refused_customers: [customer_id.to_owned()].into(),
            ..Self::default()
        }
    }

    fn failing(lane: Lane) -> Self {
        Self {
            failing_lane: Some(lane),
            ..Self::default()
        }
    }

    fn sent(&self) -> Vec<(Lane, ExportMessage)> {
        self.sent.lock().unwrap().clone()
    }

    fn calls(&self) -> Vec<(Lane, usize)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl ExportQueue for FakeQueue {
    async fn enqueue(
        &self,
        lane: Lane,
        batch: &[ExportMessage],
    ) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        self.calls.lock().unwrap().push((lane, batch.len()));
        if self.failing_lane == Some(lane) {
            return Err(QueueError::Request {
                lane,
                class: shared::error::ErrorClass::Transient,
                source: "connection reset".into(),
            });
        }
        Ok(batch
            .iter()
            .map(|m| {
                if self.refused_customers.contains(&m.customer_id) {
                    Err(QueueError::Rejected {
                        lane,
                        code: "InternalError".into(),
                        sender_fault: false,
                        class: shared::error::ErrorClass::Transient,
                    })
                } else {
                    self.sent.lock().unwrap().push((lane, m.clone()));
                    Ok(())
                }
            })
            .collect())
    }
}

/// A marker whose write fails for one customer.
struct FailingMarker {
    failing_customer: String,
    marked: Mutex<Vec<String>>,
}

#[async_trait]
impl PendingMarker for FailingMarker {
    async fn mark_pending(&self, id: &str, _version: u64) -> Result<WriteOutcome, StoreError> {
        if id == self.failing_customer {
            return Err(StoreError::Request {
                operation: "UpdateItem(mark_pending)",
                table: "users".into(),
                class: shared::error::ErrorClass::Transient,
                source: "throttled".into(),
            });
        }
        self.marked.lock().unwrap().push(id.to_owned());
        Ok(WriteOutcome::Applied)
    }
}

fn deps<Q, M>(queue: Q, marker: M) -> Deps<Q, M> {
    Deps {
        queue,
        marker,
        policy: policy(),
        metrics: Metrics::new("OnecSyncTest", "stream-filter"),
    }
}

/// The rows of the sample registrations, so the flag write has something to flag.
fn store_with_rows(event: &Event) -> FakeCustomerStore {
    let store = FakeCustomerStore::new();
    for record in &event.records {
        if let Ok(customer) = serde_dynamo::from_item(record.change.new_image.clone()) {
            store.insert(&customer);
        }
    }
    store
}

#[tokio::test]
async fn a_registration_is_flagged_on_the_row_and_enqueued_on_the_priority_lane() {
    // Given the insert of a platform user whose row is not flagged
    let event = event(INSERT);
    let deps = deps(FakeQueue::default(), store_with_rows(&event));

    // When the filter handles it
    let response = handle(&deps, event).await.unwrap();

    // Then the row is flagged pending and the registration is on the priority queue
    assert!(response.batch_item_failures.is_empty());
    let row = deps.marker.customer("u-101").unwrap();
    assert!(row.needs_1c_export);
    assert_eq!(row.sync_status, Some(shared::domain::SyncStatus::Pending));
    assert_eq!(
        deps.queue.sent(),
        vec![(
            Lane::Priority,
            message("u-101", ExportReason::Registration, 1, None)
        )]
    );
}

#[tokio::test]
async fn a_significant_change_is_enqueued_on_the_bulk_lane() {
    let deps = deps(FakeQueue::default(), FakeCustomerStore::new());

    let outcome = process(&deps, &event(MODIFY_SIGNIFICANT)).await.unwrap();

    assert_eq!(outcome.checkpoint, None);
    assert_eq!(
        deps.queue.sent(),
        vec![(
            Lane::Bulk,
            message("u-102", ExportReason::ProfileChange, 5, None)
        )]
    );
    assert!(deps.marker.writes().is_empty());
}

#[tokio::test]
async fn a_bookkeeping_only_change_enqueues_nothing() {
    let deps = deps(FakeQueue::default(), FakeCustomerStore::new());

    let outcome = process(&deps, &event(MODIFY_BOOKKEEPING)).await.unwrap();

    assert!(deps.queue.calls().is_empty());
    assert_eq!(
        outcome.ignored,
        [(IgnoreReason::BookkeepingOnly, 1)].into_iter().collect()
    );
}

#[tokio::test]
async fn a_removed_user_is_deactivated_by_its_1c_reference() {
    let deps = deps(FakeQueue::default(), FakeCustomerStore::new());

    process(&deps, &event(REMOVE)).await.unwrap();

    assert_eq!(
        deps.queue.sent(),
        vec![(
            Lane::Bulk,
            message(
                "u-104",
                ExportReason::Deactivation,
                2,
                Some("3f2c9a1e-7b4d-4e8a-9c1f-000000000104")
            )
        )]
    );
}

#[tokio::test]
async fn a_user_created_in_1c_enqueues_nothing_and_is_not_flagged() {
    let event = event(CREATED_IN_1C);
    let deps = deps(FakeQueue::default(), store_with_rows(&event));

    let outcome = process(&deps, &event).await.unwrap();

    assert!(deps.queue.calls().is_empty());
    assert!(deps.marker.writes().is_empty());
    assert_eq!(
        outcome.ignored,
        [(IgnoreReason::CreatedIn1C, 1)].into_iter().collect()
    );
}

#[tokio::test]
async fn a_malformed_record_is_counted_and_skipped_without_stalling_the_shard() {
    // Given an unreadable record followed by a valid registration
    let event = event(MALFORMED);
    let deps = deps(FakeQueue::default(), store_with_rows(&event));

    // When the filter handles the batch
    let outcome = process(&deps, &event).await.unwrap();

    // Then the bad record is counted, not failed, and the next one is enqueued
    assert_eq!(outcome.checkpoint, None);
    assert_eq!(
        outcome.invalid,
        [("undecodable_image", 1)].into_iter().collect()
    );
    assert_eq!(
        deps.queue.sent(),
        vec![(
            Lane::Priority,
            message("u-106", ExportReason::Registration, 1, None)
        )]
    );
}

#[tokio::test]
async fn a_refused_third_record_becomes_the_checkpoint() {
    // Given a batch of five whose third message the queue refuses
    let event = event(BATCH);
    let deps = deps(FakeQueue::refusing("u-203"), store_with_rows(&event));

    // When the filter handles it
    let response = handle(&deps, event).await.unwrap();

    // Then Lambda is told to resume at the third record
    let identifiers: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(identifiers, vec![Some("100000000000000000203".to_owned())]);
    // and the records before it were enqueued (those after it were grouped with them and are
    // sent again on redelivery, which is harmless)
    assert_eq!(
        deps.queue.sent(),
        vec![
            (
                Lane::Priority,
                message("u-201", ExportReason::Registration, 1, None)
            ),
            (
                Lane::Priority,
                message("u-204", ExportReason::Registration, 1, None)
            ),
            (
                Lane::Bulk,
                message("u-202", ExportReason::ProfileChange, 4, None)
            ),
            (
                Lane::Bulk,
                message(
                    "u-205",
                    ExportReason::Deactivation,
                    2,
                    Some("3f2c9a1e-7b4d-4e8a-9c1f-000000000205")
                )
            ),
        ]
    );
    assert_eq!(
        deps.queue.calls(),
        vec![(Lane::Priority, 2), (Lane::Bulk, 3)]
    );
}

#[tokio::test]
async fn the_response_serialises_as_lambda_expects() {
    let event = event(BATCH);
    let deps = deps(FakeQueue::refusing("u-203"), store_with_rows(&event));

    let response = handle(&deps, event).await.unwrap();

    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "100000000000000000203"}]})
    );
}

#[tokio::test]
async fn a_failed_queue_call_checkpoints_at_the_earliest_record_of_that_lane() {
    // Given the bulk queue failing as a whole
    let deps = deps(FakeQueue::failing(Lane::Bulk), FakeCustomerStore::new());

    // When the batch is handled
    let outcome = process(&deps, &event(BATCH)).await.unwrap();

    // Then the checkpoint is the first bulk record (the second of the batch)
    assert_eq!(outcome.checkpoint.as_deref(), Some("100000000000000000202"));
    assert_eq!(
        outcome.enqueued,
        [("registration", 2)].into_iter().collect()
    );
}

#[tokio::test]
async fn a_failed_flag_write_settles_earlier_records_then_checkpoints_at_its_record() {
    // Given the flag write failing for the fourth record (the second registration)
    let marker = FailingMarker {
        failing_customer: "u-204".into(),
        marked: Mutex::new(Vec::new()),
    };
    let deps = deps(FakeQueue::default(), marker);

    // When the batch is handled
    let outcome = process(&deps, &event(BATCH)).await.unwrap();

    // Then records one to three were enqueued and the checkpoint is the fourth
    assert_eq!(outcome.checkpoint.as_deref(), Some("100000000000000000204"));
    let sent: Vec<String> = deps
        .queue
        .sent()
        .into_iter()
        .map(|(_, m)| m.customer_id)
        .collect();
    assert_eq!(sent, vec!["u-201", "u-202", "u-203"]);
    assert_eq!(*deps.marker.marked.lock().unwrap(), vec!["u-201"]);
}

#[tokio::test]
async fn a_failing_record_without_a_sequence_number_fails_the_whole_batch() {
    // Given a refused message whose record lacks a sequence number
    let mut event = event(MODIFY_SIGNIFICANT);
    event.records[0].change.sequence_number = None;
    let deps = deps(FakeQueue::refusing("u-102"), FakeCustomerStore::new());

    // When handled
    let result = process(&deps, &event).await;

    // Then the invocation fails instead of reporting an empty item identifier
    assert!(matches!(
        result,
        Err(FilterError::NoSequenceNumber { ref event_id, .. }) if event_id == "e000102"
    ));
}

#[tokio::test]
async fn messages_are_sent_in_groups_of_at_most_ten_per_lane() {
    // Given 23 registrations
    let template = event(INSERT).records.remove(0);
    let mut event = Event::default();
    for i in 0..23 {
        let mut record = template.clone();
        let id = format!("u-{i:03}");
        record
            .change
            .new_image
            .insert("id".into(), serde_dynamo::AttributeValue::S(id.clone()));
        record.change.sequence_number = Some(format!("{}", 500 + i));
        event.records.push(record);
    }
    let deps = deps(FakeQueue::default(), FakeCustomerStore::new());

    // When handled
    let outcome = process(&deps, &event).await.unwrap();

    // Then three calls carry all of them, in order
    assert_eq!(
        deps.queue.calls(),
        vec![
            (Lane::Priority, 10),
            (Lane::Priority, 10),
            (Lane::Priority, 3)
        ]
    );
    let ids: Vec<String> = deps
        .queue
        .sent()
        .into_iter()
        .map(|(_, m)| m.customer_id)
        .collect();
    assert_eq!(
        ids,
        (0..23).map(|i| format!("u-{i:03}")).collect::<Vec<_>>()
    );
    // and the rows, absent from the store, were not flagged (a newer write or a delete wins)
    assert_eq!(outcome.marks_stale, 23);
}

#[tokio::test]
async fn decisions_are_reported_as_filter_metrics() {
    // Given an outcome with every kind of decision
    let mut event = event(MALFORMED);
    event
        .records
        .extend(self::event(MODIFY_BOOKKEEPING).records);
    let deps = deps(FakeQueue::default(), FakeCustomerStore::new());
    let outcome: FilterOutcome = process(&deps, &event).await.unwrap();

    // When recorded and flushed
    outcome.record(&deps.metrics);
    let mut out = Vec::new();
    deps.metrics.flush(&mut out).unwrap();

    // Then the EMF lines carry the three filter metrics with their reasons
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let value = |metric: &str, reason: &str| {
        lines
            .iter()
            .find(|l| l["Reason"] == reason && l.get(metric).is_some())
            .map(|l| l[metric].clone())
    };
    assert_eq!(
        value("FilterEnqueued", "registration"),
        Some(serde_json::json!(1.0))
    );
    assert_eq!(
        value("FilterIgnored", "bookkeeping_only"),
        Some(serde_json::json!(1.0))
    );
    assert_eq!(
        value("FilterInvalid", "undecodable_image"),
        Some(serde_json::json!(1.0))
    );
}
