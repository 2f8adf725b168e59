//! The exporter end to end: real moto (DynamoDB + SQS with redrive), the real 1C emulator with
//! the JSON transport, the production wiring (`exporter::wiring::build_deps`), and a Lambda-like
//! SQS poller that deletes what the handler does not report and leaves the rest to redrive.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use exporter::wiring::build_deps;
use exporter::{handle, Deps, Jitter};
use integration_tests::emulator::{platform_id, respond, Emulator};
use integration_tests::moto_stack::{exporter_config, get_row, put_row, MotoStack};
use local_stack::spec::StackOutputs;
use local_stack::spec::MAX_EXPORT_ATTEMPTS;
use local_stack::sqs_poller::SqsPollReport;
use local_stack::{MotoServer, SqsPoller, SqsPollerConfig};
use onec_emulator::{FaultPlan, ScriptedAnswer};
use serde_json::{json, Value};
use std::time::Duration;

/// Long enough for five deliveries with 1–2 s backoffs on a loaded machine.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

struct Rig {
    // Dropped last: stops moto.
    _moto: MotoServer,
    emulator: Emulator,
    stack: StackOutputs,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    deps: Deps,
    poller: SqsPoller,
}

async fn rig() -> Rig {
    let MotoStack {
        aws,
        stack,
        dynamodb,
        sqs,
        moto,
    } = MotoStack::start("exporter").await;
    let emulator = Emulator::start().await;
    let config = exporter_config(&stack, &emulator, "json");
    let mut deps = build_deps(&config, &aws)
        .await
        .expect("the exporter wires up");
    deps.settings.jitter = Jitter::Fixed(0.0);
    let poller = SqsPoller::new(
        sqs.clone(),
        stack.priority_queue_url.clone(),
        SqsPollerConfig {
            visibility_timeout: Some(Duration::from_secs(1)),
            ..SqsPollerConfig::default()
        },
    )
    .await
    .expect("the poller finds the queue");
    Rig {
        _moto: moto,
        emulator,
        dynamodb,
        sqs,
        stack,
        deps,
        poller,
    }
}

impl Rig {
    /// A platform row as the site writes it, with attributes onec-sync does not know.
    async fn put_customer(&self, id: &str, changes: Value) {
        let mut row = json!({
            "id": id,
            "email": "ivan.petrov@example.com",
            "phone": "+7 912 345-67-89",
            "first_name": "Иван",
            "last_name": "Петров",
            "role": "retail",
            "status": "active",
            "needs_1c_export": true,
            "sync_status": "pending",
            "version": 1,
            "loyalty_tier": "gold",
            "preferences": {"newsletter": true, "channels": ["email", "sms"]},
        });
        if let (Some(row), Value::Object(changes)) = (row.as_object_mut(), changes) {
            row.extend(changes);
        }
        put_row(&self.dynamodb, &self.stack.users_table, row).await;
    }

    async fn row(&self, id: &str) -> Value {
        get_row(&self.dynamodb, &self.stack.users_table, id).await
    }

    /// Sends a registration message; returns its SQS message id.
    async fn send_registration(&self, id: &str) -> String {
        let body = json!({"customer_id": id, "reason": "registration", "version": 1,
                          "changed_at": chrono::Utc::now()})
        .to_string();
        self.sqs
            .send_message()
            .queue_url(&self.stack.priority_queue_url)
            .message_body(body)
            .send()
            .await
            .expect("SendMessage")
            .message_id
            .expect("SQS names the message")
    }

    async fn drain(&self) -> SqsPollReport {
        self.poller
            .drain(|event| handle(&self.deps, event), DRAIN_LIMIT)
            .await
            .expect("the queue drains")
    }

