//! The full-sync handler over in-memory ports: chunking, counters, cancel at a chunk boundary,
//! resume, the one-run lock, continuation near the deadline, import paging and failures.

use async_trait::async_trait;
use full_sync::ports::{
    Continuation, ContinuationError, ImportFailure, ImportedPage, PageImporter, ScanError,
    ScanPage, ScanSegment, TimeBudget, Unlimited, UserScanner,
};
use full_sync::{handle, Deps, FullSyncError, FullSyncInput, Settings};
use shared::domain::{Customer, SyncStatus};
use shared::error::ErrorClass;
use shared::message::{ExportReason, Lane};
use shared::metrics::Metrics;
use shared::sync_run::memory::MemorySyncRunStore;
use shared::sync_run::{RunPhase, RunStatus, SyncDirection, SyncRunError, SyncRunStore, SyncRuns};
use shared::testing::FakeExportQueue;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The users table in id order; the cursor is the last id returned. Segment `i` of `n` holds
/// the users whose position modulo `n` is `i`.
#[derive(Default)]
struct FakeScanner {
    users: Vec<Customer>,
    pages: AtomicUsize,
    /// After this many pages, cancel this run (an operator acting mid-run).
    cancel_after: Mutex<Option<(usize, SyncRuns, String)>>,
    fail_next: AtomicBool,
}

impl FakeScanner {
    fn new(users: Vec<Customer>) -> Self {
        let mut users = users;
        users.sort_by(|a, b| a.id.cmp(&b.id));
        Self {
            users,
            ..Self::default()
        }
    }
}

#[async_trait]
impl UserScanner for FakeScanner {
    async fn scan_page(
        &self,
        segment: ScanSegment,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ScanPage, ScanError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(ScanError::Request {
                table: "users".into(),
                class: ErrorClass::Transient,
                source: "throttled".into(),
            });
        }
        let rest: Vec<&Customer> = self
            .users
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u32 % segment.total == segment.index)
            .map(|(_, u)| u)
            .filter(|u| cursor.is_none_or(|c| u.id.as_str() > c))
            .collect();
        let users: Vec<Customer> = rest
            .iter()
            .take(limit as usize)
            .map(|u| (*u).clone())
            .collect();
        let next_cursor = (rest.len() > users.len())
            .then(|| users.last().map(|u| u.id.clone()))
            .flatten();
        let pages = self.pages.fetch_add(1, Ordering::SeqCst) + 1;
        let cancel = self.cancel_after.lock().expect("lock").clone();
        if let Some((after, runs, run_id)) = cancel {
            if pages == after {
                runs.cancel(&run_id, chrono::Utc::now())
                    .await
                    .expect("cancel");
            }
        }
        Ok(ScanPage {
            users,
            undecodable: 0,
            next_cursor,
        })
    }
}

/// A change feed of `pages` pages, each `items` items; the cursor is the page number.
struct FakeImporter {
    pages: usize,
    calls: Mutex<Vec<(Option<String>, Option<String>)>>,
}

#[async_trait]
impl PageImporter for FakeImporter {
    async fn import_page(
        &self,
        watermark: Option<&str>,
        cursor: Option<&str>,
        _page_size: u32,
    ) -> Result<ImportedPage, ImportFailure> {
        self.calls
            .lock()
            .expect("lock")
            .push((watermark.map(str::to_owned), cursor.map(str::to_owned)));
        let page: usize = cursor
            .map_or(Ok(0), str::parse)
            .map_err(|err| ImportFailure {
                class: ErrorClass::Permanent,
                kind: "cursor",
                source: Box::new(err),
            })?;
        let next = page + 1;
        Ok(ImportedPage {
            imported: 1,
            updated: 2,
            conflicts: 1,
            errors: 0,
            unchanged: 3,
            next_cursor: (next < self.pages).then(|| next.to_string()),
            watermark: Some(format!("2026-11-28T00:00:0{page}")),
        })
    }
}

/// Records continuation requests; the test plays Lambda and invokes them.
#[derive(Default)]
struct FakeContinuation {
    requested: Mutex<Vec<String>>,
}

