//! `CustomerExportService`: one export message → the customer's current data in 1C → the row's
//! bookkeeping updated → a sync log entry.
//!
//! The message only names the customer; the service always reads the current row, so duplicated,
//! reordered and stale messages are harmless: an export of an already synced version is skipped,
//! and the conditional write-back never lets an older export overwrite a newer one. 1C's upsert is
//! keyed by the platform id, so a retry after a lost response creates no duplicate.

use crate::backoff::CircuitBreaker;
use crate::domain::Customer;
use crate::error::{Classify, ErrorClass};
use crate::filter::RemovePolicy;
use crate::mapping::{CustomerDataMapper, ExtraAttributes, ValidationErrors};
use crate::message::{ExportMessage, ExportReason};
use crate::metrics::{Dimension, Metrics, ONEC_CALL_LATENCY};
use crate::onec::{Counterparty, OneCClient, OneCError, UpsertOutcome};
use crate::ports::{
    CustomerStore, ExportSuccess, StoreError, StoredCustomer, SyncLog, WriteOutcome,
};
use crate::sync_log::{CustomerSyncLog, SyncDetails, SyncLogStatus, SyncOperation};
use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Why an export message needed no call to 1C (or, for a deactivation, no change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The row is gone and the message is not a deactivation.
    CustomerDeleted,
    /// The customer came from 1C; it is never exported back.
    CreatedIn1c,
    /// 1C already holds this version (a redelivery or a stale message).
    AlreadySynced,
    /// A deactivation for a customer 1C does not know.
    NotIn1c,
    /// A deactivation for a counterparty that already carries the deletion mark.
    AlreadyDeactivated,
}

impl SkipReason {
    /// Stable name for metrics (`Reason` dimension) and the sync log.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::CustomerDeleted => "customer_deleted",
            SkipReason::CreatedIn1c => "created_in_1c",
            SkipReason::AlreadySynced => "already_synced",
            SkipReason::NotIn1c => "not_in_1c",
            SkipReason::AlreadyDeactivated => "already_deactivated",
        }
    }
}

/// What an export did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportOutcome {
    /// 1C holds the customer; `write` says whether the row recorded it or already recorded a
    /// newer export.
    Exported {
        onec_id: String,
        created: bool,
        exported_version: u64,
        write: WriteOutcome,
    },
    /// The counterparty now carries the deletion mark.
    Deactivated {
        onec_id: String,
    },
    Skipped(SkipReason),
}

/// How often one export sends a row again because a newer version was exported beside it
/// ([`CustomerExportService`]'s `resend_if_superseded`).
const MAX_RESENDS: usize = 2;

/// Why an export failed; [`Classify`] decides between retry and dead letter.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The customer's data cannot be sent to 1C as it is (bad INN, phone…). Permanent.
    #[error("customer data is not valid for 1C: {0}")]
    Validation(#[source] ValidationErrors),

    #[error("{0}")]
    OneC(#[source] OneCError),

    #[error("{0}")]
    Store(#[source] StoreError),

    /// The invocation's circuit breaker is open (it may have opened while this export waited
    /// for a 1C session): 1C is not called.
    #[error("1C is failing; circuit breaker open")]
    CircuitOpen,

    /// Too little of the invocation is left for a 1C call and its write-back ([`Deadline`]):
    /// 1C is not called, and the message is delivered again instead of the invocation timing
    /// out with the whole batch.
    #[error("too little time left in this invocation for a 1C call")]
    OutOfTime,
}

impl ExportError {
    /// A short stable name for metrics, the sync log and DLQ attributes.
    pub fn kind(&self) -> &'static str {
        match self {
            ExportError::Validation(_) => "validation",
            ExportError::OneC(err) => err.kind(),
            ExportError::Store(err) => err.kind(),
            ExportError::CircuitOpen => "circuit_open",
            ExportError::OutOfTime => "out_of_time",
        }
    }

    /// How long 1C asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ExportError::OneC(err) => err.retry_after(),
            _ => None,
        }
    }

    /// Whether this is 1C failing transiently (what the circuit breaker counts).
    pub fn is_transient_onec_failure(&self) -> bool {
        matches!(self, ExportError::OneC(err) if err.is_retryable())
    }
}