    /// What the DLQ holds, waiting a little for a letter: on a loaded machine the redrive's
    /// move had once not shown in the DLQ when the source queue already read empty.
    async fn dead_letters(&self) -> Vec<Message> {
        self.sqs
            .receive_message()
            .queue_url(&self.stack.dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(3)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("ReceiveMessage on the DLQ")
            .messages
            .unwrap_or_default()
    }

    async fn sync_log_statuses(&self, id: &str) -> Vec<String> {
        self.dynamodb
            .query()
            .table_name(&self.stack.sync_log_table)
            .key_condition_expression("customer_id = :id")
            .expression_attribute_values(":id", AttributeValue::S(id.into()))
            .send()
            .await
            .expect("Query on the sync log")
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| item.get("status")?.as_s().ok().cloned())
            .collect()
    }
}

fn attribute(message: &Message, name: &str) -> Option<String> {
    message
        .message_attributes
        .as_ref()?
        .get(name)?
        .string_value
        .clone()
}

#[tokio::test]
async fn a_registration_reaches_1c_and_the_row_records_it_keeping_unknown_attributes() {
    // Given a registered user and its registration message
    let rig = rig().await;
    let id = platform_id();
    rig.put_customer(&id, json!({})).await;
    rig.send_registration(&id).await;

    // When the exporter consumes the queue
    let report = rig.drain().await;

    // Then 1C holds one counterparty for the user
    assert!(report.failed.is_empty());
    let held = rig.emulator.handle.find_by_platform_id(&id);
    assert_eq!(held.len(), 1);
    // And the row records the export in its bookkeeping attributes only
    let row = rig.row(&id).await;
    assert_eq!(row["onec_id"], json!(held[0].onec_id));
    assert_eq!(row["onec_version"], json!(held[0].data_version));
    assert_eq!(row["synced_version"], json!(1));
    assert_eq!(row["sync_status"], json!("synced"));
    assert_eq!(row["needs_1c_export"], json!(false));
    assert!(row["last_sync_at"].is_string());
    // And what onec-sync does not know survived the write-back untouched
    assert_eq!(row["loyalty_tier"], json!("gold"));
    assert_eq!(
        row["preferences"],
        json!({"newsletter": true, "channels": ["email", "sms"]})
    );
    assert_eq!(row["phone"], json!("+7 912 345-67-89"));
    assert_eq!(rig.sync_log_statuses(&id).await, vec!["success"]);
    rig.emulator.stop().await;
}

#[tokio::test]
async fn transient_1c_faults_are_retried_with_backoff_until_the_export_succeeds() {
    // Given 1C answering 503 twice (once as an HTML page, as a gateway would)
    let rig = rig().await;
    let id = platform_id();
    rig.put_customer(&id, json!({})).await;
    rig.emulator.script(vec![
        respond(
            503,
            "text/html",
            "<html><title>503 Service Unavailable</title></html>",
        ),
        respond(
            503,
            "application/json",
            r#"{"error":{"code":"unavailable","message":"база заблокирована"}}"#,
        ),
    ]);
    rig.send_registration(&id).await;

    // When the exporter consumes the queue
    let report = rig.drain().await;

    // Then two deliveries failed, the third exported, nothing was dead-lettered
    assert_eq!(report.failed.len(), 2);
    assert_eq!(rig.emulator.count_for(&id), 1);
    let row = rig.row(&id).await;
    assert_eq!(row["sync_status"], json!("synced"));
    assert_eq!(row["export_attempts"], json!(0));
    assert!(rig.dead_letters().await.is_empty());
    let mut statuses = rig.sync_log_statuses(&id).await;
    statuses.sort();
    assert_eq!(statuses, vec!["retrying", "retrying", "success"]);
    rig.emulator.stop().await;
}

