//! The Lambda-like SQS poller against moto: partial batch responses and redrive to the DLQ.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::MessageAttributeValue;
use local_stack::spec::{self, unique_prefix};
use local_stack::{create_stack, sdk_config, MotoServer, SqsPoller, SqsPollerConfig, StackOutputs};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Failed messages come back after a second instead of three minutes.
fn quick_retry() -> SqsPollerConfig {
    SqsPollerConfig {
        visibility_timeout: Some(Duration::from_secs(1)),
        ..SqsPollerConfig::default()
    }
}

async fn stack() -> (MotoServer, aws_sdk_sqs::Client, StackOutputs) {
    let moto = MotoServer::start().await.unwrap();
    let config = sdk_config(moto.endpoint()).await;
    let stack = create_stack(&config, &unique_prefix("sqs")).await.unwrap();
    (moto, aws_sdk_sqs::Client::new(&config), stack)
}

async fn send(sqs: &aws_sdk_sqs::Client, url: &str, body: &str) {
    sqs.send_message()
        .queue_url(url)
        .message_body(body)
        .message_attributes(
            "reason",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("profile_change")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

fn failing(ids: impl IntoIterator<Item = String>) -> Result<SqsBatchResponse, Infallible> {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = ids
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    Ok(response)
}

#[tokio::test]
async fn only_messages_not_reported_as_failed_are_deleted() {
    // Given three messages on the bulk queue
    let (_moto, sqs, stack) = stack().await;
    for body in ["one", "two", "three"] {
        send(&sqs, &stack.bulk_queue_url, body).await;
    }
    let poller = SqsPoller::new(sqs.clone(), &stack.bulk_queue_url, quick_retry())
        .await
        .unwrap();

    // When a handler fails "two"
    let report = poller
        .poll_once(|event: SqsEvent| async move {
            let failed = event
                .records
                .iter()
                .filter(|m| m.body.as_deref() == Some("two"))
                .filter_map(|m| m.message_id.clone());
            failing(failed)
        })
        .await
        .unwrap();

    // Then two are deleted and one stays for redelivery
    assert_eq!(report.received, 3);
    assert_eq!(report.deleted, 2);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(poller.approximate_count().await.unwrap(), 1);

    // And it comes back after its visibility timeout
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let sink = bodies.clone();
    poller
        .drain(
            |event: SqsEvent| {
                sink.lock()
                    .unwrap()
                    .extend(event.records.into_iter().filter_map(|m| m.body));
                async { failing([]) }
            },
            Duration::from_secs(15),
        )
        .await
        .unwrap();
    assert_eq!(*bodies.lock().unwrap(), vec!["two".to_owned()]);
    assert_eq!(poller.approximate_count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_handler_error_deletes_nothing() {
    let (_moto, sqs, stack) = stack().await;
    send(&sqs, &stack.priority_queue_url, "a").await;
    send(&sqs, &stack.priority_queue_url, "b").await;
    let poller = SqsPoller::new(sqs, &stack.priority_queue_url, quick_retry())
        .await
        .unwrap();

    let report = poller
        .poll_once(|_: SqsEvent| async { Err::<SqsBatchResponse, _>("exporter crashed") })
        .await
        .unwrap();

    assert_eq!(report.handler_errors, 1);
    assert_eq!(report.deleted, 0);
    assert_eq!(poller.approximate_count().await.unwrap(), 2);
}

#[tokio::test]
async fn a_message_failing_max_receive_count_times_lands_in_the_dlq_with_its_attributes() {
    // Given a message that always fails
    let (_moto, sqs, stack) = stack().await;
    send(&sqs, &stack.bulk_queue_url, r#"{"customer_id":"u-1"}"#).await;
    let poller = SqsPoller::new(sqs.clone(), &stack.bulk_queue_url, quick_retry())
        .await
        .unwrap();
    let deliveries = Arc::new(Mutex::new(Vec::new()));
    let sink = deliveries.clone();

    // When the queue is drained with a handler that reports it failed every time
    let report = poller
        .drain(
            |event: SqsEvent| {
                let ids: Vec<String> = event
                    .records
                    .iter()
                    .filter_map(|m| m.message_id.clone())
                    .collect();
                sink.lock().unwrap().extend(event.records);
                async move { failing(ids) }
            },
            Duration::from_secs(30),
        )
        .await
        .unwrap();

    // Then it was delivered maxReceiveCount times, as Lambda would deliver it
    let deliveries = deliveries.lock().unwrap().clone();
    assert_eq!(report.invocations, spec::MAX_EXPORT_ATTEMPTS as usize);
    let counts: Vec<String> = deliveries
        .iter()
        .map(|m| m.attributes["ApproximateReceiveCount"].clone())
        .collect();
    let expected: Vec<String> = (1..=spec::MAX_EXPORT_ATTEMPTS)
        .map(|n| n.to_string())
        .collect();
    assert_eq!(counts, expected);
    let first = &deliveries[0];
    assert!(first.attributes.contains_key("SentTimestamp"));
    assert_eq!(
        first.event_source_arn.as_deref(),
        Some(stack.bulk_queue_arn.as_str())
    );
    assert_eq!(first.event_source.as_deref(), Some("aws:sqs"));
    assert_eq!(
        first.message_attributes["reason"].string_value.as_deref(),
        Some("profile_change")
    );
    // and then moved to the DLQ, body and attributes intact
    let dead = sqs
        .receive_message()
        .queue_url(&stack.dlq_url)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let message = &dead.messages()[0];
    assert_eq!(message.body(), Some(r#"{"customer_id":"u-1"}"#));
    assert_eq!(
        message
            .message_attributes()
            .and_then(|a| a.get("reason"))
            .and_then(|v| v.string_value()),
        Some("profile_change")
    );
}
