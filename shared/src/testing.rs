//! In-memory fakes of the ports, for handler tests (feature `test-util`).
//!
//! They follow the contracts of the real adapters — conditional bookkeeping-only writes,
//! idempotent upserts by platform id — so a handler test says something about production, and
//! they record what was asked of them so tests can assert on it.

use crate::domain::{Customer, SyncStatus, BOOKKEEPING_ATTRIBUTES};
use crate::message::Lane;
use crate::onec::{ChangePage, Counterparty, OneCClient, OneCError, UpsertOutcome};
use crate::ports::{
    CustomerStore, DeadLetter, ExportFailure, ExportSuccess, FailureStatus, MessageControl,
    MessageControlError, StoreError, StoredCustomer, SyncLog, WriteOutcome,
};
use crate::sync_log::SyncLogEntry;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A write the fake store was asked to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreWrite {
    pub id: String,
    pub operation: &'static str,
    /// The attributes the write set (empty when it was stale).
    pub attributes: Vec<String>,
    pub outcome: WriteOutcome,
}

/// The `users` table in memory. Rows are JSON objects, so attributes unknown to [`Customer`]
/// can be stored and checked for survival.
#[derive(Debug, Default)]
pub struct FakeCustomerStore {
    rows: Mutex<BTreeMap<String, Map<String, Value>>>,
    writes: Mutex<Vec<StoreWrite>>,
    failures: Mutex<VecDeque<StoreError>>,
    latency: Mutex<Duration>,
}

