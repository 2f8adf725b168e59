//! moto with the stack's tables and queues, the 1C emulator's login as a function's settings,
//! and the row reads and writes that the `*_moto` suites share.

use crate::emulator::Emulator;
use aws_sdk_dynamodb::types::AttributeValue;
use exporter::config::ExporterConfig;
use local_stack::spec::{unique_prefix, StackOutputs, MAX_EXPORT_ATTEMPTS};
use local_stack::{create_stack, sdk_config, MotoServer, SdkConfig};
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared::config::{CredentialsSource, OneCSettings};
use std::collections::HashMap;
use std::time::Duration;

/// A moto of its own with a freshly named stack in it.
pub struct MotoStack {
    pub aws: SdkConfig,
    pub stack: StackOutputs,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// Last, so it is dropped (and moto stopped) after the clients.
    pub moto: MotoServer,
}

impl MotoStack {
    /// Starts moto and creates the stack under a unique name beginning with `prefix`.
    pub async fn start(prefix: &str) -> Self {
        let moto = MotoServer::start().await.expect("moto starts (make setup)");
        let aws = sdk_config(moto.endpoint()).await;
        let stack = create_stack(&aws, &unique_prefix(prefix))
            .await
            .expect("the local stack is created");
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(&aws),
            sqs: aws_sdk_sqs::Client::new(&aws),
            aws,
            stack,
            moto,
        }
    }
}

/// Writes `row` (JSON as the platform stores it) to `table`.
pub async fn put_row(dynamodb: &aws_sdk_dynamodb::Client, table: &str, row: Value) {
    let item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(row).expect("the row converts to an item");
    dynamodb
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .expect("the row is stored");
}

/// The row `id` of `table` (as JSON or a `Customer`), read consistently; it must exist.
pub async fn get_row<T: DeserializeOwned>(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    id: &str,
) -> T {
    let item = dynamodb
        .get_item()
        .table_name(table)
        .key("id", AttributeValue::S(id.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the row exists");
    serde_dynamo::from_item(item).expect("the row reads as the type asked for")
}

/// A function's 1C settings for `emulator` over `transport`, with the emulator's plain login.
pub fn onec_settings(emulator: &Emulator, transport: &str) -> OneCSettings {
    let login = emulator.handle.config();
    OneCSettings {
        base_url: emulator.handle.base_url(),
        transport: transport.into(),
        hs_root: login.hs_root.clone(),
        allow_insecure_http: true,
        credentials: CredentialsSource::Plain {
            username: login.username.clone(),
            password: login.password.clone(),
        },
        mapping_file: None,
        request_timeout: None,
    }
}

/// The exporter's configuration for `stack` and `emulator`, as the template sets it but with
/// short backoffs (1–2 s) so that retries happen within a test.
pub fn exporter_config(
    stack: &StackOutputs,
    emulator: &Emulator,
    transport: &str,
) -> ExporterConfig {
    ExporterConfig {
        users_table: stack.users_table.clone(),
        sync_log_table: stack.sync_log_table.clone(),
        priority_queue_url: stack.priority_queue_url.clone(),
        bulk_queue_url: stack.bulk_queue_url.clone(),
        dlq_url: stack.dlq_url.clone(),
        onec: onec_settings(emulator, transport),
        max_attempts: MAX_EXPORT_ATTEMPTS,
        concurrency: 4,
        backoff_base: Duration::from_secs(1),
        backoff_cap: Duration::from_secs(2),
        breaker_threshold: 3,
        remove_policy: shared::filter::RemovePolicy::Deactivate,
        metrics_namespace: "OnecSync".into(),
        function_name: "exporter".into(),
        sync_log_retention_days: 30,
    }
}