impl Classify for ExportError {
    fn class(&self) -> ErrorClass {
        match self {
            ExportError::Validation(_) => ErrorClass::Permanent,
            ExportError::OneC(err) => err.class(),
            ExportError::Store(err) => err.class(),
            ExportError::CircuitOpen | ExportError::OutOfTime => ErrorClass::Transient,
        }
    }
}

impl From<StoreError> for ExportError {
    fn from(err: StoreError) -> Self {
        ExportError::Store(err)
    }
}

impl From<OneCError> for ExportError {
    fn from(err: OneCError) -> Self {
        ExportError::OneC(err)
    }
}

impl From<ValidationErrors> for ExportError {
    fn from(err: ValidationErrors) -> Self {
        ExportError::Validation(err)
    }
}

/// The 1C sessions of one invocation: at most `limit` calls to 1C at once, none once its
/// circuit breaker is open. A session is held for the 1C call alone; loading the row before and
/// writing the result back after run outside it, so while some exports wait on DynamoDB the
/// sessions serve others and 1C's latency, not ours, sets the pace.
#[derive(Debug)]
pub struct OneCSessions<'a> {
    permits: Semaphore,
    breaker: Option<&'a CircuitBreaker>,
    deadline: Option<Deadline>,
}

/// The last moment an invocation may start a 1C call: Lambda's deadline less a reserve for the
/// call itself (the 1C request timeout) and the write-back after it. A Lambda that runs out of
/// time fails its whole batch, so SQS delivers every message again — including those already
/// exported or dead-lettered — and spends a receive of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    last_start: tokio::time::Instant,
}

impl Deadline {
    pub fn new(deadline: tokio::time::Instant, reserve: Duration) -> Self {
        Self {
            // A reserve reaching before the clock's origin ends before now as well.
            last_start: deadline
                .checked_sub(reserve)
                .unwrap_or_else(tokio::time::Instant::now),
        }
    }

    /// From Lambda's invocation deadline (`Context::deadline`, milliseconds since the epoch).
    pub fn from_epoch_millis(deadline_ms: u64, reserve: Duration) -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        Self::new(tokio::time::Instant::now() + left, reserve)
    }

    fn passed(&self) -> bool {
        tokio::time::Instant::now() >= self.last_start
    }
}

impl<'a> OneCSessions<'a> {
    pub fn new(limit: usize, breaker: Option<&'a CircuitBreaker>) -> Self {
        Self {
            permits: Semaphore::new(limit.clamp(1, Semaphore::MAX_PERMITS)),
            breaker,
            deadline: None,
        }
    }

    /// No session is entered after `deadline` ([`ExportError::OutOfTime`]).
    pub fn with_deadline(mut self, deadline: Option<Deadline>) -> Self {
        self.deadline = deadline;
        self
    }

    /// No bound and no breaker: the caller limits its own concurrency.
    pub fn unlimited() -> Self {
        Self::new(Semaphore::MAX_PERMITS, None)
    }

    /// Waits for a free session; refuses once the breaker is open (it may open while waiting).
    async fn enter(&self) -> Result<SemaphorePermit<'_>, SessionRefused> {
        // `acquire` fails only on a closed semaphore, and this one is never closed.
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| SessionRefused::CircuitOpen)?;
        if self.breaker.is_some_and(CircuitBreaker::is_open) {
            return Err(SessionRefused::CircuitOpen);
        }
        if self.deadline.is_some_and(|d| d.passed()) {
            return Err(SessionRefused::OutOfTime);
        }
        Ok(permit)
    }
}

/// Why [`OneCSessions`] let no call through.
#[derive(Debug, Clone, Copy)]
enum SessionRefused {
    CircuitOpen,
    OutOfTime,
}

impl From<SessionRefused> for ExportError {
    fn from(refused: SessionRefused) -> Self {
        match refused {
            SessionRefused::CircuitOpen => ExportError::CircuitOpen,
            SessionRefused::OutOfTime => ExportError::OutOfTime,
        }
    }
}

