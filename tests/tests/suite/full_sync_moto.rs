//! The full sync end to end: real moto (users, sync-runs and sync-log tables, the bulk queue),
//! the 1C emulator (JSON transport), the production wiring (`full_sync::wiring::build_deps`);
//! only the Lambda self-invoke is played in process (the test invokes the requested
//! continuation, as Lambda would).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_sqs::types::QueueAttributeName;
use full_sync::config::FullSyncConfig;
use full_sync::ports::{
    Continuation, ContinuationError, ScanError, ScanPage, ScanSegment, TimeBudget, Unlimited,
    UserScanner,
};
use full_sync::wiring::build_deps;
use full_sync::{handle, Deps, FullSyncError, FullSyncInput, RunReport};
use futures::stream::{self, StreamExt as _};
use integration_tests::emulator::Emulator;
use integration_tests::moto_stack::{onec_settings, MotoStack};
use local_stack::{MotoServer, StackOutputs};
use onec_emulator::{CounterpartyFields, CounterpartyKind};
use serde_json::{json, Value};
use shared::domain::Customer;
use shared::message::{ExportMessage, ExportReason, Lane};
use shared::ports::{ExportQueue, QueueError};
use shared::sync_run::{Conditional, RunStatus, SyncDirection, SyncRunError, SyncRuns};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const USERS: usize = 3_000;
const CHUNK: u32 = 300;

/// Records continuation requests; the test invokes them.
#[derive(Default)]
struct InProcessContinuation {
    requested: Mutex<Vec<String>>,
}

#[async_trait]
impl Continuation for InProcessContinuation {
    async fn continue_run(&self, run_id: &str) -> Result<(), ContinuationError> {
        self.requested.lock().expect("lock").push(run_id.to_owned());
        Ok(())
    }
}

/// Plenty of time for `n` chunk boundaries, then less than the reserve.
struct ChunkBudget(AtomicUsize);

impl ChunkBudget {
    fn chunks(n: usize) -> Self {
        Self(AtomicUsize::new(n))
    }
}

impl TimeBudget for ChunkBudget {
    fn remaining(&self) -> Option<Duration> {
        let left = self.0.fetch_sub(1, Ordering::SeqCst);
        Some(Duration::from_secs(if left > 0 { 600 } else { 1 }))
    }
}

/// The real scanner, with an operator who cancels the run while page `after` is read.
struct CancellingScanner {
    inner: Arc<dyn UserScanner>,
    pages: AtomicUsize,
    after: usize,
    runs: SyncRuns,
    run_id: String,
}

#[async_trait]
impl UserScanner for CancellingScanner {
    async fn scan_page(
        &self,
        segment: ScanSegment,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ScanPage, ScanError> {
        if self.pages.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
            self.runs
                .cancel(&self.run_id, chrono::Utc::now())
                .await
                .expect("the operator's cancel");
        }
        self.inner.scan_page(segment, cursor, limit).await
    }
}

/// The real SQS adapter, recording what the queue accepted.
struct RecordingQueue {
    inner: Arc<dyn ExportQueue>,
    sent: Mutex<Vec<ExportMessage>>,
    /// Messages reported before the last `take_enqueued`.
    total: AtomicUsize,
}

#[async_trait]
impl ExportQueue for RecordingQueue {
    async fn enqueue(
        &self,
        lane: Lane,
        batch: &[ExportMessage],
    ) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        assert_eq!(lane, Lane::Bulk, "the full sync uses the bulk queue only");
        let results = self.inner.enqueue(lane, batch).await?;
        let mut sent = self.sent.lock().expect("lock");
        for (message, result) in batch.iter().zip(&results) {
            if result.is_ok() {
                sent.push(message.clone());
            }
        }
        Ok(results)
    }
}

struct Rig {
    // Dropped last: stops moto.
    _moto: MotoServer,
    emulator: Emulator,
    stack: StackOutputs,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    deps: Deps,
    continuation: Arc<InProcessContinuation>,
    queue: Arc<RecordingQueue>,
}

