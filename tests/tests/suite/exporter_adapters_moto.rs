//! The exporter's DynamoDB and SQS adapters against moto: the conditions that make write-backs
//! safe under duplicates and reordering, the sync log's keys and expiry, and message control.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use integration_tests::moto_stack::{get_row, put_row, MotoStack};
use local_stack::spec::StackOutputs;
use local_stack::MotoServer;
use serde_json::{json, Value};
use shared::adapters::dynamodb::{DynamoDbCustomerStore, DynamoDbSyncLog};
use shared::adapters::sqs::SqsMessageControl;
use shared::domain::SyncStatus;
use shared::error::{Classify, ErrorClass};
use shared::message::Lane;
use shared::ports::{
    CustomerStore, DeadLetter, DeadLetterReason, ExportFailure, ExportSuccess, FailureStatus,
    MessageControl, StoreError, SyncLog, WriteOutcome,
};
use shared::sync_log::{CustomerSyncLog, SyncDetails, SyncLogStatus, SyncOperation};
use std::time::Duration;

struct Rig {
    _moto: MotoServer,
    stack: StackOutputs,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    store: DynamoDbCustomerStore,
}

async fn rig() -> Rig {
    let MotoStack {
        stack,
        dynamodb,
        sqs,
        moto,
        ..
    } = MotoStack::start("adapters").await;
    Rig {
        store: DynamoDbCustomerStore::new(dynamodb.clone(), stack.users_table.clone()),
        sqs,
        dynamodb,
        stack,
        _moto: moto,
    }
}

impl Rig {
    async fn put(&self, row: Value) {
        put_row(&self.dynamodb, &self.stack.users_table, row).await;
    }

    async fn row(&self, id: &str) -> Value {
        get_row(&self.dynamodb, &self.stack.users_table, id).await
    }
}

fn success(exported_version: u64, onec_version: &str) -> ExportSuccess {
    ExportSuccess {
        onec_id: "1fa1a135-d89b-11e6-8343-40167e2531c3".into(),
        onec_version: onec_version.into(),
        exported_version,
        at: Utc::now(),
    }
}

#[tokio::test]
async fn an_older_export_never_overwrites_a_newer_one() {
    // Given a row 1C holds at version 3
    let rig = rig().await;
    rig.put(json!({"id": "u-1", "version": 3, "first_name": "Анна"}))
        .await;
    let first = rig
        .store
        .record_export_success("u-1", &success(3, "v3"))
        .await
        .expect("write");

    // When a late export of version 2 and a duplicate of version 3 are recorded
    let older = rig
        .store
        .record_export_success("u-1", &success(2, "v2"))
        .await
        .expect("write");
    let duplicate = rig
        .store
        .record_export_success("u-1", &success(3, "v3-again"))
        .await
        .expect("write");

    // Then only the first applied and the row still records version 3
    assert_eq!(first, WriteOutcome::Applied);
    assert_eq!(older, WriteOutcome::Stale);
    assert_eq!(duplicate, WriteOutcome::Stale);
    let row = rig.row("u-1").await;
    assert_eq!(row["synced_version"], json!(3));
    assert_eq!(row["onec_version"], json!("v3"));
    assert_eq!(row["first_name"], json!("Анна"));
}

#[tokio::test]
async fn an_export_of_a_version_the_row_has_moved_past_leaves_the_row_out_of_sync() {
    // Given a row edited to version 5 while version 4 was being exported, and version 5's own
    // export already refused (an invalid INN)
    let rig = rig().await;
    rig.put(json!({"id": "u-2", "version": 5, "sync_status": "error",
                   "sync_error_message": "inn: invalid checksum", "needs_1c_export": true}))
        .await;

    // When the export of version 4 is recorded
    let outcome = rig
        .store
        .record_export_success("u-2", &success(4, "v4"))
        .await
        .expect("write");
    assert_eq!(outcome, WriteOutcome::Stale);

    // Then the 1C reference is kept but the row is not in sync, so version 5 exports again
    let customer = rig.store.get("u-2").await.expect("read").expect("row");
    assert_eq!(
        customer.onec_id.as_deref(),
        Some("1fa1a135-d89b-11e6-8343-40167e2531c3")
    );
    assert_eq!(customer.synced_version, Some(4));
    assert!(!customer.is_in_sync());
    // And the row still shows version 5's error, not "synced"
    assert_eq!(customer.sync_status, Some(SyncStatus::Error));
    assert_eq!(
        customer.sync_error_message.as_deref(),
        Some("inn: invalid checksum")
    );
}

#[tokio::test]
async fn a_failure_is_not_recorded_over_a_row_already_synced_at_that_version() {
    let rig = rig().await;
    rig.put(json!({"id": "u-3", "version": 1, "synced_version": 1, "sync_status": "synced"}))
        .await;

    let outcome = rig
        .store
        .record_export_failure(
            "u-3",
            &ExportFailure {
                status: FailureStatus::Retrying,
                message: "1C is unavailable (HTTP 503)".into(),
                attempts: 2,
                version: 1,
                at: Utc::now(),
            },
        )
        .await
        .expect("write");

    assert_eq!(outcome, WriteOutcome::Stale);
    assert_eq!(rig.row("u-3").await["sync_status"], json!("synced"));
}

