//! Full sync: a scheduled (or operator-started) run that imports what changed in 1C and/or
//! enqueues every user that needs exporting on the bulk queue, in chunks, with a run record.
//!
//! Inputs ([`FullSyncInput`]):
//! - `{"direction":"export|import|both","chunk_size":N}` (the schedule) starts a run; a second
//!   start while one runs is refused ([`SyncRunError::AlreadyRunning`]);
//! - `{"continue_run":"<id>"}` is the function's own continuation of a running run;
//! - `{"resume":"<id>"}` resumes a failed or cancelled run from its cursors.
//!
//! Each chunk (one scan page per unfinished segment, or one 1C page) is persisted — counters
//! and cursors — before the next; the run's status is checked at every chunk boundary, so a
//! cancel stops it there. When the invocation's remaining time falls below twice the slowest
//! chunk (and at least [`Settings::min_reserve`]), the run continues in a fresh invocation.
//! `both` imports first, then exports, so the export sees the import's writes (which the
//! import marks in sync, so they are not exported back).

pub mod adapters;
pub mod config;
pub mod export;
pub mod ports;
pub mod status;
pub mod wiring;

use chrono::Utc;
use futures::stream::{self, StreamExt as _, TryStreamExt as _};
use ports::{
    Continuation, ContinuationError, ImportFailure, PageImporter, ScanError, ScanSegment,
    TimeBudget, UserScanner,
};
use serde::{Deserialize, Serialize};
use shared::error::{Classify, ErrorClass};
use shared::message::{ExportMessage, ExportReason, Lane};
use shared::metrics::{
    Metrics, FULL_SYNC_ENQUEUED, FULL_SYNC_SCANNED, IMPORT_APPLIED, IMPORT_CONFLICTS,
};
use shared::ports::{ExportQueue, QueueError};
use shared::sync_run::{
    RunCounters, RunPhase, RunStatus, SyncDirection, SyncRun, SyncRunError, SyncRuns,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The schedule's default chunk size (template parameter `FullSyncChunkSize`).
pub const DEFAULT_CHUNK_SIZE: u32 = 500;
/// DynamoDB's and the template's bounds.
pub const MAX_CHUNK_SIZE: u32 = 10_000;
/// More segments than this gains nothing for one invocation's network.
pub const MAX_SEGMENTS: u32 = 16;
/// 1C pages are capped lower than scan chunks: a page is one 1C request.
pub const MAX_IMPORT_PAGE: u32 = 500;

/// The function's input: a start, a continuation or a resume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullSyncInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<SyncDirection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<u32>,
    /// Parallel scan segments (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<u32>,
    /// The new run's id (the CLI picks it to follow the run); a UUID is generated otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
}

impl FullSyncInput {
    pub fn start(direction: SyncDirection, chunk_size: u32) -> Self {
        Self {
            direction: Some(direction),
            chunk_size: Some(chunk_size),
            ..Self::default()
        }
    }

    pub fn continuation(run_id: &str) -> Self {
        Self {
            continue_run: Some(run_id.to_owned()),
            ..Self::default()
        }
    }

    pub fn resume(run_id: &str) -> Self {
        Self {
            resume: Some(run_id.to_owned()),
            ..Self::default()
        }
    }

    /// What the input asks for; contradictory or out-of-range inputs are refused.
    pub fn command(&self) -> Result<Command, InputError> {
        let start_fields = self.direction.is_some()
            || self.chunk_size.is_some()
            || self.segments.is_some()
            || self.run_id.is_some();
        match (&self.continue_run, &self.resume) {
            (Some(_), Some(_)) => Err(InputError("give either continue_run or resume")),
            (Some(_), None) | (None, Some(_)) if start_fields => Err(InputError(
                "continue_run and resume take no direction, chunk_size, segments or run_id",
            )),
            (Some(id), None) => Ok(Command::Continue(id.clone())),
            (None, Some(id)) => Ok(Command::Resume(id.clone())),
            (None, None) => {
                let direction = self
                    .direction
                    .ok_or(InputError("direction is required to start a run"))?;
                let chunk_size = self.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE);
                if !(1..=MAX_CHUNK_SIZE).contains(&chunk_size) {
                    return Err(InputError("chunk_size must be between 1 and 10000"));
                }
                let segments = self.segments.unwrap_or(1);
                if !(1..=MAX_SEGMENTS).contains(&segments) {
                    return Err(InputError("segments must be between 1 and 16"));
                }
                let run_id = match &self.run_id {
                    Some(id) if id.is_empty() || id == shared::sync_run::CONTROL_ID => {
                        return Err(InputError("run_id must be a non-empty id other than LOCK"));
                    }
                    Some(id) => id.clone(),
                    None => uuid::Uuid::new_v4().to_string(),
                };
                Ok(Command::Start {
                    run_id,
                    direction,
                    chunk_size,
                    segments,
                })
            }
        }
    }
}

