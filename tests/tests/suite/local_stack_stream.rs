//! The Lambda-like stream poller against moto's DynamoDB Streams.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use local_stack::spec::unique_prefix;
use local_stack::stream_poller::OnFailureQueue;
use local_stack::{
    create_stack, sdk_config, MotoServer, StackOutputs, StreamPoller, StreamPollerConfig,
};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

struct Fixture {
    _moto: MotoServer,
    config: local_stack::SdkConfig,
    stack: StackOutputs,
    dynamodb: aws_sdk_dynamodb::Client,
}

async fn fixture() -> Fixture {
    let moto = MotoServer::start().await.unwrap();
    let config = sdk_config(moto.endpoint()).await;
    let stack = create_stack(&config, &unique_prefix("stream"))
        .await
        .unwrap();
    Fixture {
        dynamodb: aws_sdk_dynamodb::Client::new(&config),
        _moto: moto,
        config,
        stack,
    }
}

impl Fixture {
    fn poller(&self, config: StreamPollerConfig) -> StreamPoller {
        StreamPoller::new(
            aws_sdk_dynamodbstreams::Client::new(&self.config),
            &self.stack.users_stream_arn,
            config,
        )
    }

    async fn put(&self, id: &str, email: &str) {
        self.dynamodb
            .put_item()
            .table_name(&self.stack.users_table)
            .item("id", AttributeValue::S(id.into()))
            .item("email", AttributeValue::S(email.into()))
            .item("version", AttributeValue::N("1".into()))
            .send()
            .await
            .unwrap();
    }
}

fn small_batches(batch_size: usize, maximum_retry_attempts: u32) -> StreamPollerConfig {
    StreamPollerConfig {
        batch_size,
        maximum_retry_attempts,
        ..StreamPollerConfig::default()
    }
}