impl FakeCustomerStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every read and write takes this long, as DynamoDB's round trip does.
    pub fn with_latency(self, latency: Duration) -> Self {
        *lock(&self.latency) = latency;
        self
    }

    async fn round_trip(&self) {
        let latency = *lock(&self.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    pub fn with_customers(customers: impl IntoIterator<Item = Customer>) -> Self {
        let store = Self::new();
        for customer in customers {
            store.insert(&customer);
        }
        store
    }

    pub fn insert(&self, customer: &Customer) {
        if let Ok(Value::Object(row)) = serde_json::to_value(customer) {
            lock(&self.rows).insert(customer.id.clone(), row);
        }
    }

    /// Stores a raw row (it needs an `id`), e.g. with platform attributes [`Customer`] lacks or
    /// values it cannot read.
    pub fn insert_row(&self, row: Value) {
        if let Value::Object(row) = row {
            if let Some(id) = row.get("id").and_then(Value::as_str) {
                lock(&self.rows).insert(id.to_owned(), row.clone());
            }
        }
    }

    pub fn remove(&self, id: &str) {
        lock(&self.rows).remove(id);
    }

    pub fn row(&self, id: &str) -> Option<Value> {
        lock(&self.rows).get(id).cloned().map(Value::Object)
    }

    pub fn customer(&self, id: &str) -> Option<Customer> {
        self.row(id)
            .and_then(|row| serde_json::from_value(row).ok())
    }

    pub fn writes(&self) -> Vec<StoreWrite> {
        lock(&self.writes).clone()
    }

    /// The next read or write fails with `err` (queued; one per call).
    pub fn fail_next(&self, err: StoreError) {
        lock(&self.failures).push_back(err);
    }

    fn injected_failure(&self) -> Result<(), StoreError> {
        match lock(&self.failures).pop_front() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Applies `set` to row `id` if `condition` holds, mimicking a conditional UpdateItem.
    fn conditional_update(
        &self,
        id: &str,
        operation: &'static str,
        condition: impl FnOnce(&Map<String, Value>) -> bool,
        set: Vec<(&'static str, Value)>,
    ) -> WriteOutcome {
        debug_assert!(set
            .iter()
            .all(|(name, _)| BOOKKEEPING_ATTRIBUTES.contains(name)));
        let mut rows = lock(&self.rows);
        let outcome = match rows.get_mut(id) {
            Some(row) if condition(row) => {
                for (name, value) in &set {
                    row.insert((*name).to_owned(), value.clone());
                }
                WriteOutcome::Applied
            }
            _ => WriteOutcome::Stale,
        };
        let attributes = match outcome {
            WriteOutcome::Applied => set.iter().map(|(n, _)| (*n).to_owned()).collect(),
            WriteOutcome::Stale => Vec::new(),
        };
        lock(&self.writes).push(StoreWrite {
            id: id.to_owned(),
            operation,
            attributes,
            outcome,
        });
        outcome
    }
}

fn synced_below(row: &Map<String, Value>, version: u64) -> bool {
    row.get("synced_version")
        .and_then(Value::as_u64)
        .is_none_or(|synced| synced < version)
}

fn status_value(status: SyncStatus) -> Value {
    Value::from(status.as_str())
}

#[async_trait]
impl CustomerStore for FakeCustomerStore {
    async fn load(&self, id: &str) -> Result<Option<StoredCustomer>, StoreError> {
        self.round_trip().await;
        self.injected_failure()?;
        let Some(row) = self.row(id) else {
            return Ok(None);
        };
        let extra = match &row {
            Value::Object(map) => map
                .iter()
                .filter_map(|(name, value)| {
                    let text = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some((name.clone(), text))
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        let customer = serde_json::from_value(row).map_err(|err| StoreError::Undecodable {
            id: id.to_owned(),
            source: Box::new(err),
        })?;
        Ok(Some(StoredCustomer { customer, extra }))
    }

    async fn mark_pending(&self, id: &str, version: u64) -> Result<WriteOutcome, StoreError> {
        self.round_trip().await;
        self.injected_failure()?;
        Ok(self.conditional_update(
            id,
            "mark_pending",
            |row| {
                let status = row.get("sync_status").and_then(Value::as_str);
                let flagged = row.get("needs_1c_export") == Some(&Value::Bool(true));
                row.get("version").and_then(Value::as_u64) == Some(version)
                    && row.get("synced_version").is_none_or(Value::is_null)
                    && (status.is_none() || (status == Some("pending") && !flagged))
            },
            vec![
                ("needs_1c_export", Value::Bool(true)),
                ("sync_status", status_value(SyncStatus::Pending)),
            ],
        ))
    }

    async fn record_export_success(
        &self,
        id: &str,
        success: &ExportSuccess,
    ) -> Result<WriteOutcome, StoreError> {
        self.round_trip().await;
        self.injected_failure()?;
        let v = success.exported_version;
        let mut set = vec![
            ("synced_version", Value::from(v)),
            (
                "last_sync_at",
                Value::from(
                    success
                        .at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ),
            ),
            ("onec_id", Value::from(success.onec_id.as_str())),
            ("onec_version", Value::from(success.onec_version.as_str())),
        ];
        // As the DynamoDB adapter's two conditional writes: a row that moved past the exported
        // version keeps the status, error and flag of its newer change.
        let at_exported = self
            .row(id)
            .is_some_and(|row| row.get("version").and_then(Value::as_u64) == Some(v));
        if at_exported {
            set.extend([
                ("needs_1c_export", Value::Bool(false)),
                ("sync_status", status_value(SyncStatus::Synced)),
                ("sync_error_message", Value::from("")),
                ("export_attempts", Value::from(0)),
            ]);
        }
        let written =
            self.conditional_update(id, "record_export_success", |row| synced_below(row, v), set);
        Ok(if at_exported {
            written
        } else {
            WriteOutcome::Stale
        })
    }

    async fn reopen_export(
        &self,
        id: &str,
        recorded_version: u64,
        held_version: u64,
    ) -> Result<WriteOutcome, StoreError> {
        self.round_trip().await;
        self.injected_failure()?;
        Ok(self.conditional_update(
            id,
            "reopen_export",
            |row| {
                let at = |name: &str| row.get(name).and_then(Value::as_u64);
                at("version") == Some(recorded_version)
                    && at("synced_version") == Some(recorded_version)
            },
            vec![
                ("synced_version", Value::from(held_version)),
                ("needs_1c_export", Value::Bool(true)),
                ("sync_status", status_value(SyncStatus::Pending)),
            ],
        ))
    }

    async fn record_export_failure(
        &self,
        id: &str,
        failure: &ExportFailure,
    ) -> Result<WriteOutcome, StoreError> {
        self.round_trip().await;
        self.injected_failure()?;
        let status = match failure.status {
            FailureStatus::Retrying => SyncStatus::Retrying,
            FailureStatus::Error => SyncStatus::Error,
        };
        Ok(self.conditional_update(
            id,
            "record_export_failure",
            |row| {
                let recorded = row.get("sync_status") == Some(&status_value(status))
                    && row.get("sync_error_message").and_then(Value::as_str)
                        == Some(failure.message.as_str())
                    && row.get("failed_version").and_then(Value::as_u64) == Some(failure.version);
                synced_below(row, failure.version) && !recorded
            },
            vec![
                ("sync_status", status_value(status)),
                ("sync_error_message", Value::from(failure.message.as_str())),
                ("export_attempts", Value::from(failure.attempts)),
                ("failed_version", Value::from(failure.version)),
            ],
        ))
    }
}

/// The sync log in memory.
#[derive(Debug, Default)]
pub struct FakeSyncLog {
    entries: Mutex<Vec<SyncLogEntry>>,
    fail: AtomicBool,
}

impl FakeSyncLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn entries(&self) -> Vec<SyncLogEntry> {
        lock(&self.entries).clone()
    }

    pub fn entries_for(&self, customer_id: &str) -> Vec<SyncLogEntry> {
        self.entries()
            .into_iter()
            .filter(|e| e.customer_id == customer_id)
            .collect()
    }

    /// Every append fails (transiently) while set.
    pub fn set_failing(&self, failing: bool) {
        self.fail.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl SyncLog for FakeSyncLog {
    async fn append(&self, entry: SyncLogEntry) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Request {
                operation: "PutItem(sync_log)",
                table: "fake-sync-log".into(),
                class: crate::error::ErrorClass::Transient,
                source: "injected failure".into(),
            });
        }
        lock(&self.entries).push(entry);
        Ok(())
    }
}

/// What the fake 1C does with the next call.
#[derive(Debug)]
pub enum Scripted {
    /// Behave normally (lets a script put successes between failures).
    Pass,
    /// Fail without touching the store.
    Fail(OneCError),
    /// Apply the call, then fail as if the response was lost.
    CommitThenFail(OneCError),
}

/// A 1C holding counterparties in memory, keyed by platform id like the real contract, with
/// scripted failures, optional latency and in-flight tracking.
#[derive(Debug, Default)]
pub struct FakeOneCClient {
    counterparties: Mutex<BTreeMap<String, Counterparty>>,
    script: Mutex<VecDeque<Scripted>>,
    upserts: Mutex<Vec<Counterparty>>,
    latency: Mutex<Duration>,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    next_ref: AtomicUsize,
}

impl FakeOneCClient {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call takes this long (lets concurrency be observed).
    pub fn with_latency(self, latency: Duration) -> Self {
        self.set_latency(latency);
        self
    }

    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.latency) = latency;
    }

    /// Queues scripted outcomes for the next calls, consumed in order; later calls succeed.
    pub fn script(&self, outcomes: impl IntoIterator<Item = Scripted>) {
        lock(&self.script).extend(outcomes);
    }

    pub fn fail_next(&self, err: OneCError) {
        self.script([Scripted::Fail(err)]);
    }

    /// A counterparty that already exists in 1C (gets an `onec_id` if it has none).
    pub fn insert(&self, mut cp: Counterparty) -> Counterparty {
        if cp.onec_id.is_none() {
            cp.onec_id = Some(self.new_ref());
        }
        cp.data_version.get_or_insert_with(|| "1".into());
        lock(&self.counterparties).insert(cp.platform_id.clone(), cp.clone());
        cp
    }

    pub fn counterparties(&self) -> Vec<Counterparty> {
        lock(&self.counterparties).values().cloned().collect()
    }

    pub fn counterparty(&self, platform_id: &str) -> Option<Counterparty> {
        lock(&self.counterparties).get(platform_id).cloned()
    }

    /// Every upsert request received, failed ones included.
    pub fn upsert_requests(&self) -> Vec<Counterparty> {
        lock(&self.upserts).clone()
    }

    /// Calls of any kind.
    pub fn call_count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    fn new_ref(&self) -> String {
        let n = self.next_ref.fetch_add(1, Ordering::SeqCst) + 1;
        format!("00000000-0000-0000-0000-{n:012}")
    }

    async fn enter(&self) -> Option<Scripted> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let latency = *lock(&self.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        lock(&self.script).pop_front()
    }
}

#[async_trait]
impl OneCClient for FakeOneCClient {
    async fn upsert_customer(&self, cp: &Counterparty) -> Result<UpsertOutcome, OneCError> {
        lock(&self.upserts).push(cp.clone());
        let lost = match self.enter().await {
            Some(Scripted::Fail(err)) => return Err(err),
            Some(Scripted::CommitThenFail(err)) => Some(err),
            Some(Scripted::Pass) | None => None,
        };
        let outcome = {
            let mut all = lock(&self.counterparties);
            let existing = all.get(&cp.platform_id).cloned();
            let created = existing.is_none();
            let onec_id = existing
                .as_ref()
                .and_then(|e| e.onec_id.clone())
                .unwrap_or_else(|| self.new_ref());
            let version = existing
                .and_then(|e| e.data_version)
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(1, |v| v + 1)
                .to_string();
            let mut stored = cp.clone();
            stored.onec_id = Some(onec_id.clone());
            stored.data_version = Some(version.clone());
            all.insert(cp.platform_id.clone(), stored);
            UpsertOutcome {
                onec_id,
                data_version: version,
                created,
            }
        };
        match lost {
            Some(err) => Err(err),
            None => Ok(outcome),
        }
    }

    async fn fetch_customer(&self, onec_id: &str) -> Result<Option<Counterparty>, OneCError> {
        if let Some(Scripted::Fail(err) | Scripted::CommitThenFail(err)) = self.enter().await {
            return Err(err);
        }
        Ok(lock(&self.counterparties)
            .values()
            .find(|cp| cp.onec_id.as_deref() == Some(onec_id))
            .cloned())
    }

    async fn find_by_platform_id(
        &self,
        platform_id: &str,
    ) -> Result<Option<Counterparty>, OneCError> {
        if let Some(Scripted::Fail(err) | Scripted::CommitThenFail(err)) = self.enter().await {
            return Err(err);
        }
        Ok(self.counterparty(platform_id))
    }

    async fn list_changed(
        &self,
        _watermark: Option<&str>,
        _cursor: Option<&str>,
        _page_size: u32,
    ) -> Result<ChangePage, OneCError> {
        if let Some(Scripted::Fail(err) | Scripted::CommitThenFail(err)) = self.enter().await {
            return Err(err);
        }
        Ok(ChangePage {
            items: self.counterparties(),
            next_cursor: None,
            watermark: None,
        })
    }
}

/// A visibility change the exporter asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibilityChange {
    pub lane: Lane,
    pub receipt_handle: String,
    pub delay: Duration,
}

/// Records backoffs and dead letters.
#[derive(Debug, Default)]
pub struct FakeMessageControl {
    delays: Mutex<Vec<VisibilityChange>>,
    dead_letters: Mutex<Vec<DeadLetter>>,
    fail_dead_letter: AtomicBool,
    fail_delay: AtomicBool,
}

impl FakeMessageControl {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn delays(&self) -> Vec<VisibilityChange> {
        lock(&self.delays).clone()
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.dead_letters).clone()
    }

    /// Sending to the DLQ fails (transiently) while set.
    pub fn set_dead_letter_failing(&self, failing: bool) {
        self.fail_dead_letter.store(failing, Ordering::SeqCst);
    }

    /// Changing visibility fails (transiently) while set.
    pub fn set_delay_failing(&self, failing: bool) {
        self.fail_delay.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl MessageControl for FakeMessageControl {
    async fn delay_retry(
        &self,
        lane: Lane,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), MessageControlError> {
        if self.fail_delay.load(Ordering::SeqCst) {
            return Err(MessageControlError::ChangeVisibility {
                lane,
                class: crate::error::ErrorClass::Transient,
                source: "injected failure".into(),
            });
        }
        lock(&self.delays).push(VisibilityChange {
            lane,
            receipt_handle: receipt_handle.to_owned(),
            delay: delay.min(crate::ports::MAX_VISIBILITY),
        });
        Ok(())
    }

    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), MessageControlError> {
        if self.fail_dead_letter.load(Ordering::SeqCst) {
            return Err(MessageControlError::DeadLetter {
                class: crate::error::ErrorClass::Transient,
                source: "injected failure".into(),
            });
        }
        lock(&self.dead_letters).push(letter.clone());
        Ok(())
    }
}

/// The export queues in memory: records what was enqueued per lane; can refuse messages.
#[derive(Debug, Default)]
pub struct FakeExportQueue {
    sent: Mutex<Vec<(Lane, crate::message::ExportMessage)>>,
    refuse_customers: Mutex<Vec<String>>,
    fail_calls: AtomicBool,
    short_answers: AtomicBool,
}

impl FakeExportQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn sent(&self) -> Vec<(Lane, crate::message::ExportMessage)> {
        lock(&self.sent).clone()
    }

    pub fn sent_to(&self, lane: Lane) -> Vec<crate::message::ExportMessage> {
        self.sent()
            .into_iter()
            .filter(|(l, _)| *l == lane)
            .map(|(_, m)| m)
            .collect()
    }

    /// Messages for this customer are refused (transiently, as SQS's internal errors are).
    pub fn refuse_customer(&self, customer_id: &str) {
        lock(&self.refuse_customers).push(customer_id.to_owned());
    }

    /// Every call fails as a whole while set.
    pub fn set_failing(&self, failing: bool) {
        self.fail_calls.store(failing, Ordering::SeqCst);
    }

    /// While set, an answer leaves out the last message's result (a queue adapter's bug).
    pub fn set_short_answers(&self, short: bool) {
        self.short_answers.store(short, Ordering::SeqCst);
    }
}