async fn rig() -> Rig {
    let MotoStack {
        aws,
        stack,
        dynamodb,
        sqs,
        moto,
    } = MotoStack::start("full-sync").await;
    let emulator = Emulator::start().await;
    let config = FullSyncConfig {
        users_table: stack.users_table.clone(),
        users_onec_id_index: Some(local_stack::spec::USERS_ONEC_ID_INDEX.into()),
        sync_runs_table: stack.sync_runs_table.clone(),
        sync_log_table: stack.sync_log_table.clone(),
        bulk_queue_url: stack.bulk_queue_url.clone(),
        onec: onec_settings(&emulator, "json"),
        sync_log_retention_days: 30,
        metrics_namespace: "OnecSync".into(),
        function_name: None,
    };
    let mut deps = build_deps(&config, &aws)
        .await
        .expect("the full sync wires up");
    let continuation = Arc::new(InProcessContinuation::default());
    deps.continuation = continuation.clone();
    let queue = Arc::new(RecordingQueue {
        inner: deps.queue.clone(),
        sent: Mutex::new(Vec::new()),
        total: AtomicUsize::new(0),
    });
    deps.queue = queue.clone();
    Rig {
        queue,
        _moto: moto,
        emulator,
        dynamodb,
        sqs,
        stack,
        deps,
        continuation,
    }
}

/// User `i`: every tenth was created in 1C (never exported), another tenth needs export (never
/// synced, changed since its export, retrying, or flagged in turn); the rest are in sync.
fn user_row(i: usize) -> (Value, bool) {
    let mut row = json!({
        "id": format!("user-{i:05}"),
        "email": format!("user{i}@example.com"),
        "first_name": "Иван",
        "last_name": "Петров",
        "role": "retail",
        "status": "active",
        "version": 2,
        "synced_version": 2,
        "sync_status": "synced",
        "loyalty_tier": "gold",
    });
    let needs = i % 10 == 5;
    let changes = if i.is_multiple_of(10) {
        json!({"created_in_1c": true, "synced_version": null, "sync_status": null})
    } else if needs {
        match (i / 10) % 4 {
            0 => json!({"synced_version": null, "sync_status": "pending", "needs_1c_export": true}),
            1 => json!({"version": 3}),
            2 => json!({"version": 3, "sync_status": "retrying"}),
            _ => json!({"version": 3, "needs_1c_export": true}),
        }
    } else {
        json!({})
    };
    if let (Some(row), Value::Object(changes)) = (row.as_object_mut(), changes) {
        for (name, value) in changes {
            if value.is_null() {
                row.remove(&name);
            } else {
                row.insert(name, value);
            }
        }
    }
    (row, needs)
}