/// A parsed [`FullSyncInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Start {
        run_id: String,
        direction: SyncDirection,
        chunk_size: u32,
        segments: u32,
    },
    Continue(String),
    Resume(String),
}

#[derive(Debug, thiserror::Error)]
#[error("invalid full-sync input: {0}")]
pub struct InputError(&'static str);

/// What an invocation leaves behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub direction: SyncDirection,
    pub status: RunStatus,
    pub phase: RunPhase,
    pub counters: RunCounters,
    /// The run goes on in a fresh invocation.
    pub continued: bool,
}

impl RunReport {
    fn of(run: &SyncRun, continued: bool) -> Self {
        Self {
            run_id: run.run_id.clone(),
            direction: run.direction,
            status: run.status,
            phase: run.phase,
            counters: run.counters,
            continued,
        }
    }
}

/// Why an invocation failed. The run is marked failed (resumable) unless another worker owns
/// it or the run store itself is unreachable.
#[derive(Debug, thiserror::Error)]
pub enum FullSyncError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Run(#[from] SyncRunError),
    #[error("run {run_id}: the users scan failed")]
    Scan {
        run_id: String,
        #[source]
        source: ScanError,
    },
    #[error("run {run_id}: enqueueing on the bulk queue failed")]
    Queue {
        run_id: String,
        #[source]
        source: QueueError,
    },
    #[error("run {run_id}: the 1C import failed")]
    Import {
        run_id: String,
        #[source]
        source: ImportFailure,
    },
    #[error("run {run_id} cannot continue in a fresh invocation")]
    Continuation {
        run_id: String,
        #[source]
        source: ContinuationError,
    },
    /// A continuation of a run that is no longer running (finished, or resumed elsewhere).
    #[error("run {run_id} is {status}; nothing to continue")]
    NotContinuable { run_id: String, status: RunStatus },
}

impl Classify for FullSyncError {
    fn class(&self) -> ErrorClass {
        match self {
            FullSyncError::Input(_) | FullSyncError::NotContinuable { .. } => ErrorClass::Permanent,
            FullSyncError::Run(err) => err.class(),
            FullSyncError::Scan { source, .. } => source.class(),
            FullSyncError::Queue { source, .. } => source.class(),
            FullSyncError::Import { source, .. } => source.class(),
            FullSyncError::Continuation { source, .. } => source.class(),
        }
    }
}

/// Tunables with production defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The least time left at a chunk boundary to start another chunk.
    pub min_reserve: Duration,
    /// Enqueue calls in flight at once (each sends up to [`ENQUEUE_SLICE`] messages).
    pub enqueue_concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            min_reserve: Duration::from_secs(60),
            enqueue_concurrency: 4,
        }
    }
}

/// Messages per `ExportQueue::enqueue` call: five SQS batches.
pub const ENQUEUE_SLICE: usize = 50;

/// Everything the handler uses, built once per cold start.
pub struct Deps {
    pub runs: SyncRuns,
    pub scanner: Arc<dyn UserScanner>,
    pub queue: Arc<dyn ExportQueue>,
    pub importer: Arc<dyn PageImporter>,
    pub continuation: Arc<dyn Continuation>,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
}

/// Runs one invocation: start, continue or resume a run, then work until it ends, is
/// cancelled, or has to continue in a fresh invocation.
pub async fn handle(
    deps: &Deps,
    input: &FullSyncInput,
    budget: &dyn TimeBudget,
) -> Result<RunReport, FullSyncError> {
    let now = Utc::now();
    let run = match input.command()? {
        Command::Start {
            run_id,
            direction,
            chunk_size,
            segments,
        } => {
            let run = deps
                .runs
                .start(&run_id, direction, chunk_size, segments, now)
                .await?;
            tracing::info!(run_id = %run.run_id, %direction, chunk_size, segments, "full sync started");
            run
        }
        Command::Resume(run_id) => {
            let run = deps.runs.resume(&run_id, now).await?;
            tracing::info!(run_id = %run.run_id, "full sync resumed");
            run
        }
        Command::Continue(run_id) => {
            let mut run = deps.runs.require(&run_id).await?;
            if run.status.is_final() {
                return Err(FullSyncError::NotContinuable {
                    run_id,
                    status: run.status,
                });
            }
            run.invocations += 1;
            run.updated_at = now;
            tracing::info!(run_id = %run.run_id, invocation = run.invocations, "full sync continues");
            deps.runs.save_progress(&run).await?
        }
    };
    drive(deps, run, budget).await
}