/// Exports customers to 1C and records the result.
pub struct CustomerExportService {
    store: Arc<dyn CustomerStore>,
    sync_log: Arc<dyn SyncLog>,
    onec: Arc<dyn OneCClient>,
    mapper: CustomerDataMapper,
    metrics: Arc<Metrics>,
    /// `json`, `odata` or `commerceml`: the `Transport` dimension and a sync log detail.
    transport: String,
    /// The most customers one call to 1C carries (`ONEC_BATCH_SIZE`; 1 = one per call).
    batch_size: usize,
    /// What a removed user means for 1C (`REMOVE_POLICY`, as the stream filter reads it).
    remove_policy: RemovePolicy,
}

/// What loading and mapping a customer decided.
enum Prepared {
    Done(ExportOutcome),
    Send {
        customer: Box<Customer>,
        counterparty: Box<Counterparty>,
    },
}

impl CustomerExportService {
    pub fn new(
        store: Arc<dyn CustomerStore>,
        sync_log: Arc<dyn SyncLog>,
        onec: Arc<dyn OneCClient>,
        mapper: CustomerDataMapper,
        metrics: Arc<Metrics>,
        transport: impl Into<String>,
    ) -> Self {
        Self {
            store,
            sync_log,
            onec,
            mapper,
            metrics,
            transport: transport.into(),
            batch_size: 1,
            remove_policy: RemovePolicy::default(),
        }
    }

    /// What a user removed while its export was in flight means for 1C.
    pub fn with_remove_policy(mut self, policy: RemovePolicy) -> Self {
        self.remove_policy = policy;
        self
    }