#[async_trait]
impl Continuation for FakeContinuation {
    async fn continue_run(&self, run_id: &str) -> Result<(), ContinuationError> {
        self.requested.lock().expect("lock").push(run_id.to_owned());
        Ok(())
    }
}

/// Plenty of time for `chunks` chunk boundaries, then too little.
struct ChunkBudget {
    left: AtomicUsize,
}

impl TimeBudget for ChunkBudget {
    fn remaining(&self) -> Option<Duration> {
        let before = self.left.fetch_sub(1, Ordering::SeqCst);
        Some(if before > 0 {
            Duration::from_secs(600)
        } else {
            Duration::from_secs(1)
        })
    }
}

struct Rig {
    deps: Deps,
    store: Arc<MemorySyncRunStore>,
    scanner: Arc<FakeScanner>,
    queue: Arc<FakeExportQueue>,
    importer: Arc<FakeImporter>,
    continuation: Arc<FakeContinuation>,
}

fn rig(users: Vec<Customer>) -> Rig {
    let store = Arc::new(MemorySyncRunStore::new());
    let scanner = Arc::new(FakeScanner::new(users));
    let queue = Arc::new(FakeExportQueue::new());
    let importer = Arc::new(FakeImporter {
        pages: 3,
        calls: Mutex::new(Vec::new()),
    });
    let continuation = Arc::new(FakeContinuation::default());
    let deps = Deps {
        runs: SyncRuns::new(store.clone()),
        scanner: scanner.clone(),
        queue: queue.clone(),
        importer: importer.clone(),
        continuation: continuation.clone(),
        metrics: Arc::new(Metrics::new("OnecSync", "full-sync")),
        settings: Settings::default(),
    };
    Rig {
        deps,
        store,
        scanner,
        queue,
        importer,
        continuation,
    }
}

/// `n` users: every third needs export (alternating the reasons), the rest are in sync, and
/// every tenth was created in 1C (never exported). Returns them and the ids needing export.
fn users(n: usize) -> (Vec<Customer>, Vec<String>) {
    let mut needing = Vec::new();
    let users = (0..n)
        .map(|i| {
            let mut user = Customer {
                id: format!("user-{i:05}"),
                version: 2,
                synced_version: Some(2),
                sync_status: Some(SyncStatus::Synced),
                ..Customer::default()
            };
            if i % 10 == 0 {
                user.created_in_1c = true;
                user.synced_version = None;
            } else if i % 3 == 0 {
                match i % 4 {
                    0 => user.synced_version = None,
                    1 => user.version = 3,
                    2 => {
                        user.version = 3;
                        user.sync_status = Some(SyncStatus::Retrying);
                    }
                    _ => {
                        user.version = 3;
                        user.needs_1c_export = true;
                    }
                }
                needing.push(user.id.clone());
            }
            user
        })
        .collect();
    (users, needing)
}

fn export_input(run_id: &str, chunk_size: u32) -> FullSyncInput {
    FullSyncInput {
        run_id: Some(run_id.into()),
        ..FullSyncInput::start(SyncDirection::Export, chunk_size)
    }
}

fn enqueued_counts(queue: &FakeExportQueue) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for msg in queue.sent_to(Lane::Bulk) {
        assert_eq!(msg.reason, ExportReason::FullSync);
        *counts.entry(msg.customer_id).or_insert(0) += 1;
    }
    counts
}

fn assert_each_once(queue: &FakeExportQueue, expected: &[String]) {
    let counts = enqueued_counts(queue);
    let expected: BTreeMap<String, usize> = expected.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(counts, expected);
}

#[tokio::test]
async fn an_export_run_enqueues_every_user_needing_export_exactly_once_in_chunks() {
    // Given 1,000 users, a third of them needing export
    let (users, needing) = users(1000);
    let rig = rig(users);
    // When an export run with chunks of 90 runs to the end
    let report = handle(&rig.deps, &export_input("r1", 90), &Unlimited)
        .await
        .expect("the run completes");
    // Then exactly those users are enqueued, each once, and the counters say so
    assert_eq!(report.status, RunStatus::Completed);
    assert_each_once(&rig.queue, &needing);
    assert_eq!(report.counters.scanned, 1000);
    assert_eq!(report.counters.enqueued, needing.len() as u64);
    assert_eq!(report.counters.errors, 0);
    // 12 pages of 90 (the last one short), each persisted
    assert_eq!(rig.scanner.pages.load(Ordering::SeqCst), 12);
    let stored = rig.store.get("r1").await.expect("get").expect("stored");
    assert_eq!(stored.seq, 12);
    assert_eq!(stored.phase, RunPhase::Done);
    assert!(stored.finished_at.is_some());
    // And the lock is free for the next run
    assert_eq!(rig.store.control().await.expect("control").active_run, None);
}