/// Works on a running run chunk by chunk.
async fn drive(
    deps: &Deps,
    mut run: SyncRun,
    budget: &dyn TimeBudget,
) -> Result<RunReport, FullSyncError> {
    let mut slowest = Duration::ZERO;
    loop {
        if run.status == RunStatus::Cancelling {
            let run = deps
                .runs
                .finish(&run.run_id, RunStatus::Cancelled, None, Utc::now())
                .await?;
            tracing::info!(run_id = %run.run_id, counters = ?run.counters, "full sync cancelled");
            return Ok(RunReport::of(&run, false));
        }
        if finished(&run) {
            let run = deps
                .runs
                .finish(&run.run_id, RunStatus::Completed, None, Utc::now())
                .await?;
            tracing::info!(run_id = %run.run_id, counters = ?run.counters, "full sync completed");
            return Ok(RunReport::of(&run, false));
        }
        if let Some(remaining) = budget.remaining() {
            let reserve = deps.settings.min_reserve.max(slowest * 2);
            if remaining < reserve {
                return continue_elsewhere(deps, &run).await;
            }
        }
        let started = Instant::now();
        let next = match run.phase {
            RunPhase::Import => import_chunk(deps, &run).await,
            RunPhase::Export => export_chunk(deps, &run).await,
            // `finished` returned above.
            RunPhase::Done => Ok(run.clone()),
        };
        let next = match next {
            Ok(next) => next,
            Err(err) => return Err(fail(deps, &run, err).await),
        };
        run = match deps.runs.save_progress(&next).await {
            Ok(stored) => stored,
            Err(err) => return Err(fail(deps, &run, err.into()).await),
        };
        slowest = slowest.max(started.elapsed());
    }
}

fn finished(run: &SyncRun) -> bool {
    run.phase == RunPhase::Done
}

/// Hands the run to a fresh invocation; its progress is already stored.
async fn continue_elsewhere(deps: &Deps, run: &SyncRun) -> Result<RunReport, FullSyncError> {
    match deps.continuation.continue_run(&run.run_id).await {
        Ok(()) => {
            tracing::info!(run_id = %run.run_id, counters = ?run.counters, "continuing in a fresh invocation");
            Ok(RunReport::of(run, true))
        }
        Err(source) => Err(fail(
            deps,
            run,
            FullSyncError::Continuation {
                run_id: run.run_id.clone(),
                source,
            },
        )
        .await),
    }
}

/// Marks the run failed (resumable from its last stored chunk) and returns the error.
async fn fail(deps: &Deps, run: &SyncRun, err: FullSyncError) -> FullSyncError {
    if matches!(err, FullSyncError::Run(SyncRunError::Conflict { .. })) {
        // Another worker owns the run; it must not be failed under it.
        tracing::warn!(run_id = %run.run_id, "another worker advanced the run; stopping");
        return err;
    }
    let message = error_chain(&err);
    tracing::error!(run_id = %run.run_id, error = %message, "full sync failed");
    if let Err(mark) = deps
        .runs
        .finish(&run.run_id, RunStatus::Failed, Some(&message), Utc::now())
        .await
    {
        tracing::error!(run_id = %run.run_id, error = %mark, "cannot mark the run failed");
    }
    err
}

/// The error and its sources on one line; none of them quote contact data.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One page per unfinished segment, scanned concurrently; the users needing export enqueued.
async fn export_chunk(deps: &Deps, run: &SyncRun) -> Result<SyncRun, FullSyncError> {
    let total = u32::try_from(run.export_segments.len()).unwrap_or(u32::MAX);
    let pending: Vec<usize> = run
        .export_segments
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.done)
        .map(|(i, _)| i)
        .collect();
    let pages = futures::future::try_join_all(pending.iter().map(|&i| {
        let segment = ScanSegment {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            total,
        };
        deps.scanner.scan_page(
            segment,
            run.export_segments[i].cursor.as_deref(),
            run.chunk_size,
        )
    }))
    .await
    .map_err(|source| FullSyncError::Scan {
        run_id: run.run_id.clone(),
        source,
    })?;

    let now = Utc::now();
    let mut next = run.clone();
    let mut messages = Vec::new();
    for (&i, page) in pending.iter().zip(&pages) {
        next.counters.scanned += page.scanned();
        next.counters.errors += page.undecodable;
        next.export_segments[i].cursor.clone_from(&page.next_cursor);
        next.export_segments[i].done = page.next_cursor.is_none();
        messages.extend(
            page.users
                .iter()
                .filter(|user| export::export_need(user).is_some())
                .map(|user| ExportMessage {
                    customer_id: user.id.clone(),
                    reason: ExportReason::FullSync,
                    version: user.version,
                    changed_at: now,
                    onec_id: None,
                }),
        );
    }
    if next.export_done() {
        next.phase = RunPhase::Done;
    }
    let (enqueued, refused) = enqueue(deps, run, &messages).await?;
    next.counters.enqueued += enqueued;
    next.counters.errors += refused;
    next.updated_at = Utc::now();
    let scanned: u64 = pages.iter().map(ports::ScanPage::scanned).sum();
    deps.metrics.count(FULL_SYNC_SCANNED, scanned, &[]);
    deps.metrics.count(FULL_SYNC_ENQUEUED, enqueued, &[]);
    Ok(next)
}