    /// Sends up to `batch_size` customers per call to 1C (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.set_batch_size(batch_size);
        self
    }

    pub fn set_batch_size(&mut self, batch_size: usize) {
        self.batch_size = batch_size.max(1);
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn store(&self) -> &Arc<dyn CustomerStore> {
        &self.store
    }

    pub fn sync_log(&self) -> &Arc<dyn SyncLog> {
        &self.sync_log
    }

    pub fn transport(&self) -> &str {
        &self.transport
    }

    /// Exports the customer the message names (or marks it deleted in 1C for a deactivation).
    pub async fn export_customer_to_1c(
        &self,
        msg: &ExportMessage,
    ) -> Result<ExportOutcome, ExportError> {
        self.export_customer_to_1c_within(msg, &OneCSessions::unlimited())
            .await
    }

    /// [`Self::export_customer_to_1c`], calling 1C only within one of `sessions`.
    pub async fn export_customer_to_1c_within(
        &self,
        msg: &ExportMessage,
        sessions: &OneCSessions<'_>,
    ) -> Result<ExportOutcome, ExportError> {
        if msg.reason == ExportReason::Deactivation {
            return self.deactivate(msg, sessions).await;
        }
        match self.prepare(msg).await? {
            Prepared::Done(outcome) => Ok(outcome),
            Prepared::Send {
                customer,
                counterparty,
            } => {
                let (upserted, duration_ms) = {
                    let _session = sessions.enter().await?;
                    self.upsert(&counterparty).await?
                };
                self.finish(&customer, upserted, duration_ms, sessions)
                    .await
            }
        }
    }

    /// Exports the customers several messages name with as few calls to 1C as the transport
    /// allows: rows are loaded and mapped first, the valid ones go to 1C in batches of at most
    /// [`CustomerExportService::batch_size`], then each row gets its own write-back. One result
    /// per message, in order; a customer 1C (or the mapping) refuses fails alone, a failed batch
    /// request fails every customer in it. Deactivations take the single-customer path.
    pub async fn export_customers_to_1c(
        &self,
        msgs: &[ExportMessage],
    ) -> Vec<Result<ExportOutcome, ExportError>> {
        self.export_customers_to_1c_within(msgs, &OneCSessions::unlimited())
            .await
    }

    /// [`Self::export_customers_to_1c`], each 1C call made within one of `sessions`.
    pub async fn export_customers_to_1c_within(
        &self,
        msgs: &[ExportMessage],
        sessions: &OneCSessions<'_>,
    ) -> Vec<Result<ExportOutcome, ExportError>> {
        let mut results: Vec<Option<Result<ExportOutcome, ExportError>>> =
            msgs.iter().map(|_| None).collect();
        let prepared = futures::future::join_all(msgs.iter().map(|msg| async move {
            if msg.reason == ExportReason::Deactivation {
                Ok(None)
            } else {
                self.prepare(msg).await.map(Some)
            }
        }))
        .await;
        let mut sends = Vec::new();
        for (i, prepared) in prepared.into_iter().enumerate() {
            match prepared {
                Ok(None) => results[i] = Some(self.deactivate(&msgs[i], sessions).await),
                Ok(Some(Prepared::Done(outcome))) => results[i] = Some(Ok(outcome)),
                Ok(Some(Prepared::Send {
                    customer,
                    counterparty,
                })) => sends.push((i, customer, counterparty)),
                Err(err) => results[i] = Some(Err(err)),
            }
        }
        for chunk in sends.chunks(self.batch_size) {
            let counterparties: Vec<Counterparty> = chunk
                .iter()
                .map(|(_, _, cp)| Counterparty::clone(cp))
                .collect();
            let (outcomes, duration_ms) = match sessions.enter().await {
                Ok(session) => {
                    let sent = self.upsert_many(&counterparties).await;
                    drop(session);
                    sent
                }
                // The breaker opened or time ran out while this batch waited: none of it is sent.
                Err(refused) => {
                    for (i, _, _) in chunk {
                        results[*i] = Some(Err(refused.into()));
                    }
                    continue;
                }
            };
            let finished = futures::future::join_all(chunk.iter().zip(outcomes).map(
                |((_, customer, _), outcome)| async move {
                    match outcome {
                        Ok(upserted) => {
                            self.finish(customer, upserted, duration_ms, sessions).await
                        }
                        Err(err) => Err(ExportError::OneC(err)),
                    }
                },
            ))
            .await;
            for ((i, _, _), result) in chunk.iter().zip(finished) {
                results[*i] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(ExportError::OneC(OneCError::InvalidRequest(
                        "customer was not exported".into(),
                    )))
                })
            })
            .collect()
    }

    /// Loads the row and decides: nothing to do (skip) or the counterparty to send.
    async fn prepare(&self, msg: &ExportMessage) -> Result<Prepared, ExportError> {
        let Some(StoredCustomer { customer, extra }) = self.store.load(&msg.customer_id).await?
        else {
            self.log(
                CustomerSyncLog::new(
                    &msg.customer_id,
                    SyncOperation::ExportTo1c,
                    SyncLogStatus::Skipped,
                    Utc::now(),
                )
                .with_details(SyncDetails {
                    message: Some(format!(
                        "{}: the user no longer exists",
                        SkipReason::CustomerDeleted.as_str()
                    )),
                    version: Some(msg.version),
                    ..SyncDetails::default()
                }),
            )
            .await;
            return Ok(Prepared::Done(ExportOutcome::Skipped(
                SkipReason::CustomerDeleted,
            )));
        };
        if customer.created_in_1c {
            return Ok(Prepared::Done(ExportOutcome::Skipped(
                SkipReason::CreatedIn1c,
            )));
        }
        if customer.is_in_sync() {
            return Ok(Prepared::Done(ExportOutcome::Skipped(
                SkipReason::AlreadySynced,
            )));
        }
        let counterparty = self.map(&customer, &extra)?;
        Ok(Prepared::Send {
            customer: Box::new(customer),
            counterparty: Box::new(counterparty),
        })
    }

    /// Records what 1C answered for an exported customer: conditional write-back and sync log.
    async fn finish(
        &self,
        customer: &Customer,
        upserted: UpsertOutcome,
        duration_ms: u64,
        sessions: &OneCSessions<'_>,
    ) -> Result<ExportOutcome, ExportError> {
        let write = self
            .record_export(customer, &upserted, duration_ms, None)
            .await?;
        if write == WriteOutcome::Stale {
            tracing::info!(
                customer_id = %customer.id,
                version = customer.version,
                "the row is past this export: a newer change, or this one recorded first"
            );
            self.resend_if_superseded(&customer.id, customer.version, &upserted.onec_id, sessions)
                .await?;
        }
        Ok(ExportOutcome::Exported {
            onec_id: upserted.onec_id,
            created: upserted.created,
            exported_version: customer.version,
            write,
        })
    }

    /// The write-back of one export and its sync log entry (`note`: why it was sent).
    async fn record_export(
        &self,
        customer: &Customer,
        upserted: &UpsertOutcome,
        duration_ms: u64,
        note: Option<String>,
    ) -> Result<WriteOutcome, ExportError> {
        let at = Utc::now();
        let write = self
            .store
            .record_export_success(
                &customer.id,
                &ExportSuccess {
                    onec_id: upserted.onec_id.clone(),
                    onec_version: upserted.data_version.clone(),
                    exported_version: customer.version,
                    at,
                },
            )
            .await?;
        self.log(
            CustomerSyncLog::new(
                &customer.id,
                SyncOperation::ExportTo1c,
                SyncLogStatus::Success,
                at,
            )
            .with_details(SyncDetails {
                onec_id: Some(upserted.onec_id.clone()),
                transport: Some(self.transport.clone()),
                duration_ms: Some(duration_ms),
                version: Some(customer.version),
                message: note,
                ..SyncDetails::default()
            }),
        )
        .await;
        Ok(write)
    }

    /// After a write-back found the row past `exported_version`: if the row holds a newer
    /// version, this export's data may have reached 1C after that version's (the newer export
    /// read its row later but was faster to 1C, or this one waited for a session), and 1C would
    /// keep the older data while the row says it is in sync. So the row as it is now is sent
    /// again. A duplicate of the same version (nothing newer) sends nothing.
    ///
    /// A row removed meanwhile had its deactivation race this export: if that deactivation ran
    /// first, this upsert cleared its deletion mark, so the mark is set again (under the
    /// `deactivate` remove policy; a second deactivation finds the mark and does nothing).
    async fn resend_if_superseded(
        &self,
        id: &str,
        mut exported_version: u64,
        onec_id: &str,
        sessions: &OneCSessions<'_>,
    ) -> Result<(), ExportError> {
        for _ in 0..MAX_RESENDS {
            let Some(StoredCustomer { customer, extra }) = self.store.load(id).await? else {
                if self.remove_policy == RemovePolicy::Deactivate {
                    let removal = ExportMessage {
                        customer_id: id.to_owned(),
                        reason: ExportReason::Deactivation,
                        version: exported_version,
                        changed_at: Utc::now(),
                        onec_id: Some(onec_id.to_owned()),
                    };
                    self.deactivate(&removal, sessions).await?;
                }
                return Ok(());
            };
            if customer.version <= exported_version || customer.created_in_1c {
                return Ok(());
            }
            // Data the mapper refuses is the newer change's own message's to report.
            let Ok(counterparty) = self.map(&customer, &extra) else {
                return Ok(());
            };
            match self
                .resend(&customer, &counterparty, exported_version, sessions)
                .await
            {
                Ok(WriteOutcome::Applied) => return Ok(()),
                Ok(WriteOutcome::Stale) => exported_version = customer.version,
                Err(err) => {
                    // 1C keeps the older data: the row must not say otherwise, so that this
                    // message's retry (or the full sync) sends it again.
                    if customer.is_in_sync() {
                        self.store
                            .reopen_export(id, customer.version, exported_version)
                            .await?;
                    }
                    return Err(err);
                }
            }
        }
        tracing::warn!(
            customer_id = %id,
            "the row kept changing while its exports were sent again; its next change exports it"
        );
        Ok(())
    }

    /// One re-send of the row as it is now, within a session, and its write-back.
    async fn resend(
        &self,
        customer: &Customer,
        counterparty: &Counterparty,
        exported_version: u64,
        sessions: &OneCSessions<'_>,
    ) -> Result<WriteOutcome, ExportError> {
        let (upserted, duration_ms) = {
            let _session = sessions.enter().await?;
            self.upsert(counterparty).await?
        };
        let note = format!("sent again: version {exported_version} may have reached 1C after it");
        self.record_export(customer, &upserted, duration_ms, Some(note))
            .await
    }

    fn map(
        &self,
        customer: &Customer,
        extra: &ExtraAttributes,
    ) -> Result<Counterparty, ExportError> {
        Ok(self.mapper.map_platform_to_1c(customer, extra)?)
    }

    /// The row is usually gone: find the counterparty by platform id (or the reference the
    /// removed row carried) and set its deletion mark — never a physical delete.
    async fn deactivate(
        &self,
        msg: &ExportMessage,
        sessions: &OneCSessions<'_>,
    ) -> Result<ExportOutcome, ExportError> {
        // One session for the lookup and the change: they are one exchange with 1C.
        let session = sessions.enter().await?;
        let mut found = self.onec.find_by_platform_id(&msg.customer_id).await?;
        if found.is_none() {
            if let Some(onec_id) = msg.onec_id.as_deref() {
                found = self.onec.fetch_customer(onec_id).await?;
            }
        }
        let Some(mut counterparty) = found else {
            return Ok(ExportOutcome::Skipped(SkipReason::NotIn1c));
        };
        if counterparty.deletion_mark {
            return Ok(ExportOutcome::Skipped(SkipReason::AlreadyDeactivated));
        }
        counterparty.deletion_mark = true;
        let (upserted, duration_ms) = self.upsert(&counterparty).await?;
        drop(session);
        let at = Utc::now();
        self.log(
            CustomerSyncLog::new(
                &msg.customer_id,
                SyncOperation::DeactivateIn1c,
                SyncLogStatus::Success,
                at,
            )
            .with_details(SyncDetails {
                onec_id: Some(upserted.onec_id.clone()),
                transport: Some(self.transport.clone()),
                duration_ms: Some(duration_ms),
                version: Some(msg.version),
                ..SyncDetails::default()
            }),
        )
        .await;
        Ok(ExportOutcome::Deactivated {
            onec_id: upserted.onec_id,
        })
    }

    /// One batch call; the duration is the whole call's, shared by its customers.
    async fn upsert_many(
        &self,
        counterparties: &[Counterparty],
    ) -> (Vec<Result<UpsertOutcome, OneCError>>, u64) {
        let started = Instant::now();
        let results = self.onec.upsert_customers(counterparties).await;
        let elapsed = started.elapsed();
        self.metrics.duration_ms(
            ONEC_CALL_LATENCY,
            elapsed.as_secs_f64() * 1000.0,
            &[(Dimension::Transport, &self.transport)],
        );
        (
            results,
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        )
    }

    async fn upsert(&self, counterparty: &Counterparty) -> Result<(UpsertOutcome, u64), OneCError> {
        let started = Instant::now();
        let result = self.onec.upsert_customer(counterparty).await;
        let elapsed = started.elapsed();
        self.metrics.duration_ms(
            ONEC_CALL_LATENCY,
            elapsed.as_secs_f64() * 1000.0,
            &[(Dimension::Transport, &self.transport)],
        );
        let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        result.map(|outcome| (outcome, duration_ms))
    }

    /// The log is for operators; failing to write it must not undo or repeat an export.
    async fn log(&self, entry: CustomerSyncLog) {
        if let Err(err) = self.sync_log.append(entry).await {
            tracing::warn!(error = %err, "cannot append to the sync log");
        }
    }
}