#[async_trait]
impl crate::ports::ExportQueue for FakeExportQueue {
    async fn enqueue(
        &self,
        lane: Lane,
        batch: &[crate::message::ExportMessage],
    ) -> Result<Vec<Result<(), crate::ports::QueueError>>, crate::ports::QueueError> {
        if self.fail_calls.load(Ordering::SeqCst) {
            return Err(crate::ports::QueueError::Request {
                lane,
                class: crate::error::ErrorClass::Transient,
                source: "injected failure".into(),
            });
        }
        let refused = lock(&self.refuse_customers).clone();
        let mut sent = lock(&self.sent);
        Ok(batch
            .iter()
            .map(|msg| {
                if refused.contains(&msg.customer_id) {
                    Err(crate::ports::QueueError::Rejected {
                        lane,
                        code: "InternalError".into(),
                        sender_fault: false,
                        class: crate::error::ErrorClass::Transient,
                    })
                } else {
                    sent.push((lane, msg.clone()));
                    Ok(())
                }
            })
            .take(if self.short_answers.load(Ordering::SeqCst) {
                batch.len().saturating_sub(1)
            } else {
                batch.len()
            })
            .collect())
    }
}

// --- 1C import (issue 5): the users table as the import sees it, and a paged change feed. ---

/// Writes the import's conditional updates like the DynamoDB adapter: only while the row is at
/// the version read, naming only the fields 1C owns and bookkeeping, never removing attributes.
#[async_trait]
impl crate::import::ImportStore for FakeCustomerStore {
    async fn load(&self, id: &str) -> Result<Option<StoredCustomer>, StoreError> {
        CustomerStore::load(self, id).await
    }