/// Sends the messages; returns (accepted, refused for good). A message the queue could not take
/// for a passing reason fails the chunk, so its cursor is not stored and a resume sends the
/// chunk again (duplicates are harmless: the exporter reads the current row).
async fn enqueue(
    deps: &Deps,
    run: &SyncRun,
    messages: &[ExportMessage],
) -> Result<(u64, u64), FullSyncError> {
    let queue_error = |source| FullSyncError::Queue {
        run_id: run.run_id.clone(),
        source,
    };
    // Each slice is owned by its future and the closure owns its queue handle: borrowing either
    // makes the handler's future not provably `Send`, and a spawned task (the local stack's
    // invoker) needs it to be. Copying 50 messages per SQS call costs nothing measurable.
    let queue = deps.queue.clone();
    let results: Vec<Vec<Result<(), QueueError>>> = stream::iter(
        messages
            .chunks(ENQUEUE_SLICE)
            .map(<[ExportMessage]>::to_vec),
    )
    .map(move |slice| {
        let queue = queue.clone();
        async move {
            let mut results = queue.enqueue(Lane::Bulk, &slice).await?;
            // One result per message, so none is taken for sent without an answer (retryable).
            results.resize_with(slice.len(), || {
                Err(QueueError::MissingResult { lane: Lane::Bulk })
            });
            Ok(results)
        }
    })
    .buffered(deps.settings.enqueue_concurrency.max(1))
    .try_collect()
    .await
    .map_err(queue_error)?;
    let (mut accepted, mut refused) = (0, 0);
    for (message, result) in messages.iter().zip(results.into_iter().flatten()) {
        match result {
            Ok(()) => accepted += 1,
            Err(err) if !err.is_retryable() => {
                refused += 1;
                tracing::warn!(customer_id = %message.customer_id, error = %err, "the bulk queue refused a full-sync message");
            }
            Err(err) => return Err(queue_error(err)),
        }
    }
    Ok((accepted, refused))
}

/// One page of 1C changes; at the last page the watermark is kept for the next run and the
/// run moves on (export for `both`, completion for `import`).
async fn import_chunk(deps: &Deps, run: &SyncRun) -> Result<SyncRun, FullSyncError> {
    let page_size = run.chunk_size.min(MAX_IMPORT_PAGE);
    let page = deps
        .importer
        .import_page(
            run.import_since.as_deref(),
            run.import_cursor.as_deref(),
            page_size,
        )
        .await
        .map_err(|source| FullSyncError::Import {
            run_id: run.run_id.clone(),
            source,
        })?;
    let mut next = run.clone();
    let counters = &mut next.counters;
    counters.imported += page.imported;
    counters.updated += page.updated;
    counters.conflicts += page.conflicts;
    counters.errors += page.errors;
    counters.unchanged += page.unchanged;
    deps.metrics
        .count(IMPORT_APPLIED, page.imported + page.updated, &[]);
    deps.metrics.count(IMPORT_CONFLICTS, page.conflicts, &[]);
    if page.watermark.is_some() {
        next.import_watermark = page.watermark;
    }
    next.import_cursor = page.next_cursor;
    if next.import_cursor.is_none() {
        if let Some(watermark) = &next.import_watermark {
            deps.runs.set_import_watermark(watermark).await?;
        }
        tracing::info!(run_id = %run.run_id, counters = ?next.counters, "1C import finished");
        next.phase = match run.direction {
            SyncDirection::Both => RunPhase::Export,
            SyncDirection::Import | SyncDirection::Export => RunPhase::Done,
        };
    }
    next.updated_at = Utc::now();
    Ok(next)
}