/// How the row's `sync_error_message` starts when transient failures used up a message's
/// attempts: the one retryable kind of `error`, which the full sync enqueues again (the row
/// keeps no error class of its own).
const EXHAUSTED_RETRIES_PREFIX: &str = "gave up after ";

/// The row's error message after the last of `attempts` failed transiently with `reason`.
pub fn exhausted_retries_message(attempts: u32, reason: &str) -> String {
    format!("{EXHAUSTED_RETRIES_PREFIX}{attempts} attempts: {reason}")
}

/// Whether a row's error message says its attempts ran out on transient failures.
pub fn is_exhausted_retries_message(message: &str) -> bool {
    message.starts_with(EXHAUSTED_RETRIES_PREFIX)
}

/// A failed attempt as the row and the sync log record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureReport {
    pub status: crate::ports::FailureStatus,
    /// Readable, free of contact data; becomes `sync_error_message`.
    pub message: String,
    pub error_class: ErrorClass,
    pub error_kind: String,
    /// The SQS receive count of the attempt.
    pub attempt: u32,
}

impl CustomerExportService {
    /// Records a failure that ends this message's attempts on the row (unless it is already
    /// synced at the message's version or gone) and in the sync log.
    pub async fn record_failure(
        &self,
        msg: &ExportMessage,
        report: &FailureReport,
    ) -> Result<WriteOutcome, StoreError> {
        let at = Utc::now();
        let write = self
            .store
            .record_export_failure(
                &msg.customer_id,
                &crate::ports::ExportFailure {
                    status: report.status,
                    message: report.message.clone(),
                    attempts: report.attempt,
                    version: msg.version,
                    at,
                },
            )
            .await;
        self.log_failure_at(msg, report, at).await;
        write
    }