    async fn find_by_onec_id(&self, onec_id: &str) -> Result<Option<StoredCustomer>, StoreError> {
        self.injected_failure()?;
        let id = lock(&self.rows)
            .iter()
            .find(|(_, row)| row.get("onec_id").and_then(Value::as_str) == Some(onec_id))
            .map(|(id, _)| id.clone());
        match id {
            Some(id) => CustomerStore::load(self, &id).await,
            None => Ok(None),
        }
    }

    async fn create(&self, user: &crate::import::NewUser) -> Result<WriteOutcome, StoreError> {
        self.injected_failure()?;
        let Ok(Value::Object(mut row)) = serde_json::to_value(&user.customer) else {
            return Err(StoreError::Encode {
                what: "user",
                table: "fake-users".into(),
                source: "not an object".into(),
            });
        };
        for (name, value) in &user.extra {
            row.insert(name.clone(), Value::from(value.as_str()));
        }
        let mut rows = lock(&self.rows);
        let outcome = if rows.contains_key(&user.customer.id) {
            WriteOutcome::Stale
        } else {
            rows.insert(user.customer.id.clone(), row.clone());
            WriteOutcome::Applied
        };
        lock(&self.writes).push(StoreWrite {
            id: user.customer.id.clone(),
            operation: "import_create",
            attributes: match outcome {
                WriteOutcome::Applied => row.keys().cloned().collect(),
                WriteOutcome::Stale => Vec::new(),
            },
            outcome,
        });
        Ok(outcome)
    }

