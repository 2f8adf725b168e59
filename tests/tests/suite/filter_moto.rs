//! The stream filter against moto: real table writes, the real stream, the real SQS adapter and
//! the real conditional flag write.

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::moto_stack::get_row;
use local_stack::spec::unique_prefix;
use local_stack::{
    create_stack, sdk_config, MotoServer, StackOutputs, StreamPoller, StreamPollerConfig,
};
use shared::adapters::dynamodb::DynamoDbCustomerStore;
use shared::adapters::sqs::SqsExportQueue;
use shared::domain::{Customer, SyncStatus};
use shared::error::Classify;
use shared::filter::{FilterPolicy, RemovePolicy};
use shared::mapping::MappingConfig;
use shared::message::{ExportMessage, ExportReason, Lane};
use shared::metrics::Metrics;
use shared::ports::ExportQueue;
use stream_filter::{handle, Deps};

const ONEC_ID: &str = "3f2c9a1e-7b4d-4e8a-9c1f-0000000000aa";

struct Fixture {
    _moto: MotoServer,
    stack: StackOutputs,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    streams: aws_sdk_dynamodbstreams::Client,
}

async fn fixture() -> Fixture {
    let moto = MotoServer::start().await.unwrap();
    let config = sdk_config(moto.endpoint()).await;
    let stack = create_stack(&config, &unique_prefix("filter"))
        .await
        .unwrap();
    Fixture {
        _moto: moto,
        stack,
        dynamodb: aws_sdk_dynamodb::Client::new(&config),
        sqs: aws_sdk_sqs::Client::new(&config),
        streams: aws_sdk_dynamodbstreams::Client::new(&config),
    }
}

impl Fixture {
    fn deps(&self) -> Deps<SqsExportQueue, DynamoDbCustomerStore> {
        Deps {
            queue: SqsExportQueue::new(
                self.sqs.clone(),
                &self.stack.priority_queue_url,
                &self.stack.bulk_queue_url,
            ),
            marker: DynamoDbCustomerStore::new(self.dynamodb.clone(), &self.stack.users_table),
            policy: FilterPolicy {
                significant_fields: MappingConfig::default()
                    .significant_fields()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                remove_policy: RemovePolicy::Deactivate,
            },
            metrics: Metrics::new("OnecSyncTest", "stream-filter"),
        }
    }

    async fn put(&self, customer: &Customer) {
        self.dynamodb
            .put_item()
            .table_name(&self.stack.users_table)
            .set_item(Some(serde_dynamo::to_item(customer).unwrap()))
            .send()
            .await
            .unwrap();
    }

    async fn update(&self, id: &str, expression: &str, values: &[(&str, AttributeValue)]) {
        let mut request = self
            .dynamodb
            .update_item()
            .table_name(&self.stack.users_table)
            .key("id", AttributeValue::S(id.into()))
            .update_expression(expression);
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        request.send().await.unwrap();
    }

    async fn row(&self, id: &str) -> Customer {
        get_row(&self.dynamodb, &self.stack.users_table, id).await
    }

    /// Runs the stream through the real handler until nothing new arrives.
    async fn drain(
        &self,
        poller: &mut StreamPoller,
        deps: &Deps<SqsExportQueue, DynamoDbCustomerStore>,
    ) -> local_stack::stream_poller::StreamDrainReport {
        let report = poller.drain(|event| handle(deps, event)).await.unwrap();
        assert!(report.failed_batches.is_empty(), "{report:?}");
        report
    }

    /// Receives (and deletes) everything on a lane's queue.
    async fn take(&self, lane: Lane) -> Vec<ExportMessage> {
        let url = match lane {
            Lane::Priority => &self.stack.priority_queue_url,
            Lane::Bulk => &self.stack.bulk_queue_url,
        };
        let mut messages = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .send()
                .await
                .unwrap();
            if received.messages().is_empty() {
                return messages;
            }
            for m in received.messages() {
                let message: ExportMessage = serde_json::from_str(m.body().unwrap()).unwrap();
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get("reason"))
                    .and_then(|v| v.string_value());
                assert_eq!(reason, Some(message.reason.as_str()));
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
                messages.push(message);
            }
        }
    }
}