    /// Records an attempt that will be retried in the sync log only. The users row is left
    /// alone: every write to it is a stream record, and retries must not multiply them (the
    /// row gets the outcome; the log and the `ExportFailed` metric show the attempts).
    pub async fn log_failure(&self, msg: &ExportMessage, report: &FailureReport) {
        self.log_failure_at(msg, report, Utc::now()).await;
    }

    async fn log_failure_at(
        &self,
        msg: &ExportMessage,
        report: &FailureReport,
        at: chrono::DateTime<Utc>,
    ) {
        let operation = match msg.reason {
            ExportReason::Deactivation => SyncOperation::DeactivateIn1c,
            _ => SyncOperation::ExportTo1c,
        };
        let status = match report.status {
            crate::ports::FailureStatus::Retrying => SyncLogStatus::Retrying,
            crate::ports::FailureStatus::Error => SyncLogStatus::Error,
        };
        self.log(
            CustomerSyncLog::new(&msg.customer_id, operation, status, at).with_details(
                SyncDetails {
                    error_class: Some(report.error_class),
                    error_kind: Some(report.error_kind.clone()),
                    message: Some(report.message.clone()),
                    attempt: Some(report.attempt),
                    transport: Some(self.transport.clone()),
                    version: Some(msg.version),
                    ..SyncDetails::default()
                },
            ),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_from_lambdas_clock_keeps_the_reserve_free_and_a_past_one_has_passed() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after the epoch")
            .as_millis() as u64;
        // 10 s left, 4 s reserved: calls may start for about 6 s
        let deadline = Deadline::from_epoch_millis(now_ms + 10_000, Duration::from_secs(4));
        assert!(!deadline.passed());
        tokio::time::advance(Duration::from_millis(5_500)).await;
        assert!(!deadline.passed());
        tokio::time::advance(Duration::from_millis(1_000)).await;
        assert!(deadline.passed());
        // A deadline already behind, or a reserve longer than what is left
        assert!(Deadline::from_epoch_millis(now_ms - 1_000, Duration::ZERO).passed());
        let short = Deadline::from_epoch_millis(now_ms + 60_000, Duration::from_secs(3_600));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(short.passed());
    }

    #[test]
    fn a_message_of_exhausted_retries_is_told_apart_from_a_permanent_failure() {
        let exhausted = exhausted_retries_message(5, "1C answered 503");
        assert_eq!(exhausted, "gave up after 5 attempts: 1C answered 503");
        assert!(is_exhausted_retries_message(&exhausted));
        assert!(!is_exhausted_retries_message(
            "customer data is not valid for 1C: tax_id: check digit mismatch"
        ));
    }
}