#[tokio::test]
async fn invalid_data_is_dead_lettered_with_reason_attributes_and_not_retried() {
    // Given a legal entity whose INN fails its check digit
    let rig = rig().await;
    let id = platform_id();
    rig.put_customer(
        &id,
        json!({"company_name": "Ромашка", "tax_id": "7707083894", "kpp": "770701001"}),
    )
    .await;
    let message_id = rig.send_registration(&id).await;

    // When the exporter consumes the queue
    let report = rig.drain().await;

    // Then it was handled once, never sent to 1C, and is in the DLQ with why
    assert_eq!(report.invocations, 1);
    assert!(report.failed.is_empty());
    assert_eq!(rig.emulator.count_for(&id), 0);
    let letters = rig.dead_letters().await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        attribute(letter, "reason").as_deref(),
        Some("permanent_failure")
    );
    assert_eq!(
        attribute(letter, "error_class").as_deref(),
        Some("permanent")
    );
    assert_eq!(
        attribute(letter, "error_kind").as_deref(),
        Some("validation")
    );
    assert_eq!(attribute(letter, "customer_id"), Some(id.clone()));
    assert_eq!(attribute(letter, "original_message_id"), Some(message_id));
    assert!(attribute(letter, "error_message").is_some_and(|m| m.contains("tax_id")));
    // And the row shows the error, readable and without the INN itself
    let row = rig.row(&id).await;
    assert_eq!(row["sync_status"], json!("error"));
    let message = row["sync_error_message"].as_str().unwrap_or_default();
    assert!(message.contains("tax_id") && !message.contains("7707083894"));
    rig.emulator.stop().await;
}

#[tokio::test]
async fn when_retries_are_exhausted_the_redrive_moves_the_message_and_the_row_says_why() {
    // Given 1C down for good
    let rig = rig().await;
    let id = platform_id();
    rig.put_customer(&id, json!({})).await;
    rig.emulator.handle.set_faults(FaultPlan {
        down: true,
        ..FaultPlan::default()
    });
    rig.send_registration(&id).await;

    // When the exporter consumes the queue until SQS gives the message up
    let report = rig.drain().await;

    // Then every allowed delivery failed and the message is in the DLQ, without a reason
    // attribute because SQS, not the exporter, moved it
    assert_eq!(report.failed.len(), MAX_EXPORT_ATTEMPTS as usize);
    let letters = rig.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(attribute(&letters[0], "reason"), None);
    // And the row shows the final error
    let row = rig.row(&id).await;
    assert_eq!(row["sync_status"], json!("error"));
    assert_eq!(row["export_attempts"], json!(MAX_EXPORT_ATTEMPTS));
    assert!(
        row["sync_error_message"].as_str().is_some_and(
            |m| m.starts_with(&format!("gave up after {MAX_EXPORT_ATTEMPTS} attempts: "))
        )
    );
    rig.emulator.stop().await;
}

#[tokio::test]
async fn the_same_message_delivered_twice_yields_one_counterparty() {
    // Given one registration sent twice
    let rig = rig().await;
    let id = platform_id();
    rig.put_customer(&id, json!({})).await;
    rig.send_registration(&id).await;
    rig.send_registration(&id).await;

    // When the exporter consumes the queue
    let report = rig.drain().await;

    // Then both deliveries are done and 1C holds one counterparty
    assert!(report.failed.is_empty());
    assert_eq!(report.deleted, 2);
    assert_eq!(rig.emulator.count_for(&id), 1);
    assert_eq!(rig.row(&id).await["synced_version"], json!(1));
    rig.emulator.stop().await;
}

#[tokio::test]
async fn a_lost_response_followed_by_a_retry_creates_no_duplicate() {
    // Given 1C committing the first upsert but answering 502
    let rig = rig().await;
    let id = platform_id();
    rig.put_customer(&id, json!({})).await;
    rig.emulator.script(vec![ScriptedAnswer::CommitThenStatus {
        commit_then_status: 502,
    }]);
    rig.send_registration(&id).await;

    // When the exporter consumes the queue
    let report = rig.drain().await;

    // Then the retry updated the counterparty the lost answer created
    assert_eq!(report.failed.len(), 1);
    let held = rig.emulator.handle.find_by_platform_id(&id);
    assert_eq!(held.len(), 1);
    let row = rig.row(&id).await;
    assert_eq!(row["sync_status"], json!("synced"));
    assert_eq!(row["onec_id"], json!(held[0].onec_id));
    rig.emulator.stop().await;
}
