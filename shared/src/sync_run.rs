//! Full-sync run records: one run at a time, progress counters, cursor, cancel and resume
//! (issue 5).
//!
//! A run is one row of the sync-runs table (pk `run_id`). Beside the runs, one control row
//! ([`CONTROL_ID`]) holds the lock (`active_run`), the last run started, and the import
//! watermark that outlives runs. The rules live here, in [`SyncRuns`], over the narrow
//! [`SyncRunStore`] port, so the DynamoDB adapter (`crate::adapters::dynamodb_runs`) and the
//! in-memory one ([`memory::MemorySyncRunStore`]) behave the same:
//!
//! - **start**: takes the lock, then creates the run. A second start is refused with
//!   [`SyncRunError::AlreadyRunning`] naming the holder. A lock whose holder is finished
//!   (completed, failed, cancelled) is released first; a holder that has written nothing for
//!   [`STALE_AFTER`] is presumed dead (its Lambda crashed or timed out), marked failed (or
//!   cancelled, if a cancel was pending) and its lock released. A lock taken less than
//!   [`LOCK_GRACE`] ago whose run has no record yet (or still its state from before a resume)
//!   belongs to a start or resume between its two writes, and is left alone: releasing it would
//!   let two runs work at once. Only a lock whose `locked_at` is still the one read is released,
//!   and no run takes a lock it already holds, so a duplicate start (the same run id, e.g. a
//!   scheduler's second delivery) is refused instead of sharing, then dropping, the live run's
//!   lock.
//! - **progress**: every chunk writes counters and cursors conditionally on the sequence number
//!   it read, so two workers on one run cannot both advance it; the write does not change the
//!   status, so a cancel requested meanwhile is seen in the returned record.
//! - **cancel**: running → cancelling; the worker stops at its next chunk boundary.
//! - **resume**: failed or cancelled → running, from the stored cursors, after taking the lock.

use crate::error::{Classify, ErrorClass};
use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Key of the control row (lock, last run, import watermark). Run ids are UUIDs, so they never
/// collide with it.
pub const CONTROL_ID: &str = "LOCK";

/// A running run that has not written for this long is presumed dead: Lambda stops an
/// invocation after 15 minutes and a live run writes after every chunk.
pub const STALE_AFTER: ChronoDuration = ChronoDuration::minutes(20);

/// How long a lock may exist without its run's record (or before a resume's state change): the
/// two writes of a start are milliseconds apart, so an older one belongs to a start that died.
pub const LOCK_GRACE: ChronoDuration = ChronoDuration::minutes(2);

/// Lock attempts when a stale holder has to be released first (it may race with another
/// starter doing the same).
const LOCK_ATTEMPTS: u32 = 3;

/// What a run synchronises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncDirection {
    /// Platform → 1C: enqueue every user that needs exporting.
    Export,
    /// 1C → platform: apply counterparties changed in 1C.
    Import,
    /// Import, then export.
    Both,
}

impl SyncDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncDirection::Export => "export",
            SyncDirection::Import => "import",
            SyncDirection::Both => "both",
        }
    }

    /// The phase a new run starts with.
    pub fn first_phase(self) -> RunPhase {
        match self {
            SyncDirection::Export => RunPhase::Export,
            SyncDirection::Import | SyncDirection::Both => RunPhase::Import,
        }
    }
}

impl std::str::FromStr for SyncDirection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "export" => Ok(SyncDirection::Export),
            "import" => Ok(SyncDirection::Import),
            "both" => Ok(SyncDirection::Both),
            other => Err(format!(
                "unknown direction `{other}` (expected export, import or both)"
            )),
        }
    }
}

impl std::fmt::Display for SyncDirection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which half of a run is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    Import,
    Export,
    /// Nothing left; the run completes.
    Done,
}

