//! The local stack's full sync: invoked at once or on its schedule, with Lambda's handling of a
//! failed asynchronous invocation (one retry, then the on-failure queue).

use aws_sdk_dynamodb::types::AttributeValue;
use full_sync::FullSyncInput;
use local_stack::runner::{FullSyncSchedule, LocalStack, LocalStackOptions};
use local_stack::users::{generate, Expect};
use onec_emulator::{CounterpartyPatch, FaultPlan};
use serde_json::Value;
use shared::sync_run::SyncDirection;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

async fn row(stack: &LocalStack, id: &str) -> HashMap<String, AttributeValue> {
    aws_sdk_dynamodb::Client::new(stack.aws())
        .get_item()
        .table_name(&stack.outputs().users_table)
        .key("id", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .unwrap_or_default()
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn onec_writes(stack: &LocalStack) -> u64 {
    let stats = stack.emulator().stats();
    stats.creates + stats.updates + stats.deletes
}

#[tokio::test]
async fn an_invoked_import_brings_a_role_changed_in_1c_to_the_user_and_exports_nothing_back() {
    // Given a stack without a schedule and one registered user the pipeline has exported
    let stack = LocalStack::start(LocalStackOptions::default())
        .await
        .expect("the local stack starts");
    let user = generate(1, 11, 0.0).remove(0);
    assert_eq!(user.expect, Expect::Valid);
    aws_sdk_dynamodb::Client::new(stack.aws())
        .put_item()
        .table_name(&stack.outputs().users_table)
        .set_item(Some(serde_dynamo::to_item(&user.row).expect("an item")))
        .send()
        .await
        .expect("PutItem");
    let deadline = Instant::now() + Duration::from_secs(30);
    let onec_id = loop {
        let item = row(&stack, &user.id).await;
        if let (Some(id), Some("synced")) = (text(&item, "onec_id"), text(&item, "sync_status")) {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "the user was not exported");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(stack
        .settle(Duration::from_millis(500), Duration::from_secs(10))
        .await
        .expect("queues readable"));

    // When an operator makes the counterparty VIP and blocked in 1C, and the import is invoked
    stack
        .emulator()
        .edit_in_1c(
            &onec_id,
            CounterpartyPatch {
                role: Some(Some("VIP".to_owned())),
                status: Some(Some("Заблокирован".to_owned())),
                ..CounterpartyPatch::default()
            },
        )
        .expect("the counterparty exists");
    let writes_before = onec_writes(&stack);
    let report = stack
        .invoke_full_sync(&FullSyncInput::start(SyncDirection::Import, 100))
        .await
        .expect("the import runs");

    // Then the user carries 1C's role and status, marked as 1C's change and in sync
    assert_eq!(report.counters.updated, 1, "{report:?}");
    let item = row(&stack, &user.id).await;
    assert_eq!(text(&item, "role"), Some("vip"));
    assert_eq!(text(&item, "status"), Some("blocked"));
    assert_eq!(text(&item, "last_change_source"), Some("1c"));
    assert_eq!(item.get("synced_version"), item.get("version"));
    // And nothing goes back to 1C
    assert!(stack
        .settle(Duration::from_millis(1500), Duration::from_secs(10))
        .await
        .expect("queues readable"));
    assert_eq!(onec_writes(&stack), writes_before);
    stack.stop().await;
}

#[tokio::test]
async fn a_scheduled_full_sync_that_fails_after_its_retry_leaves_lambdas_failure_record_in_its_queue(
) {
    // Given 1C down and the import scheduled every second
    let input = FullSyncInput::start(SyncDirection::Import, 100);
    let stack = LocalStack::start(LocalStackOptions {
        faults: FaultPlan {
            down: true,
            ..FaultPlan::default()
        },
        full_sync: Some(FullSyncSchedule {
            every: Duration::from_secs(1),
            input: input.clone(),
        }),
        ..LocalStackOptions::default()
    })
    .await
    .expect("the local stack starts");

    // When the schedule fires and the invocation and its retry fail
    let deadline = Instant::now() + Duration::from_secs(45);
    while stack.stats().full_sync_dead_letters.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "no invocation reached the failure queue"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Then the on-failure queue holds Lambda's record: the request and the error
    let received = aws_sdk_sqs::Client::new(stack.aws())
        .receive_message()
        .queue_url(&stack.outputs().full_sync_failure_queue_url)
        .wait_time_seconds(2)
        .send()
        .await
        .expect("ReceiveMessage");
    let body = received
        .messages()
        .first()
        .and_then(|m| m.body())
        .expect("a failure record");
    let record: Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(
        record["requestPayload"],
        serde_json::to_value(&input).expect("serialises")
    );
    let message = record["responsePayload"]["errorMessage"]
        .as_str()
        .expect("an error message");
    assert!(message.contains("1C import failed"), "{message}");
    // And both attempts counted as failed invocations
    assert!(stack.stats().full_sync_failures.load(Ordering::Relaxed) >= 2);
    stack.stop().await;
}