#[tokio::test]
async fn parallel_segments_cover_the_table_once() {
    // Given 500 users scanned in 4 segments
    let (users, needing) = users(500);
    let rig = rig(users);
    let input = FullSyncInput {
        segments: Some(4),
        ..export_input("r1", 50)
    };
    // When the run completes
    let report = handle(&rig.deps, &input, &Unlimited)
        .await
        .expect("completes");
    // Then every row was scanned once and every user needing export enqueued once
    assert_eq!(report.counters.scanned, 500);
    assert_each_once(&rig.queue, &needing);
}

#[tokio::test]
async fn a_cancel_stops_the_run_at_the_next_chunk_boundary_and_a_resume_finishes_it() {
    // Given 1,000 users and an operator who cancels while the third chunk is scanned
    let (users, needing) = users(1000);
    let rig = rig(users);
    *rig.scanner.cancel_after.lock().expect("lock") = Some((3, rig.deps.runs.clone(), "r1".into()));
    // When the run runs
    let report = handle(&rig.deps, &export_input("r1", 100), &Unlimited)
        .await
        .expect("the run stops cleanly");
    // Then it stopped after that chunk, with the chunk's progress kept
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(report.counters.scanned, 300);
    let sent_before = enqueued_counts(&rig.queue);
    let expected_before = needing
        .iter()
        .filter(|id| id.as_str() < "user-00300")
        .count();
    assert_eq!(sent_before.len(), expected_before);
    assert_eq!(report.counters.enqueued, expected_before as u64);

    // When it is resumed
    *rig.scanner.cancel_after.lock().expect("lock") = None;
    let report = handle(&rig.deps, &FullSyncInput::resume("r1"), &Unlimited)
        .await
        .expect("the resume completes");
    // Then the rest is done and nobody was enqueued twice
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(report.counters.scanned, 1000);
    assert_eq!(report.counters.enqueued, needing.len() as u64);
    assert_each_once(&rig.queue, &needing);
}

#[tokio::test]
async fn a_second_start_while_a_run_is_active_is_refused_with_its_id() {
    // Given a run that continues in another invocation (so it still holds the lock)
    let (users, _) = users(300);
    let rig = rig(users);
    let budget = ChunkBudget {
        left: AtomicUsize::new(1),
    };
    let first = handle(&rig.deps, &export_input("r1", 100), &budget)
        .await
        .expect("first invocation");
    assert!(first.continued);
    // When the schedule fires again
    let err = handle(&rig.deps, &export_input("r2", 100), &Unlimited)
        .await
        .expect_err("refused");
    // Then it is refused, naming the running run, and nothing of r2 exists
    assert!(
        matches!(&err, FullSyncError::Run(SyncRunError::AlreadyRunning { run_id, .. }) if run_id == "r1"),
        "{err}"
    );
    assert!(err.to_string().contains("r1"));
    assert!(rig.store.get("r2").await.expect("get").is_none());
}

#[tokio::test]
async fn a_run_near_its_deadline_continues_in_fresh_invocations_from_its_cursor() {
    // Given 1,000 users and invocations that each have time for 3 chunks
    let (users, needing) = users(1000);
    let rig = rig(users);
    let mut input = export_input("r1", 100);
    let mut invocations = 0;
    // When each requested continuation is invoked, as Lambda would
    let report = loop {
        invocations += 1;
        let budget = ChunkBudget {
            left: AtomicUsize::new(3),
        };
        let report = handle(&rig.deps, &input, &budget)
            .await
            .expect("invocation");
        if !report.continued {
            break report;
        }
        let requested = rig.continuation.requested.lock().expect("lock").pop();
        input = FullSyncInput::continuation(&requested.expect("a continuation was requested"));
    };
    // Then four invocations finished the run, every user needing export enqueued once
    assert_eq!(invocations, 4);
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(report.counters.scanned, 1000);
    assert_each_once(&rig.queue, &needing);
    let stored = rig.store.get("r1").await.expect("get").expect("stored");
    assert_eq!(stored.invocations, 4);
}