/// Lifecycle of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// An operator asked to stop; the worker stops at its next chunk boundary.
    Cancelling,
    Cancelled,
    Completed,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Cancelling => "cancelling",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
        }
    }

    /// No worker will touch the run again (unless it is resumed).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Cancelled | RunStatus::Completed | RunStatus::Failed
        )
    }

    pub fn is_resumable(self) -> bool {
        matches!(self, RunStatus::Cancelled | RunStatus::Failed)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run has done so far, over all its invocations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounters {
    /// Users rows read by the export scan.
    #[serde(default)]
    pub scanned: u64,
    /// Export messages accepted by the bulk queue.
    #[serde(default)]
    pub enqueued: u64,
    /// Users created from 1C-only counterparties.
    #[serde(default)]
    pub imported: u64,
    /// Users updated from 1C.
    #[serde(default)]
    pub updated: u64,
    /// Import conflicts resolved by the ownership rules (each one logged).
    #[serde(default)]
    pub conflicts: u64,
    /// Import items already equal to the row.
    #[serde(default)]
    pub unchanged: u64,
    /// Items that failed alone (an unreadable row, a message the queue refused, a counterparty
    /// that could not be applied); the run goes on without them.
    #[serde(default)]
    pub errors: u64,
}

/// Where the export scan of one parallel segment stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentProgress {
    /// The scan's `LastEvaluatedKey`, serialised by the scanner; `None` before the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The segment has been scanned to its end.
    #[serde(default)]
    pub done: bool,
}

/// A full-sync run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRun {
    pub run_id: String,
    pub direction: SyncDirection,
    pub chunk_size: u32,
    pub status: RunStatus,
    pub phase: RunPhase,
    #[serde(default)]
    pub counters: RunCounters,
    /// One entry per parallel scan segment (at least one).
    pub export_segments: Vec<SegmentProgress>,
    /// The watermark the import listing started from (what earlier runs imported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_since: Option<String>,
    /// The 1C listing's cursor for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_cursor: Option<String>,
    /// The newest watermark of the pages applied so far; stored for the next run when the
    /// import finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_watermark: Option<String>,
    pub started_at: DateTime<Utc>,
    /// Written with every change; a running run's heartbeat.
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the run failed (readable, free of contact data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Lambda invocations (start, continuations, resumes) that worked on the run.
    #[serde(default)]
    pub invocations: u32,
    /// Incremented by every progress write; the condition of the next one.
    #[serde(default)]
    pub seq: u64,
}

impl SyncRun {
    /// A new run in `running` state.
    pub fn new(
        run_id: impl Into<String>,
        direction: SyncDirection,
        chunk_size: u32,
        segments: u32,
        import_since: Option<String>,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            run_id: run_id.into(),
            direction,
            chunk_size,
            status: RunStatus::Running,
            phase: direction.first_phase(),
            counters: RunCounters::default(),
            export_segments: vec![SegmentProgress::default(); segments.max(1) as usize],
            import_watermark: import_since.clone(),
            import_since,
            import_cursor: None,
            started_at: now,
            updated_at: now,
            finished_at: None,
            error: None,
            invocations: 1,
            seq: 0,
        }
    }

    /// The export scan has reached the end of every segment.
    pub fn export_done(&self) -> bool {
        self.export_segments.iter().all(|s| s.done)
    }

    /// No write for [`STALE_AFTER`] while it claims to be working.
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        !self.status.is_final() && now - self.updated_at > STALE_AFTER
    }
}

/// The control row: the lock and what outlives a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunControl {
    /// The run holding the lock.
    pub active_run: Option<String>,
    /// The run started (or resumed) last.
    pub last_run: Option<String>,
    /// Where the next import starts.
    pub import_watermark: Option<String>,
    /// When `active_run` took the lock.
    pub locked_at: Option<DateTime<Utc>>,
}

/// Outcome of a conditional write on the runs table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional<T> {
    Applied(T),
    /// The condition did not hold (another writer got there first, or the state differs).
    Refused,
}

/// The sync-runs table as [`SyncRuns`] needs it. Every write is conditional.
#[async_trait]
pub trait SyncRunStore: Send + Sync {
    /// The control row (an empty one when there is none yet).
    async fn control(&self) -> Result<RunControl, SyncRunError>;