    async fn apply(
        &self,
        id: &str,
        write: &crate::import::ImportWrite,
    ) -> Result<WriteOutcome, StoreError> {
        self.injected_failure()?;
        let mut set: Vec<(String, Value)> = vec![
            ("onec_id".into(), Value::from(write.onec_id.as_str())),
            (
                "last_sync_at".into(),
                Value::from(
                    write
                        .at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                ),
            ),
        ];
        if let Some(version) = &write.onec_version {
            set.push(("onec_version".into(), Value::from(version.as_str())));
        }
        if !write.fields.is_empty() {
            for (name, value) in &write.fields {
                set.push((name.clone(), Value::from(value.as_str())));
            }
            set.push(("version".into(), Value::from(write.new_version())));
            set.push((
                "last_change_source".into(),
                Value::from(crate::import::IMPORT_CHANGE_SOURCE),
            ));
        }
        if write.mark_in_sync {
            set.push(("synced_version".into(), Value::from(write.new_version())));
        }
        let mut rows = lock(&self.rows);
        let outcome = match rows.get_mut(id) {
            Some(row)
                if row.get("version").and_then(Value::as_u64).unwrap_or(0)
                    == write.expected_version =>
            {
                for (name, value) in &set {
                    row.insert(name.clone(), value.clone());
                }
                WriteOutcome::Applied
            }
            _ => WriteOutcome::Stale,
        };
        lock(&self.writes).push(StoreWrite {
            id: id.to_owned(),
            operation: "import_apply",
            attributes: match outcome {
                WriteOutcome::Applied => set.into_iter().map(|(n, _)| n).collect(),
                WriteOutcome::Stale => Vec::new(),
            },
            outcome,
        });
        Ok(outcome)
    }
}