#[tokio::test]
async fn a_continuation_of_a_finished_run_does_nothing() {
    // Given a completed run
    let (users, _) = users(10);
    let rig = rig(users);
    handle(&rig.deps, &export_input("r1", 100), &Unlimited)
        .await
        .expect("completes");
    let sent = rig.queue.sent().len();
    // When a late continuation arrives
    let err = handle(&rig.deps, &FullSyncInput::continuation("r1"), &Unlimited)
        .await
        .expect_err("refused");
    // Then it is refused and nothing is enqueued again
    assert!(matches!(err, FullSyncError::NotContinuable { .. }));
    assert_eq!(rig.queue.sent().len(), sent);
}

#[tokio::test]
async fn a_failed_scan_fails_the_run_resumably_without_losing_a_chunk() {
    // Given a scan that fails on the first page of the second invocation's work
    let (users, needing) = users(400);
    let rig = rig(users);
    let budget = ChunkBudget {
        left: AtomicUsize::new(2),
    };
    handle(&rig.deps, &export_input("r1", 100), &budget)
        .await
        .expect("first invocation");
    rig.scanner.fail_next.store(true, Ordering::SeqCst);
    // When the continuation runs into the failure
    let err = handle(&rig.deps, &FullSyncInput::continuation("r1"), &Unlimited)
        .await
        .expect_err("fails");
    // Then the run is failed with the cause, and a resume completes it, nobody twice
    assert!(matches!(err, FullSyncError::Scan { .. }));
    let failed = rig.store.get("r1").await.expect("get").expect("stored");
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(failed.error.as_deref().unwrap_or("").contains("throttled"));
    assert_eq!(rig.store.control().await.expect("control").active_run, None);
    let report = handle(&rig.deps, &FullSyncInput::resume("r1"), &Unlimited)
        .await
        .expect("resume completes");
    assert_eq!(report.counters.scanned, 400);
    assert_each_once(&rig.queue, &needing);
}

#[tokio::test]
async fn an_import_run_pages_through_1c_and_keeps_the_watermark_for_the_next_run() {
    // Given a change feed of three pages
    let rig = rig(Vec::new());
    let input = FullSyncInput {
        run_id: Some("i1".into()),
        ..FullSyncInput::start(SyncDirection::Import, 100)
    };
    // When an import run completes
    let report = handle(&rig.deps, &input, &Unlimited)
        .await
        .expect("completes");
    // Then the counters sum the pages and nothing was exported
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(report.counters.imported, 3);
    assert_eq!(report.counters.updated, 6);
    assert_eq!(report.counters.conflicts, 3);
    assert_eq!(report.counters.unchanged, 9);
    assert_eq!(report.counters.scanned, 0);
    assert!(rig.queue.sent().is_empty());
    // And the pages were read with the cursor, and the last watermark stored
    let calls = rig.importer.calls.lock().expect("lock").clone();
    assert_eq!(
        calls,
        vec![
            (None, None),
            (None, Some("1".into())),
            (None, Some("2".into()))
        ]
    );
    let control = rig.store.control().await.expect("control");
    assert_eq!(
        control.import_watermark.as_deref(),
        Some("2026-11-28T00:00:02")
    );

    // When the next import run starts
    rig.importer.calls.lock().expect("lock").clear();
    let input = FullSyncInput {
        run_id: Some("i2".into()),
        ..FullSyncInput::start(SyncDirection::Import, 100)
    };
    handle(&rig.deps, &input, &Unlimited)
        .await
        .expect("completes");
    // Then it starts from that watermark
    let calls = rig.importer.calls.lock().expect("lock").clone();
    assert_eq!(calls[0], (Some("2026-11-28T00:00:02".into()), None));
}