fn platform_user(id: &str, email: &str) -> Customer {
    Customer {
        id: id.into(),
        email: Some(email.into()),
        first_name: Some("Anna".into()),
        last_name: Some("Ivanova".into()),
        phone: Some("+79001234567".into()),
        version: 1,
        ..Customer::default()
    }
}

fn exported(mut customer: Customer) -> Customer {
    customer.onec_id = Some(ONEC_ID.into());
    customer.onec_version = Some("AAAAAQ==".into());
    customer.synced_version = Some(customer.version);
    customer.sync_status = Some(SyncStatus::Synced);
    customer
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn summary(messages: &[ExportMessage]) -> Vec<(&str, ExportReason, u64, Option<&str>)> {
    messages
        .iter()
        .map(|m| {
            (
                m.customer_id.as_str(),
                m.reason,
                m.version,
                m.onec_id.as_deref(),
            )
        })
        .collect()
}

#[tokio::test]
async fn table_writes_become_exactly_the_expected_messages_per_lane() {
    // Given users already exported to 1C (seeded rows, in sync, so their inserts export nothing)
    let f = fixture().await;
    let deps = f.deps();
    let mut poller = StreamPoller::new(
        f.streams.clone(),
        &f.stack.users_stream_arn,
        StreamPollerConfig::default(),
    );
    for id in ["u-profile", "u-bookkeeping", "u-import", "u-deleted"] {
        f.put(&exported(platform_user(id, &format!("{id}@example.com"))))
            .await;
    }
    f.drain(&mut poller, &deps).await;
    assert!(f.take(Lane::Priority).await.is_empty());
    assert!(f.take(Lane::Bulk).await.is_empty());

    // When the platform registers a user, edits one, onec-sync records bookkeeping on another,
    // the 1C import updates one, the import creates one, and the platform deletes one
    f.put(&platform_user("u-new", "new@example.com")).await;
    f.update(
        "u-profile",
        "SET phone = :p, version = version + :one",
        &[(":p", s("+79009998877")), (":one", n(1))],
    )
    .await;
    f.update(
        "u-bookkeeping",
        "SET sync_status = :s, onec_id = :o",
        &[(":s", s("retrying")), (":o", s(ONEC_ID))],
    )
    .await;
    f.update(
        "u-import",
        "SET email = :e, version = :v, synced_version = :v, last_change_source = :src",
        &[
            (":e", s("from-1c@example.com")),
            (":v", n(2)),
            (":src", s("1c")),
        ],
    )
    .await;
    let mut from_1c = exported(platform_user("u-from-1c", "from1c@example.com"));
    from_1c.created_in_1c = true;
    f.put(&from_1c).await;
    f.dynamodb
        .delete_item()
        .table_name(&f.stack.users_table)
        .key("id", s("u-deleted"))
        .send()
        .await
        .unwrap();
    let first = poller
        .poll_once(|event| handle(&deps, event))
        .await
        .unwrap();

    // Then the registration is on the priority queue and its row is flagged
    assert_eq!(first.records_processed, 6);
    assert_eq!(
        summary(&f.take(Lane::Priority).await),
        vec![("u-new", ExportReason::Registration, 1, None)]
    );
    let registered = f.row("u-new").await;
    assert!(registered.needs_1c_export);
    assert_eq!(registered.sync_status, Some(SyncStatus::Pending));
    assert_eq!(registered.version, 1);
    // and only the profile change and the deactivation are on the bulk queue
    assert_eq!(
        summary(&f.take(Lane::Bulk).await),
        vec![
            ("u-profile", ExportReason::ProfileChange, 2, None),
            ("u-deleted", ExportReason::Deactivation, 1, Some(ONEC_ID)),
        ]
    );

    // When the stream is read again: the filter's own flag write is the only new record
    let second = poller
        .poll_once(|event| handle(&deps, event))
        .await
        .unwrap();

    // Then it was delivered and ignored
    assert_eq!(second.records_processed, 1);
    assert!(f.take(Lane::Priority).await.is_empty());
    assert!(f.take(Lane::Bulk).await.is_empty());
    // and nothing follows it
    assert_eq!(f.drain(&mut poller, &deps).await.invocations, 0);
}

#[tokio::test]
async fn a_registration_overtaken_by_a_newer_write_is_still_enqueued_but_not_flagged() {
    // Given a registration followed by a profile edit before the filter runs
    let f = fixture().await;
    let deps = f.deps();
    let mut poller = StreamPoller::new(
        f.streams.clone(),
        &f.stack.users_stream_arn,
        StreamPollerConfig::default(),
    );
    f.put(&platform_user("u-quick", "quick@example.com")).await;
    f.update(
        "u-quick",
        "SET last_name = :l, version = version + :one",
        &[(":l", s("Petrova")), (":one", n(1))],
    )
    .await;

    // When the filter runs
    f.drain(&mut poller, &deps).await;

    // Then the flag write's version condition failed (the row moved on), both messages went out
    let row = f.row("u-quick").await;
    assert!(!row.needs_1c_export);
    assert_eq!(row.sync_status, None);
    assert_eq!(
        summary(&f.take(Lane::Priority).await),
        vec![("u-quick", ExportReason::Registration, 1, None)]
    );
    assert_eq!(
        summary(&f.take(Lane::Bulk).await),
        vec![("u-quick", ExportReason::ProfileChange, 2, None)]
    );
}

#[tokio::test]
async fn the_sqs_adapter_classifies_a_missing_queue_as_permanent_and_a_dead_endpoint_as_transient()
{
    // Given an adapter pointing at a queue that does not exist
    let f = fixture().await;
    let missing = SqsExportQueue::new(
        f.sqs.clone(),
        format!("{}-gone", f.stack.priority_queue_url),
        &f.stack.bulk_queue_url,
    );
    let message = ExportMessage {
        customer_id: "u-1".into(),
        reason: ExportReason::Registration,
        version: 1,
        changed_at: chrono::Utc::now(),
        onec_id: None,
    };

    // When it enqueues
    let err = missing
        .enqueue(Lane::Priority, std::slice::from_ref(&message))
        .await
        .unwrap_err();

    // Then the failure is permanent
    assert!(!err.is_retryable(), "{err:?}");

    // Given an endpoint nobody listens on
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = sdk_config(&format!("http://127.0.0.1:{dead_port}")).await;
    // The SDK's own retries would only slow the test down; the adapter's rounds remain.
    let client = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&dead)
            .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
            .build(),
    );
    let unreachable = SqsExportQueue::new(client, "http://x/1/q", "http://x/1/q");

    // When it enqueues, the failure is transient
    let err = unreachable
        .enqueue(Lane::Bulk, &[message])
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn more_than_ten_messages_go_out_in_several_batch_calls_and_all_arrive() {
    // Given 23 export messages
    let f = fixture().await;
    let queue = SqsExportQueue::new(
        f.sqs.clone(),
        &f.stack.priority_queue_url,
        &f.stack.bulk_queue_url,
    );
    let messages: Vec<ExportMessage> = (0..23)
        .map(|i| ExportMessage {
            customer_id: format!("u-{i:02}"),
            reason: ExportReason::FullSync,
            version: 1,
            changed_at: chrono::Utc::now(),
            onec_id: None,
        })
        .collect();

    // When enqueued at once
    let results = queue.enqueue(Lane::Bulk, &messages).await.unwrap();

    // Then each has succeeded and all are on the queue
    assert_eq!(results.len(), 23);
    assert!(results.iter().all(Result::is_ok));
    let mut ids: Vec<String> = f
        .take(Lane::Bulk)
        .await
        .into_iter()
        .map(|m| m.customer_id)
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        messages
            .iter()
            .map(|m| m.customer_id.clone())
            .collect::<Vec<_>>()
    );
}
