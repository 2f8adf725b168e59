//! The export pipeline end to end on the local stack runner: platform writes to the users table
//! in moto, the real stream filter behind a Lambda-like stream poller, the real exporter behind
//! Lambda-like SQS pollers (priority and bulk), moto's redrive, and the 1C emulator (JSON
//! transport). Nothing is called by hand except what the platform, an operator or SQS would do.

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use integration_tests::emulator::respond;
use integration_tests::moto_stack::get_row;
use local_stack::runner::{LocalStack, LocalStackOptions};
use local_stack::stream_audit::{describe, is_moto_noop, is_own_write, ItemImages};
use local_stack::{StreamPoller, StreamPollerConfig};
use onec_emulator::ScriptedAnswer;
use serde_json::{json, Value};
use shared::domain::{Customer, SyncStatus};
use shared::filter::{decide, FilterPolicy};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Generous for a loaded CI machine; a registration normally syncs within two seconds.
const WAIT: Duration = Duration::from_secs(40);
/// No handler activity for this long means the stream poller has seen every write.
const QUIET: Duration = Duration::from_millis(1500);

struct Pipeline {
    stack: LocalStack,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
}

async fn pipeline() -> Pipeline {
    let options = LocalStackOptions {
        // One-second backoffs so retries happen within the test.
        env_overrides: [("BACKOFF_BASE_SECS", "1"), ("BACKOFF_CAP_SECS", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..LocalStackOptions::default()
    };
    let stack = LocalStack::start(options)
        .await
        .expect("the local stack starts (make setup installs moto)");
    Pipeline {
        dynamodb: aws_sdk_dynamodb::Client::new(stack.aws()),
        sqs: aws_sdk_sqs::Client::new(stack.aws()),
        stack,
    }
}

fn user(id: &str) -> Value {
    json!({
        "id": id,
        "email": "ivan.petrov@example.ru",
        "phone": "8 (912) 345-67-89",
        "first_name": "Иван",
        "last_name": "Петров",
        "tax_id": "500100732259",
        "role": "retail",
        "status": "active",
        "version": 1,
    })
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl Pipeline {
    /// The platform writes a whole row.
    async fn put(&self, row: Value) {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(row).expect("the row converts");
        self.dynamodb
            .put_item()
            .table_name(&self.stack.outputs().users_table)
            .set_item(Some(item))
            .send()
            .await
            .expect("PutItem");
    }

    async fn update(&self, id: &str, expression: &str, values: &[(&str, AttributeValue)]) {
        let mut request = self
            .dynamodb
            .update_item()
            .table_name(&self.stack.outputs().users_table)
            .key("id", s(id))
            .update_expression(expression);
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        // `#name` stands for the attribute `name` (role and status are reserved words).
        for token in expression.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '#')) {
            if let Some(name) = token.strip_prefix('#') {
                request = request.expression_attribute_names(token, name);
            }
        }
        request.send().await.expect("UpdateItem");
    }

    async fn row(&self, id: &str) -> Customer {
        get_row(&self.dynamodb, &self.stack.outputs().users_table, id).await
    }

    /// Polls the row until `done` holds.
    async fn wait_for_row(&self, id: &str, done: impl Fn(&Customer) -> bool) -> Customer {
        let deadline = Instant::now() + WAIT;
        loop {
            let row = self.row(id).await;
            if done(&row) {
                return row;
            }
            assert!(
                Instant::now() < deadline,
                "row {id} did not get there: status {:?}, synced {:?}, version {}",
                row.sync_status,
                row.synced_version,
                row.version
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_synced(&self, id: &str, version: u64) -> Customer {
        self.wait_for_row(id, |r| r.synced_version.is_some_and(|v| v >= version))
            .await
    }

    /// Waits until the stream filter has received `more` records beyond `before` and the
    /// pipeline is quiet again.
    async fn settle_after(&self, before: u64, more: u64) {
        let deadline = Instant::now() + WAIT;
        while self.stack.stats().filter_records.load(Ordering::Relaxed) < before + more {
            assert!(
                Instant::now() < deadline,
                "the stream filter never saw the writes"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            self.stack.settle(QUIET, WAIT).await.expect("queue depth"),
            "the pipeline did not settle"
        );
    }

    fn filter_records(&self) -> u64 {
        self.stack.stats().filter_records.load(Ordering::Relaxed)
    }

    fn enqueued(&self) -> u64 {
        self.stack.stats().filter_enqueued.load(Ordering::Relaxed)
    }

    fn counterparties_for(&self, id: &str) -> usize {
        self.stack.emulator().find_by_platform_id(id).len()
    }

    async fn dead_letters(&self) -> Vec<Message> {
        let mut all = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.stack.outputs().dlq_url)
                .max_number_of_messages(10)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .expect("ReceiveMessage on the DLQ")
                .messages
                .unwrap_or_default();
            if received.is_empty() {
                return all;
            }
            all.extend(received);
        }
    }

    async fn send_registration(&self, id: &str) {
        let body = json!({"customer_id": id, "reason": "registration", "version": 1,
                          "changed_at": chrono::Utc::now()});
        self.sqs
            .send_message()
            .queue_url(&self.stack.outputs().priority_queue_url)
            .message_body(body.to_string())
            .send()
            .await
            .expect("SendMessage");
    }

    /// Every record of the users-table stream, read by a second consumer from the start.
    async fn stream_records(&self) -> Vec<EventRecord> {
        let mut poller = StreamPoller::new(
            aws_sdk_dynamodbstreams::Client::new(self.stack.aws()),
            self.stack.outputs().users_stream_arn.clone(),
            StreamPollerConfig {
                batch_size: 1000,
                ..StreamPollerConfig::default()
            },
        );
        let records = std::sync::Mutex::new(Vec::new());
        poller
            .drain(|event| {
                records
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(event.records);
                async { Ok::<_, Infallible>(DynamoDbEventResponse::default()) }
            })
            .await
            .expect("the stream reads");
        records
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn policy(&self) -> FilterPolicy {
        let env = self.stack.function_env().clone();
        stream_filter::FilterConfig::from_lookup(&move |name: &str| env.get(name).cloned())
            .expect("the filter's configuration")
            .policy
    }
}

fn attribute(message: &Message, name: &str) -> Option<String> {
    message
        .message_attributes()?
        .get(name)?
        .string_value()
        .map(str::to_owned)
}

#[tokio::test]
async fn a_registration_becomes_a_counterparty_in_1c_and_the_row_gets_its_onec_id() {
    // Given the running pipeline
    let p = pipeline().await;
    let id = new_id();

    // When the platform registers a user
    p.put(user(&id)).await;

    // Then the row records the export with 1C's reference
    let row = p.wait_synced(&id, 1).await;
    assert_eq!(row.sync_status, Some(SyncStatus::Synced));
    assert!(!row.needs_1c_export);
    let held = p.stack.emulator().find_by_platform_id(&id);
    assert_eq!(held.len(), 1);
    assert_eq!(row.onec_id.as_deref(), Some(held[0].onec_id.as_str()));
    // And 1C holds the mapped data (phone normalised, role translated)
    assert_eq!(held[0].fields.phone.as_deref(), Some("+79123456789"));
    assert_eq!(held[0].fields.role.as_deref(), Some("Розница"));
    p.stack.stop().await;
}

#[tokio::test]
async fn a_significant_profile_change_updates_the_counterparty_in_1c() {
    // Given an exported user
    let p = pipeline().await;
    let id = new_id();
    p.put(user(&id)).await;
    let exported = p.wait_synced(&id, 1).await;

    // When the platform changes the phone and the last name
    p.update(
        &id,
        "SET phone = :phone, last_name = :last, version = :v",
        &[
            (":phone", s("+7 916 000 11 22")),
            (":last", s("Сидоров")),
            (":v", n(2)),
        ],
    )
    .await;

    // Then the same counterparty in 1C carries the new data
    let row = p.wait_synced(&id, 2).await;
    assert_eq!(row.onec_id, exported.onec_id);
    let held = p.stack.emulator().find_by_platform_id(&id);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].fields.phone.as_deref(), Some("+79160001122"));
    assert_eq!(held[0].fields.last_name.as_deref(), Some("Сидоров"));
    p.stack.stop().await;
}

#[tokio::test]
async fn bookkeeping_only_and_1c_originated_writes_enqueue_nothing() {
    // Given an exported user and a quiet pipeline
    let p = pipeline().await;
    let id = new_id();
    p.put(user(&id)).await;
    p.wait_synced(&id, 1).await;
    p.settle_after(0, 3).await;
    let (enqueued, records) = (p.enqueued(), p.filter_records());
    let onec_writes = p.stack.emulator().stats();

    // When onec-sync's own attributes change, and the 1C import writes 1C's role with the
    // version it brings into sync
    p.update(
        &id,
        "SET last_sync_at = :at, export_attempts = :zero, sync_error_message = :empty",
        &[
            (":at", s("2026-11-28T12:00:00Z")),
            (":zero", n(0)),
            (":empty", s("")),
        ],
    )
    .await;
    p.update(
        &id,
        "SET #role = :role, version = :v, synced_version = :v, last_change_source = :src",
        &[(":role", s("wholesale")), (":v", n(2)), (":src", s("1c"))],
    )
    .await;
    p.settle_after(records, 2).await;

    // Then the filter enqueued nothing and 1C saw no request
    assert_eq!(p.enqueued(), enqueued);
    let after = p.stack.emulator().stats();
    assert_eq!(after.creates, onec_writes.creates);
    assert_eq!(after.updates, onec_writes.updates);
    p.stack.stop().await;
}

#[tokio::test]
async fn users_created_in_1c_are_never_exported_even_when_the_platform_edits_them() {
    // Given a user the 1C import created
    let p = pipeline().await;
    let id = new_id();
    let mut row = user(&id);
    row["created_in_1c"] = json!(true);
    row["onec_id"] = json!("3f2c9a1e-7b4d-4e8a-9c1f-0000000000aa");
    row["synced_version"] = json!(1);
    row["sync_status"] = json!("synced");
    let records = p.filter_records();
    p.put(row).await;

    // When the platform later changes a significant field of it
    p.update(
        &id,
        "SET phone = :phone, version = :v",
        &[(":phone", s("+79160001122")), (":v", n(2))],
    )
    .await;
    p.settle_after(records, 2).await;

    // Then nothing was enqueued and 1C never heard of it
    assert_eq!(p.enqueued(), 0);
    assert_eq!(p.counterparties_for(&id), 0);
    assert_eq!(p.stack.emulator().stats().requests_total(), 0);
    p.stack.stop().await;
}

#[tokio::test]
async fn transient_1c_faults_are_retried_with_backoff_until_the_user_is_synced() {
    // Given 1C answering 503 (as a gateway's HTML page), then 429 with Retry-After
    let p = pipeline().await;
    p.stack.emulator().script(vec![
        respond(503, "text/html", "<html><title>503</title></html>"),
        ScriptedAnswer::Respond {
            status: 429,
            content_type: Some("application/json".into()),
            body: r#"{"error":{"code":"rate_limited","message":"slow down"}}"#.into(),
            headers: [("Retry-After".to_owned(), "1".to_owned())].into(),
        },
    ]);
    let id = new_id();

    // When a user registers
    p.put(user(&id)).await;

    // Then the row shows the retries, and the export succeeds on the third delivery
    let row = p.wait_synced(&id, 1).await;
    assert_eq!(row.sync_status, Some(SyncStatus::Synced));
    assert_eq!(row.export_attempts, 0, "a success resets the attempt count");
    assert!(p.stack.stats().exporter_retries.load(Ordering::Relaxed) >= 2);
    assert_eq!(p.counterparties_for(&id), 1);
    // And nothing went to the DLQ
    assert!(p.dead_letters().await.is_empty());
    p.stack.stop().await;
}

#[tokio::test]
async fn a_permanent_error_sets_status_error_dead_letters_the_message_and_is_not_retried() {
    // Given a user whose INN fails its check digit
    let p = pipeline().await;
    let id = new_id();
    let mut row = user(&id);
    row["tax_id"] = json!("500100732258");
    let records = p.filter_records();

    // When it registers
    p.put(row).await;

    // Then the row says why, without the value
    let row = p
        .wait_for_row(&id, |r| r.sync_status == Some(SyncStatus::Error))
        .await;
    let message = row.sync_error_message.unwrap_or_default();
    assert!(message.contains("tax_id"), "{message}");
    assert!(!message.contains("500100732258"));
    // And the message sits in the DLQ with the reason
    p.settle_after(records, 3).await;
    let letters = p.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(
        attribute(&letters[0], "reason").as_deref(),
        Some("permanent_failure")
    );
    assert_eq!(
        attribute(&letters[0], "customer_id").as_deref(),
        Some(id.as_str())
    );
    // And it was delivered once: no retry, no 1C call
    assert_eq!(p.stack.stats().exporter_messages.load(Ordering::Relaxed), 1);
    assert_eq!(p.stack.stats().exporter_retries.load(Ordering::Relaxed), 0);
    assert_eq!(p.stack.emulator().stats().requests_total(), 0);
    assert_eq!(p.counterparties_for(&id), 0);
    p.stack.stop().await;
}

#[tokio::test]
async fn a_lost_response_and_repeated_deliveries_still_yield_one_counterparty() {
    // Given 1C committing the first write but the answer failing (a proxy's 502)
    let p = pipeline().await;
    p.stack
        .emulator()
        .script(vec![ScriptedAnswer::CommitThenStatus {
            commit_then_status: 502,
        }]);
    let id = new_id();

    // When the user registers and the same registration is delivered twice more
    p.put(user(&id)).await;
    p.send_registration(&id).await;
    p.send_registration(&id).await;
    let row = p.wait_synced(&id, 1).await;
    let records = p.filter_records();
    p.settle_after(records, 0).await;

    // Then the lost answer was retried and every copy was handled
    let stats = p.stack.stats();
    assert!(stats.exporter_retries.load(Ordering::Relaxed) >= 1);
    assert!(stats.exporter_messages.load(Ordering::Relaxed) >= 4);
    // And 1C holds exactly one counterparty for the user, the one on the row
    let held = p.stack.emulator().find_by_platform_id(&id);
    assert_eq!(held.len(), 1);
    assert_eq!(row.onec_id.as_deref(), Some(held[0].onec_id.as_str()));
    assert!(p.dead_letters().await.is_empty());
    p.stack.stop().await;
}

#[tokio::test]
async fn the_stream_stays_bounded_and_no_record_caused_by_onec_sync_itself_produces_a_message() {
    // Given the pipeline, with 1C failing the first exports transiently (a gateway's 503, a
    // 429 with Retry-After, a committed write whose answer is lost), so retries happen
    let p = pipeline().await;
    p.stack.emulator().script(vec![
        respond(503, "text/html", "<html><title>503</title></html>"),
        ScriptedAnswer::Respond {
            status: 429,
            content_type: Some("application/json".into()),
            body: r#"{"error":{"code":"rate_limited","message":"slow down"}}"#.into(),
            headers: [("Retry-After".to_owned(), "1".to_owned())].into(),
        },
        ScriptedAnswer::CommitThenStatus {
            commit_then_status: 502,
        },
    ]);
    let policy = p.policy();
    let mut platform_writes: HashMap<String, u64> = HashMap::new();
    let mut system_writes: HashMap<String, u64> = HashMap::new();

    // When the platform registers users (one invalid), one created in 1C, edits a profile,
    // and onec-sync's bookkeeping and the 1C import write to the same rows
    let ids: Vec<String> = (0..3).map(|_| new_id()).collect();
    for id in &ids {
        p.put(user(id)).await;
        *platform_writes.entry(id.clone()).or_default() += 1;
    }
    let invalid = new_id();
    let mut bad = user(&invalid);
    bad["email"] = json!("ivan.petrov.example.ru");
    p.put(bad).await;
    *platform_writes.entry(invalid.clone()).or_default() += 1;
    let from_1c = new_id();
    let mut imported = user(&from_1c);
    imported["created_in_1c"] = json!(true);
    imported["synced_version"] = json!(1);
    p.put(imported).await;
    *system_writes.entry(from_1c.clone()).or_default() += 1;
    for id in &ids {
        p.wait_synced(id, 1).await;
    }
    p.update(
        &ids[0],
        "SET phone = :phone, version = :v",
        &[(":phone", s("+79160001122")), (":v", n(2))],
    )
    .await;
    *platform_writes.entry(ids[0].clone()).or_default() += 1;
    p.wait_synced(&ids[0], 2).await;
    p.update(&ids[1], "SET export_attempts = :zero", &[(":zero", n(0))])
        .await;
    *system_writes.entry(ids[1].clone()).or_default() += 1;
    p.update(
        &ids[2],
        "SET #status = :st, version = :v, synced_version = :v, last_change_source = :src",
        &[(":st", s("blocked")), (":v", n(2)), (":src", s("1c"))],
    )
    .await;
    *system_writes.entry(ids[2].clone()).or_default() += 1;
    p.wait_for_row(&invalid, |r| r.sync_status == Some(SyncStatus::Error))
        .await;
    p.settle_after(0, 17).await;

    // Then the exports were retried, and retries added no stream record: every user's records
    // number at most three per platform write (the write, the filter's flag, the exporter's
    // outcome) plus the writes made on onec-sync's behalf
    assert!(p.stack.stats().exporter_retries.load(Ordering::Relaxed) >= 3);
    // (records that only moto writes, for a write that changed nothing or one that lost a
    // conditional race DynamoDB would have serialised, are left out: `local_stack::stream_audit`)
    let records = p.stream_records().await;
    let mut per_user: HashMap<String, u64> = HashMap::new();
    let mut images = ItemImages::default();
    for record in &records {
        let Some(serde_dynamo::AttributeValue::S(id)) = record.change.keys.get("id") else {
            panic!("a stream record without the key");
        };
        if images.follows(id, record) && !is_moto_noop(record) {
            *per_user.entry(id.clone()).or_default() += 1;
        }
    }
    for (id, count) in &per_user {
        let bound = 3 * platform_writes.get(id).copied().unwrap_or(0)
            + system_writes.get(id).copied().unwrap_or(0);
        assert!(
            *count <= bound,
            "{id}: {count} records for a bound of {bound}"
        );
    }
    // And no record whose change is onec-sync's own (bookkeeping only, or a write that
    // brings the row in sync) would produce a message
    let mut messages = 0;
    for record in &records {
        let decision = decide(record, &policy).expect("every record is readable");
        if decision.message().is_some() {
            messages += 1;
        }
        if is_own_write(record) {
            assert!(
                decision.message().is_none(),
                "{} produced a message",
                describe(record)
            );
        }
    }
    // And what the filter enqueued is exactly that: four registrations and one profile change
    assert_eq!(messages, 5);
    assert_eq!(p.enqueued(), 5);
    p.stack.stop().await;
}

#[tokio::test]
async fn a_periodic_task_runs_on_its_schedule_and_stopping_the_stack_leaves_nothing_running() {
    // Given the stack with a task scheduled every 100 ms (the full sync's seam)
    let mut p = pipeline().await;
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = ticks.clone();
    p.stack
        .spawn_periodic("tick", Duration::from_millis(100), move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
    let moto_pid = p.stack.moto().and_then(|m| m.pid());
    let emulator = p.stack.emulator().addr();

    // When it has ticked a few times and the stack stops
    let started = Instant::now();
    while ticks.load(Ordering::Relaxed) < 3 {
        assert!(started.elapsed() < WAIT, "the periodic task never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let Pipeline { stack, .. } = p;
    stack.stop().await;
    let after_stop = ticks.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Then it ran no more often than its interval allows, and not after the stop
    let allowed = elapsed.as_millis() / 100 + 2;
    assert!(
        u128::from(after_stop) <= allowed,
        "{after_stop} ticks in {elapsed:?}"
    );
    assert_eq!(ticks.load(Ordering::Relaxed), after_stop);
    // And moto and the emulator are gone
    if let Some(pid) = moto_pid {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "moto's watchdog still runs"
        );
    }
    assert!(tokio::net::TcpStream::connect(emulator).await.is_err());
}