#[tokio::test]
async fn both_imports_first_then_exports() {
    // Given users and a change feed
    let (users, needing) = users(200);
    let rig = rig(users);
    let input = FullSyncInput {
        run_id: Some("b1".into()),
        ..FullSyncInput::start(SyncDirection::Both, 100)
    };
    // When a `both` run completes
    let report = handle(&rig.deps, &input, &Unlimited)
        .await
        .expect("completes");
    // Then it did both halves
    assert_eq!(report.counters.imported, 3);
    assert_eq!(report.counters.scanned, 200);
    assert_each_once(&rig.queue, &needing);
}

#[tokio::test]
async fn messages_the_queue_refuses_fail_the_chunk_so_a_resume_sends_them_again() {
    // Given a queue that refuses one user's message (transiently)
    let (users, needing) = users(100);
    let rig = rig(users);
    rig.queue.refuse_customer(&needing[0]);
    // When the run meets it
    let err = handle(&rig.deps, &export_input("r1", 50), &Unlimited)
        .await
        .expect_err("fails");
    // Then the run fails without storing that chunk's cursor
    assert!(matches!(err, FullSyncError::Queue { .. }));
    let failed = rig.store.get("r1").await.expect("get").expect("stored");
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.counters.scanned, 0);
}

#[tokio::test]
async fn an_answer_without_a_result_for_every_message_fails_the_chunk() {
    // Given a queue whose answers leave out one message's result
    let (users, _) = users(100);
    let rig = rig(users);
    rig.queue.set_short_answers(true);
    // When the run enqueues a chunk
    let err = handle(&rig.deps, &export_input("r1", 50), &Unlimited)
        .await
        .expect_err("fails");
    // Then the message without a result is not taken for sent: the chunk fails, its cursor
    // is not stored, and a resume sends it again
    assert!(matches!(err, FullSyncError::Queue { .. }), "{err}");
    let failed = rig.store.get("r1").await.expect("get").expect("stored");
    assert_eq!(failed.counters.scanned, 0);
}

#[tokio::test]
async fn contradictory_or_out_of_range_inputs_are_refused() {
    let rig = rig(Vec::new());
    let bad: Vec<FullSyncInput> = vec![
        FullSyncInput::default(),
        FullSyncInput::start(SyncDirection::Export, 0),
        FullSyncInput::start(SyncDirection::Export, 10_001),
        FullSyncInput {
            resume: Some("r".into()),
            ..FullSyncInput::start(SyncDirection::Export, 10)
        },
        FullSyncInput {
            segments: Some(0),
            ..FullSyncInput::start(SyncDirection::Export, 10)
        },
    ];
    for input in bad {
        let err = handle(&rig.deps, &input, &Unlimited)
            .await
            .expect_err("refused");
        assert!(matches!(err, FullSyncError::Input(_)), "{input:?}");
    }
    // And the schedule's JSON, with unknown fields refused
    let parsed: FullSyncInput =
        serde_json::from_str(r#"{"direction":"both","chunk_size":500}"#).expect("schedule input");
    assert_eq!(parsed, FullSyncInput::start(SyncDirection::Both, 500));
    assert!(serde_json::from_str::<FullSyncInput>(r#"{"direction":"both","chunk":5}"#).is_err());
}

#[test]
fn the_sample_schedule_inputs_are_starts_of_their_direction() {
    let samples = [
        (
            include_str!("../../../events/full-sync.json"),
            SyncDirection::Both,
        ),
        (
            include_str!("../../../events/full-sync-export.json"),
            SyncDirection::Export,
        ),
        (
            include_str!("../../../events/full-sync-import.json"),
            SyncDirection::Import,
        ),
        (
            include_str!("../../../events/full-sync-both.json"),
            SyncDirection::Both,
        ),
    ];
    for (json, direction) in samples {
        let input: FullSyncInput = serde_json::from_str(json).expect("a valid input");
        match input.command().expect("a valid command") {
            full_sync::Command::Start {
                direction: d,
                chunk_size,
                ..
            } => {
                assert_eq!(d, direction);
                assert_eq!(chunk_size, full_sync::DEFAULT_CHUNK_SIZE);
            }
            other => panic!("not a start: {other:?}"),
        }
    }
}