#[tokio::test]
async fn writes_to_a_missing_row_are_stale_and_do_not_create_it() {
    let rig = rig().await;

    let outcome = rig
        .store
        .record_export_success("gone", &success(1, "v1"))
        .await
        .expect("write");

    assert_eq!(outcome, WriteOutcome::Stale);
    assert!(rig.store.get("gone").await.expect("read").is_none());
}

#[tokio::test]
async fn a_permanent_failure_records_its_version_and_is_written_once_per_version() {
    // Given a row whose version 1 was refused
    let rig = rig().await;
    rig.put(json!({"id": "u-8", "version": 2})).await;
    let refused = |version: u64| ExportFailure {
        status: FailureStatus::Error,
        message: "the INN has a wrong checksum".into(),
        attempts: 1,
        version,
        at: Utc::now(),
    };
    let first = rig
        .store
        .record_export_failure("u-8", &refused(1))
        .await
        .expect("write");
    // When the same refusal comes again for version 1, then for version 2
    let again = rig
        .store
        .record_export_failure("u-8", &refused(1))
        .await
        .expect("write");
    let next = rig
        .store
        .record_export_failure("u-8", &refused(2))
        .await
        .expect("write");
    // Then the repeat writes nothing, and the row says which version failed
    assert_eq!(
        [first, again, next],
        [
            WriteOutcome::Applied,
            WriteOutcome::Stale,
            WriteOutcome::Applied
        ]
    );
    assert_eq!(rig.row("u-8").await["failed_version"], json!(2));
}

#[tokio::test]
async fn a_reopened_row_needs_an_export_again_unless_it_changed_since() {
    // Given a row recorded as synced at version 5, and one that moved on to version 6
    let rig = rig().await;
    rig.put(
        json!({"id": "u-9", "version": 5, "synced_version": 5, "sync_status": "synced",
                   "needs_1c_export": false}),
    )
    .await;
    rig.put(json!({"id": "u-10", "version": 6, "synced_version": 5}))
        .await;

    // When 1C turns out to hold version 4's data for both
    let reopened = rig.store.reopen_export("u-9", 5, 4).await.expect("write");
    let moved_on = rig.store.reopen_export("u-10", 5, 4).await.expect("write");

    // Then the first is out of sync and flagged; the second, whose newer change exports
    // anyway, is left alone
    assert_eq!(
        (reopened, moved_on),
        (WriteOutcome::Applied, WriteOutcome::Stale)
    );
    let row = rig.row("u-9").await;
    assert_eq!(row["synced_version"], json!(4));
    assert_eq!(row["needs_1c_export"], json!(true));
    assert_eq!(row["sync_status"], json!("pending"));
    assert_eq!(rig.row("u-10").await["synced_version"], json!(5));
}

#[tokio::test]
async fn mark_pending_applies_only_at_the_expected_version() {
    let rig = rig().await;
    rig.put(json!({"id": "u-4", "version": 2, "needs_1c_export": false}))
        .await;

    let stale = rig.store.mark_pending("u-4", 1).await.expect("write");
    let applied = rig.store.mark_pending("u-4", 2).await.expect("write");

    assert_eq!(
        (stale, applied),
        (WriteOutcome::Stale, WriteOutcome::Applied)
    );
    let row = rig.row("u-4").await;
    assert_eq!(row["needs_1c_export"], json!(true));
    assert_eq!(row["sync_status"], json!("pending"));
}

#[tokio::test]
async fn the_filters_flag_never_overwrites_an_outcome_the_exporter_already_recorded() {
    // Given a registration the exporter failed permanently, one it synced, and one already
    // flagged, all before the filter got to their stream records
    let rig = rig().await;
    rig.put(json!({"id": "u-5", "version": 1})).await;
    rig.store
        .record_export_failure(
            "u-5",
            &ExportFailure {
                status: FailureStatus::Error,
                message: "the INN has a wrong checksum".into(),
                attempts: 1,
                version: 1,
                at: Utc::now(),
            },
        )
        .await
        .expect("write");
    rig.put(json!({"id": "u-6", "version": 1})).await;
    rig.store
        .record_export_success("u-6", &success(1, "v1"))
        .await
        .expect("write");
    rig.put(json!({"id": "u-7", "version": 1, "needs_1c_export": true, "sync_status": "pending"}))
        .await;

    // When the filter flags them
    let outcomes = [
        rig.store.mark_pending("u-5", 1).await.expect("write"),
        rig.store.mark_pending("u-6", 1).await.expect("write"),
        rig.store.mark_pending("u-7", 1).await.expect("write"),
    ];

    // Then nothing is written: the outcomes stand and a flagged row is not written again
    assert_eq!(outcomes, [WriteOutcome::Stale; 3]);
    assert_eq!(rig.row("u-5").await["sync_status"], json!("error"));
    assert_eq!(rig.row("u-6").await["sync_status"], json!("synced"));
    assert_eq!(rig.row("u-6").await["needs_1c_export"], json!(false));
}