impl Rig {
    /// Seeds `n` users with BatchWriteItem; returns the ids that need export.
    async fn seed(&self, n: usize) -> Vec<String> {
        let mut needing = Vec::new();
        let mut requests = Vec::with_capacity(n);
        for i in 0..n {
            let (row, needs) = user_row(i);
            if needs {
                needing.push(format!("user-{i:05}"));
            }
            let item: HashMap<String, AttributeValue> =
                serde_dynamo::to_item(row).expect("the row converts to an item");
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .expect("a put request");
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let batches: Vec<Vec<WriteRequest>> = requests.chunks(25).map(<[_]>::to_vec).collect();
        stream::iter(batches)
            .for_each_concurrent(8, |batch| async move {
                let mut pending = batch;
                while !pending.is_empty() {
                    let output = self
                        .dynamodb
                        .batch_write_item()
                        .request_items(&self.stack.users_table, pending)
                        .send()
                        .await
                        .expect("BatchWriteItem");
                    pending = output
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&self.stack.users_table))
                        .unwrap_or_default();
                }
            })
            .await;
        needing
    }

    /// What the bulk queue accepted, by customer id, since the last call; checked against the
    /// queue's own count (receiving a thousand messages from moto takes a minute).
    async fn take_enqueued(&self) -> BTreeMap<String, usize> {
        let sent = std::mem::take(&mut *self.queue.sent.lock().expect("lock"));
        let depth = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.stack.bulk_queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse::<usize>().ok())
            .expect("the queue's message count");
        let total = self.queue.total.fetch_add(sent.len(), Ordering::SeqCst) + sent.len();
        assert_eq!(depth, total, "the queue holds what was reported sent");
        let mut counts = BTreeMap::new();
        for message in sent {
            assert_eq!(message.reason, ExportReason::FullSync);
            *counts.entry(message.customer_id).or_insert(0) += 1;
        }
        counts
    }

    /// One message from the queue itself, to check what the exporter will read.
    async fn peek_bulk(&self) -> ExportMessage {
        let message = self
            .sqs
            .receive_message()
            .queue_url(&self.stack.bulk_queue_url)
            .max_number_of_messages(1)
            .visibility_timeout(600)
            .send()
            .await
            .expect("ReceiveMessage")
            .messages
            .unwrap_or_default()
            .pop()
            .expect("a message");
        serde_json::from_str(message.body().unwrap_or_default()).expect("an export message")
    }

    /// Runs `input`, then every continuation it requests, as Lambda would.
    async fn run_to_end(
        &self,
        input: FullSyncInput,
        chunks_per_invocation: usize,
    ) -> (RunReport, usize) {
        let mut input = input;
        let mut invocations = 0;
        loop {
            invocations += 1;
            let budget = ChunkBudget::chunks(chunks_per_invocation);
            let report = handle(&self.deps, &input, &budget)
                .await
                .expect("the invocation succeeds");
            if !report.continued {
                return (report, invocations);
            }
            let next = self.continuation.requested.lock().expect("lock").pop();
            input = FullSyncInput::continuation(&next.expect("a continuation was requested"));
        }
    }

    async fn user(&self, id: &str) -> Option<Customer> {
        let item = self
            .dynamodb
            .get_item()
            .table_name(&self.stack.users_table)
            .key("id", AttributeValue::S(id.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem")
            .item?;
        Some(serde_dynamo::from_item(item).expect("a customer"))
    }
}

fn once_each(ids: &[String]) -> BTreeMap<String, usize> {
    ids.iter().map(|id| (id.clone(), 1)).collect()
}

fn export(run_id: &str) -> FullSyncInput {
    FullSyncInput {
        run_id: Some(run_id.into()),
        ..FullSyncInput::start(SyncDirection::Export, CHUNK)
    }
}

#[tokio::test]
async fn an_export_full_sync_of_thousands_enqueues_every_user_needing_export_exactly_once() {
    // Given 3,000 users, a minority needing export
    let rig = rig().await;
    let needing = rig.seed(USERS).await;
    // When an export run in chunks of 300 completes
    let report = handle(&rig.deps, &export("r1"), &Unlimited)
        .await
        .expect("the run completes");
    // Then exactly the users needing export are on the bulk queue, once each
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(rig.take_enqueued().await, once_each(&needing));
    let message = rig.peek_bulk().await;
    assert!(needing.contains(&message.customer_id));
    assert_eq!(message.reason, ExportReason::FullSync);
    // And the run record in the table has the right counters and released the lock
    let stored = rig.deps.runs.require("r1").await.expect("the run record");
    assert_eq!(stored.status, RunStatus::Completed);
    assert_eq!(stored.counters.scanned, USERS as u64);
    assert_eq!(stored.counters.enqueued, needing.len() as u64);
    assert_eq!(stored.counters.errors, 0);
    assert!(
        stored.seq >= u64::from(USERS as u32 / CHUNK),
        "one write per chunk"
    );
    let control = rig.deps.runs.store().control().await.expect("control row");
    assert_eq!(control.active_run, None);
    assert_eq!(control.last_run.as_deref(), Some("r1"));
    rig.emulator.stop().await;
}

#[tokio::test]
async fn a_cancel_midway_stops_at_a_chunk_boundary_and_a_resume_finishes_without_duplicates() {
    // Given 3,000 users and an operator who cancels while the fourth chunk is read
    let mut rig = rig().await;
    let needing = rig.seed(USERS).await;
    let real = rig.deps.scanner.clone();
    rig.deps.scanner = Arc::new(CancellingScanner {
        inner: real.clone(),
        pages: AtomicUsize::new(0),
        after: 4,
        runs: rig.deps.runs.clone(),
        run_id: "r1".into(),
    });
    // When the run runs
    let report = handle(&rig.deps, &export("r1"), &Unlimited)
        .await
        .expect("the run stops cleanly");
    // Then it stopped after that chunk: four chunks scanned, their users enqueued, no more
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(report.counters.scanned, 4 * u64::from(CHUNK));
    let first = rig.take_enqueued().await;
    assert_eq!(first.len() as u64, report.counters.enqueued);
    assert!(first.values().all(|n| *n == 1));
    assert!(first.len() < needing.len());

    // When the operator resumes it
    rig.deps.scanner = real;
    let report = handle(&rig.deps, &FullSyncInput::resume("r1"), &Unlimited)
        .await
        .expect("the resume completes");
    // Then the rest is enqueued, and nobody twice over both invocations
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(report.counters.scanned, USERS as u64);
    assert_eq!(report.counters.enqueued, needing.len() as u64);
    let mut all = first;
    for (id, n) in rig.take_enqueued().await {
        *all.entry(id).or_insert(0) += n;
    }
    assert_eq!(all, once_each(&needing));
    rig.emulator.stop().await;
}

#[tokio::test]
async fn a_run_continues_across_invocations_and_a_second_start_meanwhile_is_refused() {
    // Given 3,000 users and invocations with time for three chunks each
    let rig = rig().await;
    let needing = rig.seed(USERS).await;
    let first = handle(&rig.deps, &export("r1"), &ChunkBudget::chunks(3))
        .await
        .expect("the first invocation");
    assert!(first.continued, "the run goes on in a fresh invocation");
    assert_eq!(first.counters.scanned, 3 * u64::from(CHUNK));

    // When the schedule fires again before the run has finished
    let err = handle(&rig.deps, &export("r2"), &Unlimited)
        .await
        .expect_err("a second run is refused");
    // Then the refusal names the running run, and r2 never existed
    assert!(
        matches!(&err, FullSyncError::Run(SyncRunError::AlreadyRunning { run_id, .. }) if run_id == "r1"),
        "{err}"
    );
    assert!(rig.deps.runs.get("r2").await.expect("GetItem").is_none());

    // When the continuations run, as Lambda invokes them
    let next = rig.continuation.requested.lock().expect("lock").pop();
    let (report, invocations) = rig
        .run_to_end(FullSyncInput::continuation(&next.expect("requested")), 3)
        .await;
    // Then the run completes over several invocations, every user needing export once
    assert_eq!(report.status, RunStatus::Completed);
    assert!(invocations >= 3, "{invocations} continuations");
    assert_eq!(report.counters.scanned, USERS as u64);
    assert_eq!(rig.take_enqueued().await, once_each(&needing));
    let stored = rig.deps.runs.require("r1").await.expect("the run record");
    assert_eq!(stored.invocations as usize, invocations + 1);
    rig.emulator.stop().await;
}

#[tokio::test]
async fn a_both_run_imports_1c_only_counterparties_keeps_the_watermark_and_exports_none_of_them() {
    // Given five counterparties entered in 1C, and one platform user needing export
    let rig = rig().await;
    for i in 0..5 {
        rig.emulator
            .handle
            .create_in_1c(CounterpartyFields {
                role: Some(
                    if i % 2 == 0 {
                        "Розница"
                    } else {
                        "Опт"
                    }
                    .into(),
                ),
                status: Some("Активен".into()),
                ..CounterpartyFields::new(CounterpartyKind::Individual, format!("Клиент{i} Тест"))
            })
            .expect("the emulator stores it");
    }
    let needing = rig.seed(6).await;
    assert_eq!(needing, vec!["user-00005".to_owned()]);
    // When a `both` run imports in pages of two, then exports
    let input = FullSyncInput {
        run_id: Some("b1".into()),
        ..FullSyncInput::start(SyncDirection::Both, 2)
    };
    let (report, _) = rig.run_to_end(input, usize::MAX).await;
    // Then the counterparties became users created in 1C, counted, and not exported back
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(report.counters.imported, 5);
    assert_eq!(report.counters.errors, 0);
    assert_eq!(report.counters.scanned, 6 + 5);
    assert_eq!(rig.take_enqueued().await, once_each(&needing));
    for record in rig.emulator.handle.counterparties() {
        let id = shared::import::user_id_for_counterparty(&record.onec_id);
        let user = rig.user(&id).await.expect("a user per counterparty");
        assert!(user.created_in_1c);
    }
    // And the watermark is kept on the run and for the next run
    let stored = rig.deps.runs.require("b1").await.expect("the run record");
    let control = rig.deps.runs.store().control().await.expect("control row");
    assert!(stored.import_watermark.is_some());
    assert_eq!(control.import_watermark, stored.import_watermark);

    // When the next import run starts
    let input = FullSyncInput {
        run_id: Some("i2".into()),
        ..FullSyncInput::start(SyncDirection::Import, 2)
    };
    let (report, _) = rig.run_to_end(input, usize::MAX).await;
    // Then it starts from that watermark and creates nobody again
    let next = rig.deps.runs.require("i2").await.expect("the run record");
    assert_eq!(next.import_since, control.import_watermark);
    assert_eq!(report.counters.imported, 0);
    rig.emulator.stop().await;
}

#[tokio::test]
async fn locks_left_by_finished_or_silent_runs_are_released_in_the_runs_table() {
    // Given a run that completed but whose lock release was lost
    let rig = rig().await;
    let runs = &rig.deps.runs;
    let now = chrono::Utc::now();
    runs.start(
        "old",
        SyncDirection::Export,
        10,
        1,
        now - chrono::Duration::hours(2),
    )
    .await
    .expect("start");
    runs.store()
        .transition(
            "old",
            &[RunStatus::Running],
            RunStatus::Completed,
            None,
            now - chrono::Duration::hours(1),
        )
        .await
        .expect("transition");
    assert_eq!(
        runs.store()
            .control()
            .await
            .expect("control")
            .active_run
            .as_deref(),
        Some("old")
    );
    // When a new run starts, then goes silent for longer than Lambda can run
    runs.start(
        "silent",
        SyncDirection::Export,
        10,
        1,
        now - chrono::Duration::minutes(30),
    )
    .await
    .expect("the finished holder's lock is released");
    // Then a start refuses nothing after the stale window: the silent run is failed, resumable
    let fresh = runs
        .start("fresh", SyncDirection::Import, 10, 2, now)
        .await
        .expect("the silent holder's lock is released");
    assert_eq!(fresh.export_segments.len(), 2);
    let silent = runs.require("silent").await.expect("the silent run");
    assert_eq!(silent.status, RunStatus::Failed);
    assert!(silent
        .error
        .as_deref()
        .unwrap_or("")
        .contains("presumed stopped"));
    // And while `fresh` runs, resuming `silent` is refused naming `fresh`
    let err = runs.resume("silent", now).await.expect_err("refused");
    assert!(
        matches!(&err, SyncRunError::AlreadyRunning { run_id, .. } if run_id == "fresh"),
        "{err}"
    );
    rig.emulator.stop().await;
}

#[tokio::test]
async fn a_start_or_resume_between_its_two_writes_keeps_its_lock_and_a_duplicate_start_too() {
    // Given a start that has taken the lock but not yet written its run (the other writer is
    // a second delivery of the schedule, arriving milliseconds later)
    let rig = rig().await;
    let runs = &rig.deps.runs;
    let now = chrono::Utc::now();
    let taken = runs
        .store()
        .acquire_lock("first", now)
        .await
        .expect("the lock");
    assert_eq!(taken, Conditional::Applied(()));

    // When another start comes meanwhile
    let err = runs
        .start(
            "second",
            SyncDirection::Export,
            10,
            1,
            now + chrono::Duration::seconds(1),
        )
        .await
        .expect_err("refused");

    // Then it is refused as "starting", and the lock stays with the first
    assert!(
        matches!(&err, SyncRunError::Starting { run_id, .. } if run_id == "first"),
        "{err}"
    );
    let control = runs.store().control().await.expect("control");
    assert_eq!(control.active_run.as_deref(), Some("first"));
    assert!(control.locked_at.is_some());

    // And a lock without a run, older than the grace period, is a start that died: released
    let later = now + shared::sync_run::LOCK_GRACE + chrono::Duration::seconds(1);
    runs.start("third", SyncDirection::Export, 10, 1, later)
        .await
        .expect("the dead start's lock is released");

    // And a duplicate start of the running run is refused without touching its lock
    let err = runs
        .start("third", SyncDirection::Export, 10, 1, later)
        .await
        .expect_err("a duplicate start");
    assert!(
        matches!(&err, SyncRunError::AlreadyRunning { run_id, .. } if run_id == "third"),
        "{err}"
    );
    let control = runs.store().control().await.expect("control");
    assert_eq!(control.active_run.as_deref(), Some("third"));
    rig.emulator.stop().await;
}
