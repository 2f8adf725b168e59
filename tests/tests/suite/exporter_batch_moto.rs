//! The exporter with batch calls to 1C, end to end: real moto (DynamoDB, SQS DLQ), the 1C
//! emulator over OData `$batch`, and the production wiring with `ONEC_BATCH_SIZE` > 1.

use aws_lambda_events::event::sqs::SqsEvent;
use exporter::handle;
use exporter::wiring::build_deps;
use integration_tests::emulator::Emulator;
use integration_tests::moto_stack::{exporter_config, get_row, put_row, MotoStack};
use serde_json::{json, Value};

#[tokio::test]
async fn an_invocation_exports_its_customers_in_two_odata_requests_and_a_bad_one_fails_alone() {
    // Given moto, the 1C emulator over OData, and the exporter wired with a batch size of 10
    let MotoStack {
        aws,
        stack,
        dynamodb,
        sqs,
        moto: _moto,
    } = MotoStack::start("exbatch").await;
    let emulator = Emulator::start().await;
    let config = exporter_config(&stack, &emulator, "odata");
    let mut deps = build_deps(&config, &aws).await.expect("wired");
    deps.service.set_batch_size(10);
    // And five registered customers, the fourth with an INN that fails its checksum
    let ids: Vec<String> = (1..=5).map(|i| format!("batch-user-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let mut row = json!({
            "id": id, "email": format!("user{i}@example.com"), "phone": "+7 912 345-67-89",
            "first_name": "Иван", "last_name": "Петров", "role": "retail", "status": "active",
            "needs_1c_export": true, "sync_status": "pending", "version": 1,
        });
        if i == 3 {
            row["tax_id"] = json!("1234567895");
        }
        put_row(&dynamodb, &stack.users_table, row).await;
    }
    let records: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({
                "messageId": format!("m-{i}"), "receiptHandle": format!("r-{i}"),
                "body": json!({"customer_id": id, "reason": "registration", "version": 1,
                               "changed_at": "2026-11-28T10:15:30Z"}).to_string(),
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "eventSource": "aws:sqs", "awsRegion": "eu-central-1",
                "eventSourceARN": format!("arn:aws:sqs:eu-central-1:000000000000:{}",
                    stack.priority_queue_url.rsplit('/').next().unwrap_or_default()),
            })
        })
        .collect();
    let event: SqsEvent =
        serde_json::from_value(json!({ "Records": records })).expect("an SQS event");

    // When the invocation is handled
    let response = handle(&deps, event).await.expect("handled");

    // Then nothing is redelivered, 1C got one lookup batch and one write batch
    assert!(response.batch_item_failures.is_empty());
    let odata_requests: u64 = emulator.handle.stats().requests["odata"].values().sum();
    assert_eq!(odata_requests, 2);
    // And every valid row records its counterparty, the invalid one an error
    for (i, id) in ids.iter().enumerate() {
        let row: Value = get_row(&dynamodb, &stack.users_table, id).await;
        let in_1c = emulator.handle.find_by_platform_id(id);
        if i == 3 {
            assert_eq!(row["sync_status"], json!("error"));
            assert!(in_1c.is_empty());
        } else {
            assert_eq!(row["sync_status"], json!("synced"), "{id}");
            assert_eq!(in_1c.len(), 1);
            assert_eq!(row["onec_id"], json!(in_1c[0].onec_id));
        }
    }
    // And the invalid customer's message went to the DLQ
    let dlq = sqs
        .receive_message()
        .queue_url(&stack.dlq_url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .expect("ReceiveMessage");
    let letters = dlq.messages.unwrap_or_default();
    assert_eq!(letters.len(), 1);
    assert!(letters[0]
        .body
        .as_deref()
        .is_some_and(|b| b.contains("batch-user-4")));
    emulator.stop().await;
}