    /// Sets `active_run` (and `last_run`) to `run_id` and `locked_at` to `now` unless a run
    /// (this one included) holds the lock.
    async fn acquire_lock(
        &self,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Conditional<()>, SyncRunError>;

    /// Clears `active_run` if `run_id` holds it.
    async fn release_lock(&self, run_id: &str) -> Result<Conditional<()>, SyncRunError>;

    /// Clears `active_run` if `run_id` holds it under the lock taken at `locked_at` (as read
    /// from [`SyncRunStore::control`]): a lock taken again since is kept.
    async fn release_lock_taken_at(
        &self,
        run_id: &str,
        locked_at: Option<DateTime<Utc>>,
    ) -> Result<Conditional<()>, SyncRunError>;

    /// Stores where the next import starts.
    async fn set_import_watermark(&self, watermark: &str) -> Result<(), SyncRunError>;

    /// Creates the run record unless the id exists.
    async fn create(&self, run: &SyncRun) -> Result<Conditional<()>, SyncRunError>;

    async fn get(&self, run_id: &str) -> Result<Option<SyncRun>, SyncRunError>;

    /// Writes the run's progress (counters, cursors, phase, invocations, `updated_at`) if the
    /// stored `seq` equals `run.seq` and the run is running or cancelling; the stored `seq`
    /// becomes `run.seq + 1`. Returns the stored record, whose status may have changed to
    /// `cancelling` meanwhile.
    async fn save_progress(&self, run: &SyncRun) -> Result<Conditional<SyncRun>, SyncRunError>;

    /// Moves the run from one of `from` to `to` (with `error` and, for final states,
    /// `finished_at`); returns the stored record.
    async fn transition(
        &self,
        run_id: &str,
        from: &[RunStatus],
        to: RunStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Conditional<SyncRun>, SyncRunError>;
}

/// A run operation failed or was refused.
#[derive(Debug, thiserror::Error)]
pub enum SyncRunError {
    /// Only one run at a time.
    #[error(
        "a full sync is already running: run {run_id} ({status}, started {started_at}); \
         wait for it, or cancel it with `sync_customers_with_1c cancel {run_id}`"
    )]
    AlreadyRunning {
        run_id: String,
        status: RunStatus,
        started_at: DateTime<Utc>,
    },

    #[error("no full-sync run {0}")]
    NotFound(String),

    /// The operation does not apply to the run's state (resume of a completed run, cancel of a
    /// finished one).
    #[error("run {run_id} is {status}; cannot {operation} it")]
    InvalidState {
        run_id: String,
        status: RunStatus,
        operation: &'static str,
    },

    /// Another worker wrote the run's progress since this one read it.
    #[error("run {run_id} was advanced by another worker; this one stops")]
    Conflict { run_id: String },

    /// The lock could not be taken after releasing stale holders repeatedly.
    #[error("cannot take the full-sync lock: it keeps changing hands")]
    LockContention,

    /// Another start or resume took the lock moments ago and has not written its run yet.
    #[error("run {run_id} is starting (lock taken at {locked_at}); not started")]
    Starting {
        run_id: String,
        locked_at: DateTime<Utc>,
    },

    /// The request to the table failed.
    #[error("{operation} on {table} failed ({class})")]
    Request {
        operation: &'static str,
        table: String,
        class: ErrorClass,
        #[source]
        source: BoxError,
    },

    /// A stored record is not a readable run.
    #[error("run record {id} cannot be read")]
    Undecodable {
        id: String,
        #[source]
        source: BoxError,
    },

    #[error("cannot encode run {id}")]
    Encode {
        id: String,
        #[source]
        source: BoxError,
    },
}

impl Classify for SyncRunError {
    fn class(&self) -> ErrorClass {
        match self {
            SyncRunError::Request { class, .. } => *class,
            // Waiting for the other run (or the stale-lock window) lets a later start succeed.
            SyncRunError::AlreadyRunning { .. }
            | SyncRunError::LockContention
            | SyncRunError::Starting { .. } => ErrorClass::Transient,
            SyncRunError::NotFound(_)
            | SyncRunError::InvalidState { .. }
            | SyncRunError::Conflict { .. }
            | SyncRunError::Undecodable { .. }
            | SyncRunError::Encode { .. } => ErrorClass::Permanent,
        }
    }
}

