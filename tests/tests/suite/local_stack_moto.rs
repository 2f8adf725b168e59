//! The local stack itself: moto's lifecycle and the resources created from the spec.

use aws_sdk_sqs::types::QueueAttributeName;
use local_stack::spec::{self, unique_prefix};
use local_stack::{create_stack, sdk_config, MotoServer};
use std::collections::HashMap;
use std::net::TcpStream;
use std::path::Path;

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[tokio::test]
async fn moto_answers_on_loopback_and_leaves_no_process_behind_when_dropped() {
    // Given a started moto
    let moto = MotoServer::start().await.unwrap();
    let port = moto.port();
    let pid = moto.pid().unwrap();
    assert!(moto.endpoint().starts_with("http://127.0.0.1:"));
    assert!(listening(port));
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    // When it is dropped
    drop(moto);

    // Then nothing listens on its port and its process is gone
    assert!(!listening(port));
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

#[tokio::test]
async fn moto_is_stopped_when_a_test_panics_while_holding_it() {
    // Given a task that panics while it owns a moto
    let (port_tx, port_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let moto = MotoServer::start().await.unwrap();
        port_tx.send(moto.port()).unwrap();
        panic!("a failing test");
    });

    // When the panic has unwound
    let port = port_rx.await.unwrap();
    assert!(task.await.is_err());

    // Then the server is gone
    assert!(!listening(port));
}

async fn queue_attributes(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> HashMap<QueueAttributeName, String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default()
}

#[tokio::test]
async fn the_created_stack_has_the_redrive_visibility_and_retention_of_the_spec() {
    // Given a moto and a stack
    let moto = MotoServer::start().await.unwrap();
    let config = sdk_config(moto.endpoint()).await;
    let stack = create_stack(&config, &unique_prefix("spec")).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);

    // When the source queues' attributes are read back
    for url in [&stack.priority_queue_url, &stack.bulk_queue_url] {
        let attributes = queue_attributes(&sqs, url).await;

        // Then both redrive to the DLQ after MAX_EXPORT_ATTEMPTS receives
        let redrive: serde_json::Value =
            serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert_eq!(redrive["deadLetterTargetArn"], stack.dlq_arn.as_str());
        assert_eq!(
            redrive["maxReceiveCount"].to_string().trim_matches('"'),
            spec::MAX_EXPORT_ATTEMPTS.to_string()
        );
        // and hide a received message for six exporter timeouts, keeping it four days
        assert_eq!(
            attributes[&QueueAttributeName::VisibilityTimeout],
            (6 * spec::EXPORTER_TIMEOUT_SECS).to_string()
        );
        assert_eq!(
            attributes[&QueueAttributeName::MessageRetentionPeriod],
            spec::SOURCE_RETENTION_SECS.to_string()
        );
    }
    // and the DLQ keeps messages longer than its sources
    let dlq = queue_attributes(&sqs, &stack.dlq_url).await;
    let dlq_retention: u32 = dlq[&QueueAttributeName::MessageRetentionPeriod]
        .parse()
        .unwrap();
    assert_eq!(dlq_retention, spec::DLQ_RETENTION_SECS);
    assert!(dlq_retention > spec::SOURCE_RETENTION_SECS);
}

#[tokio::test]
async fn the_created_tables_have_the_keys_stream_and_ttl_of_the_spec() {
    let moto = MotoServer::start().await.unwrap();
    let config = sdk_config(moto.endpoint()).await;
    let stack = create_stack(&config, &unique_prefix("tables"))
        .await
        .unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);

    // The users table streams new and old images under partition key `id`
    let users = dynamodb
        .describe_table()
        .table_name(&stack.users_table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let stream = users.stream_specification().unwrap();
    assert_eq!(
        stream.stream_view_type().map(|v| v.as_str()),
        Some("NEW_AND_OLD_IMAGES")
    );
    assert_eq!(
        users.latest_stream_arn(),
        Some(stack.users_stream_arn.as_str())
    );
    let keys: Vec<(&str, &str)> = users
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(keys, vec![("id", "HASH")]);

    // The sync log is keyed by customer and time-ordered sort key, with a TTL attribute
    let log = dynamodb
        .describe_table()
        .table_name(&stack.sync_log_table)
        .send()
        .await
        .unwrap()
        .table
        .unwrap();
    let keys: Vec<(&str, &str)> = log
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(keys, vec![("customer_id", "HASH"), ("sk", "RANGE")]);
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(&stack.sync_log_table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        spec::SYNC_LOG_TABLE.ttl_attribute
    );
}

#[tokio::test]
async fn two_stacks_share_one_moto_and_a_reset_forgets_them() {
    // Given two stacks with different prefixes in one moto
    let moto = MotoServer::start().await.unwrap();
    let config = sdk_config(moto.endpoint()).await;
    let first = create_stack(&config, &unique_prefix("a")).await.unwrap();
    let second = create_stack(&config, &unique_prefix("b")).await.unwrap();
    assert_ne!(first.users_table, second.users_table);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let before = sqs.list_queues().send().await.unwrap().queue_urls().len();
    assert_eq!(before, 2 * spec::QUEUES.len());

    // When moto is reset
    moto.reset().await.unwrap();

    // Then no queue is left
    let after = sqs.list_queues().send().await.unwrap().queue_urls().len();
    assert_eq!(after, 0);
}