#[tokio::test]
async fn an_unreadable_row_is_a_permanent_error_not_a_panic() {
    // Given a row whose version is not a number
    let rig = rig().await;
    rig.put(json!({"id": "u-5", "version": "seven"})).await;

    // When it is read
    let err = rig.store.get("u-5").await.expect_err("undecodable");

    // Then the error is permanent and does not quote the value
    assert!(matches!(err, StoreError::Undecodable { .. }));
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert!(!err.to_string().contains("seven"));
}

#[tokio::test]
async fn sync_log_entries_are_keyed_by_customer_and_time_and_expire_after_the_retention() {
    // Given two entries for one customer in the same instant
    let rig = rig().await;
    let log = DynamoDbSyncLog::new(rig.dynamodb.clone(), rig.stack.sync_log_table.clone(), 30);
    let at = Utc::now();
    for status in [SyncLogStatus::Retrying, SyncLogStatus::Success] {
        log.append(
            CustomerSyncLog::new("u-6", SyncOperation::ExportTo1c, status, at).with_details(
                SyncDetails {
                    attempt: Some(1),
                    transport: Some("json".into()),
                    ..SyncDetails::default()
                },
            ),
        )
        .await
        .expect("append");
    }

    // When the customer's entries are queried
    let items = rig
        .dynamodb
        .query()
        .table_name(&rig.stack.sync_log_table)
        .key_condition_expression("customer_id = :id")
        .expression_attribute_values(":id", AttributeValue::S("u-6".into()))
        .send()
        .await
        .expect("Query")
        .items
        .unwrap_or_default();

    // Then both are there (the uuid in the sort key keeps them apart), expiring in 30 days
    assert_eq!(items.len(), 2);
    for item in &items {
        let entry: Value = serde_dynamo::from_item(item.clone()).expect("entry reads");
        assert!(entry["sk"]
            .as_str()
            .is_some_and(|sk| sk.starts_with(&at.format("%Y-%m-%dT%H:%M:%S").to_string())));
        assert_eq!(entry["operation_type"], json!("export_to_1c"));
        assert_eq!(entry["details"]["transport"], json!("json"));
        assert_eq!(
            entry["expires_at"],
            json!(at.timestamp() + 30 * 24 * 60 * 60)
        );
    }
}

#[tokio::test]
async fn message_control_backs_off_by_lane_and_dead_letters_with_attributes() {
    // Given a message received from the priority queue
    let rig = rig().await;
    let control = SqsMessageControl::new(
        rig.sqs.clone(),
        rig.stack.priority_queue_url.clone(),
        rig.stack.bulk_queue_url.clone(),
        rig.stack.dlq_url.clone(),
    );
    rig.sqs
        .send_message()
        .queue_url(&rig.stack.priority_queue_url)
        .message_body(r#"{"customer_id":"u-7"}"#)
        .send()
        .await
        .expect("SendMessage");
    let received = rig
        .sqs
        .receive_message()
        .queue_url(&rig.stack.priority_queue_url)
        .send()
        .await
        .expect("ReceiveMessage")
        .messages
        .unwrap_or_default();
    let receipt = received[0].receipt_handle.clone().expect("receipt handle");

    // When it is backed off far beyond SQS's maximum, and dead-lettered
    control
        .delay_retry(Lane::Priority, &receipt, Duration::from_secs(100_000))
        .await
        .expect("the delay is capped below SQS's limit and accepted");
    control
        .dead_letter(&DeadLetter {
            body: r#"{"customer_id":"u-7"}"#.into(),
            reason: DeadLetterReason::PermanentFailure,
            error_class: ErrorClass::Permanent,
            error_kind: "validation".into(),
            error_message: "invalid customer data: tax_id: check digit mismatch".into(),
            customer_id: Some("u-7".into()),
            original_message_id: "m-7".into(),
        })
        .await
        .expect("dead-lettered");

    // Then the source message stays hidden, and the DLQ holds it with its reason
    let again = rig
        .sqs
        .receive_message()
        .queue_url(&rig.stack.priority_queue_url)
        .send()
        .await
        .expect("ReceiveMessage")
        .messages
        .unwrap_or_default();
    assert!(again.is_empty());
    let letters = rig
        .sqs
        .receive_message()
        .queue_url(&rig.stack.dlq_url)
        .message_attribute_names("All")
        .send()
        .await
        .expect("ReceiveMessage")
        .messages
        .unwrap_or_default();
    assert_eq!(letters.len(), 1);
    let attributes = letters[0].message_attributes.clone().unwrap_or_default();
    let value = |name: &str| {
        attributes
            .get(name)
            .and_then(|v| v.string_value.clone())
            .unwrap_or_default()
    };
    assert_eq!(value("reason"), "permanent_failure");
    assert_eq!(value("error_kind"), "validation");
    assert_eq!(value("customer_id"), "u-7");
    assert_eq!(value("original_message_id"), "m-7");
    assert_eq!(letters[0].body.as_deref(), Some(r#"{"customer_id":"u-7"}"#));
}