/// The run rules over a [`SyncRunStore`].
#[derive(Clone)]
pub struct SyncRuns {
    store: std::sync::Arc<dyn SyncRunStore>,
}

impl std::fmt::Debug for SyncRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncRuns").finish_non_exhaustive()
    }
}

impl SyncRuns {
    pub fn new(store: std::sync::Arc<dyn SyncRunStore>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &dyn SyncRunStore {
        self.store.as_ref()
    }

    /// Starts a new run under the lock; the import starts from the stored watermark.
    pub async fn start(
        &self,
        run_id: &str,
        direction: SyncDirection,
        chunk_size: u32,
        segments: u32,
        now: DateTime<Utc>,
    ) -> Result<SyncRun, SyncRunError> {
        self.lock(run_id, now).await?;
        let control = self.store.control().await;
        let created = match control {
            Ok(control) => {
                let run = SyncRun::new(
                    run_id,
                    direction,
                    chunk_size,
                    segments,
                    control.import_watermark,
                    now,
                );
                self.store.create(&run).await.map(|c| (c, run))
            }
            Err(err) => Err(err),
        };
        match created {
            Ok((Conditional::Applied(()), run)) => Ok(run),
            Ok((Conditional::Refused, _)) => {
                self.release_quietly(run_id).await;
                Err(SyncRunError::InvalidState {
                    run_id: run_id.to_owned(),
                    status: RunStatus::Running,
                    operation: "start (the id exists)",
                })
            }
            Err(err) => {
                self.release_quietly(run_id).await;
                Err(err)
            }
        }
    }

    /// Resumes a failed or cancelled run from its cursors, under the lock.
    pub async fn resume(&self, run_id: &str, now: DateTime<Utc>) -> Result<SyncRun, SyncRunError> {
        let run = self.require(run_id).await?;
        if !run.status.is_resumable() {
            return Err(SyncRunError::InvalidState {
                run_id: run_id.to_owned(),
                status: run.status,
                operation: "resume",
            });
        }
        self.lock(run_id, now).await?;
        match self
            .store
            .transition(
                run_id,
                &[RunStatus::Failed, RunStatus::Cancelled],
                RunStatus::Running,
                None,
                now,
            )
            .await
        {
            Ok(Conditional::Applied(run)) => Ok(run),
            Ok(Conditional::Refused) => {
                self.release_quietly(run_id).await;
                let status = self.require(run_id).await?.status;
                Err(SyncRunError::InvalidState {
                    run_id: run_id.to_owned(),
                    status,
                    operation: "resume",
                })
            }
            Err(err) => {
                self.release_quietly(run_id).await;
                Err(err)
            }
        }
    }

    /// Asks a running run to stop at its next chunk boundary. A run that is already stopping
    /// is returned as it is.
    pub async fn cancel(&self, run_id: &str, now: DateTime<Utc>) -> Result<SyncRun, SyncRunError> {
        match self
            .store
            .transition(
                run_id,
                &[RunStatus::Running],
                RunStatus::Cancelling,
                None,
                now,
            )
            .await?
        {
            Conditional::Applied(run) => Ok(run),
            Conditional::Refused => {
                let run = self.require(run_id).await?;
                if run.status == RunStatus::Cancelling {
                    Ok(run)
                } else {
                    Err(SyncRunError::InvalidState {
                        run_id: run_id.to_owned(),
                        status: run.status,
                        operation: "cancel",
                    })
                }
            }
        }
    }

    /// Persists a chunk's progress; see [`SyncRunStore::save_progress`].
    pub async fn save_progress(&self, run: &SyncRun) -> Result<SyncRun, SyncRunError> {
        match self.store.save_progress(run).await? {
            Conditional::Applied(stored) => Ok(stored),
            Conditional::Refused => Err(SyncRunError::Conflict {
                run_id: run.run_id.clone(),
            }),
        }
    }

    /// Ends the run (completed, cancelled or failed) and releases the lock.
    pub async fn finish(
        &self,
        run_id: &str,
        to: RunStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<SyncRun, SyncRunError> {
        // The lock as this run holds it, read before the run turns final: once it is final, a
        // resume may release and take the lock again, and this release must not drop that one.
        let locked_at = self.store.control().await?.locked_at;
        let outcome = self
            .store
            .transition(
                run_id,
                &[RunStatus::Running, RunStatus::Cancelling],
                to,
                error,
                now,
            )
            .await?;
        let run = match outcome {
            Conditional::Applied(run) => run,
            Conditional::Refused => {
                let run = self.require(run_id).await?;
                return Err(SyncRunError::InvalidState {
                    run_id: run_id.to_owned(),
                    status: run.status,
                    operation: "finish",
                });
            }
        };
        // A lock left behind (this call failing) is released by the next start, because its
        // holder is final by now.
        self.store.release_lock_taken_at(run_id, locked_at).await?;
        Ok(run)
    }

    /// The run holding the lock, else the last one started.
    pub async fn current(&self) -> Result<Option<SyncRun>, SyncRunError> {
        let control = self.store.control().await?;
        match control.active_run.or(control.last_run) {
            Some(id) => self.store.get(&id).await,
            None => Ok(None),
        }
    }

    pub async fn get(&self, run_id: &str) -> Result<Option<SyncRun>, SyncRunError> {
        self.store.get(run_id).await
    }

    pub async fn require(&self, run_id: &str) -> Result<SyncRun, SyncRunError> {
        self.store
            .get(run_id)
            .await?
            .ok_or_else(|| SyncRunError::NotFound(run_id.to_owned()))
    }

    /// Stores the watermark the next run's import starts from.
    pub async fn set_import_watermark(&self, watermark: &str) -> Result<(), SyncRunError> {
        self.store.set_import_watermark(watermark).await
    }

    /// Takes the lock for `run_id`, releasing a finished or dead holder first.
    async fn lock(&self, run_id: &str, now: DateTime<Utc>) -> Result<(), SyncRunError> {
        for _ in 0..LOCK_ATTEMPTS {
            if let Conditional::Applied(()) = self.store.acquire_lock(run_id, now).await? {
                return Ok(());
            }
            let control = self.store.control().await?;
            let Some(holder) = control.active_run else {
                // Released between our attempt and the read: try again.
                continue;
            };
            let locked_at = control.locked_at;
            // A lock written before `locked_at` existed counts as old.
            let taken_recently = locked_at.is_some_and(|at| now - at < LOCK_GRACE);
            let holder_run = self.store.get(&holder).await?;
            match holder_run {
                Some(run) if run.is_stale(now) => {
                    let to = if run.status == RunStatus::Cancelling {
                        RunStatus::Cancelled
                    } else {
                        RunStatus::Failed
                    };
                    let reason = format!(
                        "no progress since {}; presumed stopped (its invocation crashed or timed out)",
                        run.updated_at.to_rfc3339()
                    );
                    tracing::warn!(run_id = %holder, "releasing the lock of a stale run");
                    self.store
                        .transition(
                            &holder,
                            &[RunStatus::Running, RunStatus::Cancelling],
                            to,
                            Some(&reason),
                            now,
                        )
                        .await?;
                    self.store.release_lock_taken_at(&holder, locked_at).await?;
                }
                Some(run) if !run.status.is_final() => {
                    return Err(SyncRunError::AlreadyRunning {
                        run_id: run.run_id,
                        status: run.status,
                        started_at: run.started_at,
                    });
                }
                // Finished after the lock was taken: its worker is done with it.
                Some(run)
                    if locked_at.is_some_and(|at| run.updated_at >= at) || !taken_recently =>
                {
                    tracing::info!(run_id = %holder, "releasing the lock of a finished run");
                    self.store.release_lock_taken_at(&holder, locked_at).await?;
                }
                // No record, or a finished one, under a lock taken moments ago: a start or a
                // resume between its two writes.
                Some(_) | None if taken_recently => {
                    return Err(SyncRunError::Starting {
                        run_id: holder,
                        locked_at: locked_at.unwrap_or(now),
                    });
                }
                // A lock without a record, taken long ago: a start that died between its writes.
                Some(_) | None => {
                    tracing::info!(run_id = %holder, "releasing the lock of a start that died");
                    self.store.release_lock_taken_at(&holder, locked_at).await?;
                }
            }
        }
        Err(SyncRunError::LockContention)
    }

    async fn release_quietly(&self, run_id: &str) {
        if let Err(err) = self.store.release_lock(run_id).await {
            tracing::warn!(run_id, error = %err, "cannot release the full-sync lock");
        }
    }
}

/// An in-memory [`SyncRunStore`] with the DynamoDB adapter's conditions, for handler tests.
#[cfg(any(test, feature = "test-util"))]
pub mod memory {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::{Mutex, MutexGuard};

    #[derive(Debug, Default)]
    struct State {
        control: RunControl,
        runs: BTreeMap<String, SyncRun>,
    }

    #[derive(Debug, Default)]
    pub struct MemorySyncRunStore {
        state: Mutex<State>,
    }

    impl MemorySyncRunStore {
        pub fn new() -> Self {
            Self::default()
        }

        fn state(&self) -> MutexGuard<'_, State> {
            self.state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        /// Replaces a stored run as it is (a test's way to age a heartbeat).
        pub fn put(&self, run: SyncRun) {
            self.state().runs.insert(run.run_id.clone(), run);
        }
    }

    #[async_trait]
    impl SyncRunStore for MemorySyncRunStore {
        async fn control(&self) -> Result<RunControl, SyncRunError> {
            Ok(self.state().control.clone())
        }

        async fn acquire_lock(
            &self,
            run_id: &str,
            now: DateTime<Utc>,
        ) -> Result<Conditional<()>, SyncRunError> {
            let mut state = self.state();
            if state.control.active_run.is_some() {
                return Ok(Conditional::Refused);
            }
            state.control.active_run = Some(run_id.to_owned());
            state.control.last_run = Some(run_id.to_owned());
            state.control.locked_at = Some(now);
            Ok(Conditional::Applied(()))
        }

        async fn release_lock_taken_at(
            &self,
            run_id: &str,
            locked_at: Option<DateTime<Utc>>,
        ) -> Result<Conditional<()>, SyncRunError> {
            let mut state = self.state();
            if state.control.active_run.as_deref() == Some(run_id)
                && state.control.locked_at == locked_at
            {
                state.control.active_run = None;
                Ok(Conditional::Applied(()))
            } else {
                Ok(Conditional::Refused)
            }
        }

        async fn release_lock(&self, run_id: &str) -> Result<Conditional<()>, SyncRunError> {
            let mut state = self.state();
            if state.control.active_run.as_deref() == Some(run_id) {
                state.control.active_run = None;
                Ok(Conditional::Applied(()))
            } else {
                Ok(Conditional::Refused)
            }
        }

        async fn set_import_watermark(&self, watermark: &str) -> Result<(), SyncRunError> {
            self.state().control.import_watermark = Some(watermark.to_owned());
            Ok(())
        }

        async fn create(&self, run: &SyncRun) -> Result<Conditional<()>, SyncRunError> {
            let mut state = self.state();
            if state.runs.contains_key(&run.run_id) {
                return Ok(Conditional::Refused);
            }
            state.runs.insert(run.run_id.clone(), run.clone());
            Ok(Conditional::Applied(()))
        }

        async fn get(&self, run_id: &str) -> Result<Option<SyncRun>, SyncRunError> {
            Ok(self.state().runs.get(run_id).cloned())
        }

        async fn save_progress(&self, run: &SyncRun) -> Result<Conditional<SyncRun>, SyncRunError> {
            let mut state = self.state();
            let Some(stored) = state.runs.get_mut(&run.run_id) else {
                return Ok(Conditional::Refused);
            };
            let writable = matches!(stored.status, RunStatus::Running | RunStatus::Cancelling);
            if stored.seq != run.seq || !writable {
                return Ok(Conditional::Refused);
            }
            stored.counters = run.counters;
            stored.export_segments.clone_from(&run.export_segments);
            stored.phase = run.phase;
            stored.import_since.clone_from(&run.import_since);
            stored.import_cursor.clone_from(&run.import_cursor);
            stored.import_watermark.clone_from(&run.import_watermark);
            stored.invocations = run.invocations;
            stored.updated_at = run.updated_at;
            stored.seq = run.seq + 1;
            Ok(Conditional::Applied(stored.clone()))
        }

        async fn transition(
            &self,
            run_id: &str,
            from: &[RunStatus],
            to: RunStatus,
            error: Option<&str>,
            now: DateTime<Utc>,
        ) -> Result<Conditional<SyncRun>, SyncRunError> {
            let mut state = self.state();
            let Some(stored) = state.runs.get_mut(run_id) else {
                return Ok(Conditional::Refused);
            };
            if !from.contains(&stored.status) {
                return Ok(Conditional::Refused);
            }
            apply_transition(stored, to, error, now);
            Ok(Conditional::Applied(stored.clone()))
        }
    }

    fn apply_transition(run: &mut SyncRun, to: RunStatus, error: Option<&str>, now: DateTime<Utc>) {
        run.status = to;
        run.updated_at = now;
        run.error = error.map(str::to_owned);
        run.finished_at = to.is_final().then_some(now);
        if to == RunStatus::Running {
            run.invocations += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::MemorySyncRunStore;
    use super::*;
    use std::sync::Arc;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + ChronoDuration::minutes(minute)
    }

    fn runs() -> (SyncRuns, Arc<MemorySyncRunStore>) {
        let store = Arc::new(MemorySyncRunStore::new());
        (SyncRuns::new(store.clone()), store)
    }

    #[tokio::test]
    async fn a_second_start_while_a_run_is_active_is_refused_naming_the_run() {
        // Given a running run
        let (runs, _) = runs();
        runs.start("a", SyncDirection::Export, 100, 1, at(0))
            .await
            .expect("first start");
        // When another start comes a minute later
        let err = runs
            .start("b", SyncDirection::Both, 100, 1, at(1))
            .await
            .expect_err("refused");
        // Then it is refused, naming the running run
        assert!(
            matches!(&err, SyncRunError::AlreadyRunning { run_id, .. } if run_id == "a"),
            "{err}"
        );
        assert!(err.to_string().contains("run a"));
    }

    #[tokio::test]
    async fn a_second_resume_while_the_first_is_between_its_writes_is_refused() {
        // Given a failed run, and a resume of it that has taken the lock but not yet moved the
        // run to running
        let (runs, store) = runs();
        runs.start("a", SyncDirection::Export, 100, 1, at(0))
            .await
            .expect("start");
        runs.finish("a", RunStatus::Failed, Some("1C down"), at(1))
            .await
            .expect("finish");
        store.acquire_lock("a", at(10)).await.expect("the lock");
        // When a second resume comes a moment later
        let err = runs
            .resume("a", at(10))
            .await
            .expect_err("the second resume is refused");
        // Then it leaves the first one's lock alone
        assert!(matches!(err, SyncRunError::Starting { .. }), "{err}");
        let control = store.control().await.expect("control");
        assert_eq!(control.active_run.as_deref(), Some("a"));
        assert_eq!(control.locked_at, Some(at(10)));
    }

    #[tokio::test]
    async fn a_lock_taken_again_since_it_was_read_is_not_released() {
        let (_, store) = runs();
        store.acquire_lock("a", at(0)).await.expect("lock");
        store.release_lock("a").await.expect("unlock");
        store.acquire_lock("a", at(5)).await.expect("lock again");
        // A release for the lock as it was at minute 0 finds the one of minute 5
        let released = store
            .release_lock_taken_at("a", Some(at(0)))
            .await
            .expect("release");
        assert_eq!(released, Conditional::Refused);
        assert_eq!(
            store
                .control()
                .await
                .expect("control")
                .active_run
                .as_deref(),
            Some("a")
        );
    }

    #[tokio::test]
    async fn the_lock_of_a_finished_run_is_released_by_the_next_start() {
        // Given a run that completed but whose lock release was lost
        let (runs, store) = runs();
        let run = runs
            .start("a", SyncDirection::Export, 100, 1, at(0))
            .await
            .expect("start");
        let mut done = run.clone();
        done.status = RunStatus::Completed;
        store.put(done);
        // When a new run starts
        let next = runs
            .start("b", SyncDirection::Export, 100, 1, at(1))
            .await
            .expect("the finished holder does not block");
        // Then it holds the lock
        assert_eq!(next.status, RunStatus::Running);
        assert_eq!(
            store
                .control()
                .await
                .expect("control")
                .active_run
                .as_deref(),
            Some("b")
        );
    }

    #[tokio::test]
    async fn a_run_silent_for_longer_than_lambda_can_run_is_failed_and_its_lock_taken() {
        // Given a running run that last wrote at minute 0
        let (runs, _) = runs();
        runs.start("a", SyncDirection::Export, 100, 1, at(0))
            .await
            .expect("start");
        // When a start comes 30 minutes later
        runs.start("b", SyncDirection::Export, 100, 1, at(30))
            .await
            .expect("the stale holder does not block");
        // Then the old run is failed with the reason, and resumable
        let old = runs.require("a").await.expect("old run");
        assert_eq!(old.status, RunStatus::Failed);
        assert!(old
            .error
            .as_deref()
            .unwrap_or("")
            .contains("presumed stopped"));
    }

    #[tokio::test]
    async fn cancel_then_finish_then_resume_keeps_the_progress() {
        // Given a run with progress
        let (runs, _) = runs();
        let mut run = runs
            .start("a", SyncDirection::Export, 100, 1, at(0))
            .await
            .expect("start");
        run.counters.scanned = 100;
        run.export_segments[0].cursor = Some("k".into());
        run.updated_at = at(1);
        let run = runs.save_progress(&run).await.expect("progress");
        // When an operator cancels, the worker sees it on its next write and stops
        runs.cancel("a", at(2)).await.expect("cancel");
        let mut next = run.clone();
        next.counters.scanned = 200;
        let seen = runs.save_progress(&next).await.expect("progress");
        assert_eq!(seen.status, RunStatus::Cancelling);
        runs.finish("a", RunStatus::Cancelled, None, at(3))
            .await
            .expect("finish");
        // Then a resume continues from the stored cursor and counters
        let resumed = runs.resume("a", at(4)).await.expect("resume");
        assert_eq!(resumed.status, RunStatus::Running);
        assert_eq!(resumed.counters.scanned, 200);
        assert_eq!(resumed.export_segments[0].cursor.as_deref(), Some("k"));
        assert_eq!(resumed.invocations, 2);
    }

    #[tokio::test]
    async fn a_stale_progress_write_is_a_conflict() {
        // Given a run whose progress another worker already advanced
        let (runs, _) = runs();
        let run = runs
            .start("a", SyncDirection::Export, 100, 1, at(0))
            .await
            .expect("start");
        runs.save_progress(&run).await.expect("first writer");
        // When a second writer with the same starting point writes
        let err = runs.save_progress(&run).await.expect_err("conflict");
        // Then it is told to stop
        assert!(matches!(err, SyncRunError::Conflict { .. }));
    }

    #[tokio::test]
    async fn a_completed_run_cannot_be_resumed_or_cancelled() {
        // Given a completed run
        let (runs, _) = runs();
        runs.start("a", SyncDirection::Import, 100, 1, at(0))
            .await
            .expect("start");
        runs.finish("a", RunStatus::Completed, None, at(1))
            .await
            .expect("finish");
        // Then resume and cancel are refused with its state
        assert!(matches!(
            runs.resume("a", at(2)).await,
            Err(SyncRunError::InvalidState {
                status: RunStatus::Completed,
                ..
            })
        ));
        assert!(matches!(
            runs.cancel("a", at(2)).await,
            Err(SyncRunError::InvalidState { .. })
        ));
    }
}