/// A 1C whose change feed is a list of counterparties served in pages of `page_size`; the
/// cursor and the watermark are positions in that list. Other operations are not supported.
#[derive(Debug, Default)]
pub struct FakeChangeFeed {
    changes: Mutex<Vec<Counterparty>>,
    failures: Mutex<VecDeque<OneCError>>,
}

impl FakeChangeFeed {
    pub fn new(changes: impl IntoIterator<Item = Counterparty>) -> Self {
        Self {
            changes: Mutex::new(changes.into_iter().collect()),
            failures: Mutex::default(),
        }
    }

    /// Appends changes, as 1C writing more counterparties.
    pub fn push(&self, cp: Counterparty) {
        lock(&self.changes).push(cp);
    }

    /// The next `list_changed` fails with `err`.
    pub fn fail_next(&self, err: OneCError) {
        lock(&self.failures).push_back(err);
    }
}

fn feed_position(token: Option<&str>) -> usize {
    token.and_then(|t| t.parse().ok()).unwrap_or(0)
}

#[async_trait]
impl OneCClient for FakeChangeFeed {
    async fn upsert_customer(&self, _cp: &Counterparty) -> Result<UpsertOutcome, OneCError> {
        Err(OneCError::InvalidRequest(
            "the change feed fake takes no writes".into(),
        ))
    }

    async fn fetch_customer(&self, onec_id: &str) -> Result<Option<Counterparty>, OneCError> {
        Ok(lock(&self.changes)
            .iter()
            .rev()
            .find(|cp| cp.onec_id.as_deref() == Some(onec_id))
            .cloned())
    }

    async fn find_by_platform_id(
        &self,
        platform_id: &str,
    ) -> Result<Option<Counterparty>, OneCError> {
        Ok(lock(&self.changes)
            .iter()
            .rev()
            .find(|cp| cp.platform_id == platform_id)
            .cloned())
    }

    async fn list_changed(
        &self,
        watermark: Option<&str>,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<ChangePage, OneCError> {
        if let Some(err) = lock(&self.failures).pop_front() {
            return Err(err);
        }
        let changes = lock(&self.changes);
        let start = feed_position(cursor.or(watermark)).min(changes.len());
        let end = (start + page_size.max(1) as usize).min(changes.len());
        Ok(ChangePage {
            items: changes[start..end].to_vec(),
            next_cursor: (end < changes.len()).then(|| end.to_string()),
            watermark: Some(end.to_string()),
        })
    }
}

/// A counterparty 1C holds for an individual, not marked for deletion.
pub fn individual_counterparty(
    platform_id: &str,
    last_name: &str,
    first_name: &str,
) -> crate::onec::Counterparty {
    let name = format!("{last_name} {first_name}");
    Counterparty {
        platform_id: platform_id.into(),
        onec_id: None,
        data_version: None,
        kind: crate::onec::CounterpartyKind::Individual,
        name: name.clone(),
        full_name: name,
        first_name: Some(first_name.into()),
        last_name: Some(last_name.into()),
        contact_person: None,
        inn: None,
        kpp: None,
        email: None,
        phone: None,
        role: None,
        status: None,
        deletion_mark: false,
        extra: Default::default(),
    }
}