fn s(item: &serde_dynamo::Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(serde_dynamo::AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn ok() -> Result<DynamoDbEventResponse, Infallible> {
    Ok(DynamoDbEventResponse::default())
}

fn fail_at(sequence_number: &str) -> Result<DynamoDbEventResponse, Infallible> {
    let mut failure = DynamoDbBatchItemFailure::default();
    failure.item_identifier = Some(sequence_number.to_owned());
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures.push(failure);
    Ok(response)
}

#[tokio::test]
async fn inserts_modifies_and_removes_arrive_in_order_with_old_and_new_images() {
    // Given an insert, an update and a delete of one user
    let f = fixture().await;
    f.put("u-1", "old@example.com").await;
    f.dynamodb
        .update_item()
        .table_name(&f.stack.users_table)
        .key("id", AttributeValue::S("u-1".into()))
        .update_expression("SET email = :e")
        .expression_attribute_values(":e", AttributeValue::S("new@example.com".into()))
        .send()
        .await
        .unwrap();
    f.dynamodb
        .delete_item()
        .table_name(&f.stack.users_table)
        .key("id", AttributeValue::S("u-1".into()))
        .send()
        .await
        .unwrap();

    // When the stream is drained
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut poller = f.poller(StreamPollerConfig::default());
    let report = poller
        .drain(|event: Event| {
            sink.lock().unwrap().extend(event.records);
            async { ok() }
        })
        .await
        .unwrap();

    // Then three records arrive in one batch, shaped as Lambda delivers them
    assert_eq!(report.invocations, 1);
    let records = seen.lock().unwrap().clone();
    let names: Vec<&str> = records.iter().map(|r| r.event_name.as_str()).collect();
    assert_eq!(names, vec!["INSERT", "MODIFY", "REMOVE"]);
    let (insert, modify, remove) = (&records[0], &records[1], &records[2]);
    assert_eq!(
        s(&insert.change.new_image, "email").as_deref(),
        Some("old@example.com")
    );
    assert!(insert.change.old_image.is_empty());
    assert_eq!(
        s(&modify.change.old_image, "email").as_deref(),
        Some("old@example.com")
    );
    assert_eq!(
        s(&modify.change.new_image, "email").as_deref(),
        Some("new@example.com")
    );
    assert_eq!(
        s(&remove.change.old_image, "email").as_deref(),
        Some("new@example.com")
    );
    assert!(remove.change.new_image.is_empty());
    assert_eq!(s(&remove.change.keys, "id").as_deref(), Some("u-1"));
    for record in &records {
        assert!(record.change.sequence_number.is_some());
        assert_eq!(
            record.event_source_arn.as_deref(),
            Some(f.stack.users_stream_arn.as_str())
        );
        assert_eq!(
            record
                .change
                .approximate_creation_date_time
                .timestamp_subsec_nanos(),
            0
        );
        assert!(record.change.approximate_creation_date_time.timestamp() > 0);
    }
    // And a second drain finds nothing new
    let again = poller.drain(|_: Event| async { ok() }).await.unwrap();
    assert_eq!(again.invocations, 0);
}

#[tokio::test]
async fn a_failure_reported_at_record_n_redelivers_from_record_n() {
    // Given five users and a handler that fails once at the third record
    let f = fixture().await;
    for i in 1..=5 {
        f.put(&format!("u-{i}"), &format!("user{i}@example.com"))
            .await;
    }
    let batches: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let sink = batches.clone();
    let mut failed_once = false;

    // When the stream is drained in batches of five
    let mut poller = f.poller(small_batches(5, 3));
    let report = poller
        .drain(|event: Event| {
            let ids: Vec<String> = event
                .records
                .iter()
                .filter_map(|r| s(&r.change.new_image, "id"))
                .collect();
            sink.lock().unwrap().push(ids);
            let third = event
                .records
                .get(2)
                .and_then(|r| r.change.sequence_number.clone());
            let response = match third {
                Some(seq) if !failed_once => {
                    failed_once = true;
                    fail_at(&seq)
                }
                _ => ok(),
            };
            async move { response }
        })
        .await
        .unwrap();

    // Then the second delivery starts at the third record
    assert_eq!(
        *batches.lock().unwrap(),
        vec![
            vec!["u-1", "u-2", "u-3", "u-4", "u-5"],
            vec!["u-3", "u-4", "u-5"],
        ]
    );
    assert_eq!(report.records_processed, 5);
    assert!(report.failed_batches.is_empty());
}

#[tokio::test]
async fn a_handler_error_redelivers_the_whole_batch() {
    let f = fixture().await;
    f.put("u-1", "a@example.com").await;
    f.put("u-2", "b@example.com").await;
    let mut calls = 0;

    let mut poller = f.poller(small_batches(10, 3));
    let report = poller
        .drain(|event: Event| {
            calls += 1;
            let result = if calls == 1 {
                Err("boom")
            } else {
                Ok(DynamoDbEventResponse::default())
            };
            let size = event.records.len();
            async move {
                assert_eq!(size, 2);
                result
            }
        })
        .await
        .unwrap();

    assert_eq!(report.invocations, 2);
    assert_eq!(report.records_delivered, 4);
    assert_eq!(report.records_processed, 2);
}

#[tokio::test]
async fn a_batch_that_keeps_failing_is_skipped_after_its_retries_and_reported() {
    // Given a poison first record and an on-failure queue
    let f = fixture().await;
    f.put("u-poison", "p@example.com").await;
    f.put("u-ok", "ok@example.com").await;
    let sqs = aws_sdk_sqs::Client::new(&f.config);
    let delivered_ok = Arc::new(Mutex::new(0));
    let sink = delivered_ok.clone();

    // When the stream is drained with two retries, batches of one
    let mut poller = f
        .poller(small_batches(1, 2))
        .with_on_failure_queue(OnFailureQueue {
            client: sqs.clone(),
            queue_url: f.stack.stream_failure_queue_url.clone(),
        });
    let report = poller
        .drain(|event: Event| {
            let record = event.records[0].clone();
            let poison = s(&record.change.new_image, "id").as_deref() == Some("u-poison");
            if !poison {
                *sink.lock().unwrap() += 1;
            }
            let seq = record.change.sequence_number.unwrap_or_default();
            async move {
                if poison {
                    fail_at(&seq)
                } else {
                    ok()
                }
            }
        })
        .await
        .unwrap();

    // Then the poison record was delivered three times, then skipped; the next one went through
    assert_eq!(report.invocations, 4);
    assert_eq!(*delivered_ok.lock().unwrap(), 1);
    assert_eq!(report.failed_batches.len(), 1);
    let failed = &report.failed_batches[0];
    assert_eq!(failed.attempts, 3);
    assert_eq!(failed.batch_size, 1);
    assert_eq!(failed.start_sequence_number, failed.end_sequence_number);
    // and the on-failure queue got the batch metadata only
    let received = sqs
        .receive_message()
        .queue_url(&f.stack.stream_failure_queue_url)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value =
        serde_json::from_str(received.messages()[0].body().unwrap()).unwrap();
    assert_eq!(
        body["DDBStreamBatchInfo"]["startSequenceNumber"],
        failed.start_sequence_number.as_str()
    );
    assert!(!body.to_string().contains("p@example.com"));
}

#[tokio::test]
async fn a_background_poller_delivers_new_records_until_stopped() {
    // Given a poller running in the background
    let f = fixture().await;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut poller = f.poller(StreamPollerConfig {
        batching_window: std::time::Duration::ZERO,
        idle_poll_interval: std::time::Duration::from_millis(50),
        ..StreamPollerConfig::default()
    });
    let task = tokio::spawn(async move {
        poller
            .run_until(
                move |event: Event| {
                    let ids = event
                        .records
                        .iter()
                        .filter_map(|r| s(&r.change.new_image, "id"));
                    sink.lock().unwrap().extend(ids);
                    async { ok() }
                },
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
    });

    // When a user is written
    f.put("u-live", "live@example.com").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop_tx.send(()).unwrap();
    let report = task.await.unwrap().unwrap();

    // Then it was delivered, and the poller stopped on request
    assert_eq!(*seen.lock().unwrap(), vec!["u-live".to_owned()]);
    assert_eq!(report.records_processed, 1);
}
