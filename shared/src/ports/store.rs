//! Storage ports: the users table (bookkeeping writes), the sync log, and control of a received
//! queue message (backing it off, dead-lettering it), which the exporter needs beside them.

use crate::domain::Customer;
use crate::error::{Classify, ErrorClass};
use crate::message::Lane;
use crate::sync_log::SyncLogEntry;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether a conditional write happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Applied,
    /// The condition did not hold: the row is gone, or it already records this version (or a
    /// newer one). Expected with duplicates and reordering, so not an error.
    Stale,
}

/// A completed export, to be written back to the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSuccess {
    pub onec_id: String,
    pub onec_version: String,
    /// The row `version` whose data 1C now holds.
    pub exported_version: u64,
    pub at: DateTime<Utc>,
}

/// The status a failed export leaves on the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureStatus {
    /// Transient: the message will be delivered again.
    Retrying,
    /// Permanent, or the attempt budget is spent: needs an operator or a data fix.
    Error,
}

/// A failed export attempt, to be written back to the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFailure {
    pub status: FailureStatus,
    /// Readable and free of contact data.
    pub message: String,
    pub attempts: u32,
    /// The row version the attempt was for; a row already synced at it is left alone.
    pub version: u64,
    pub at: DateTime<Utc>,
}

/// A row as read: the customer, and its other scalar attributes as strings, from which the
/// mapping file's extra fields are taken (`crate::mapping::ExtraAttributes`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredCustomer {
    pub customer: Customer,
    pub extra: BTreeMap<String, String>,
}

/// The `users` table as onec-sync sees it. Every write is a conditional update of bookkeeping
/// attributes only, so platform attributes (known or not) are never overwritten.
#[async_trait]
pub trait CustomerStore: Send + Sync {
    /// The current row (strongly consistent), or `None` when there is none.
    async fn load(&self, id: &str) -> Result<Option<StoredCustomer>, StoreError>;

    async fn get(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        Ok(self.load(id).await?.map(|stored| stored.customer))
    }

    /// Flags the row for export if it is still at `version`.
    async fn mark_pending(&self, id: &str, version: u64) -> Result<WriteOutcome, StoreError>;

    /// Records an export unless the row already records this version or a newer one. A row
    /// still at the exported version becomes `synced` ([`WriteOutcome::Applied`]); one that
    /// moved past it gets only the 1C reference, version and `synced_version`, keeping its newer
    /// change's status and error, and is [`WriteOutcome::Stale`] like a row already recording
    /// this version or a newer one.
    async fn record_export_success(
        &self,
        id: &str,
        success: &ExportSuccess,
    ) -> Result<WriteOutcome, StoreError>;

    /// Records a failed attempt unless the row is already synced at `failure.version` or later.
    async fn record_export_failure(
        &self,
        id: &str,
        failure: &ExportFailure,
    ) -> Result<WriteOutcome, StoreError>;

    /// 1C holds `held_version`'s data although the row records `recorded_version` as synced (an
    /// older export reached 1C last, and sending the row again failed): the row is set to need
    /// an export again (`synced_version = held_version`, flagged, `pending`). Only while the row
    /// is still at `recorded_version`, in sync; a newer change exports anyway.
    async fn reopen_export(
        &self,
        id: &str,
        recorded_version: u64,
        held_version: u64,
    ) -> Result<WriteOutcome, StoreError>;
}

/// Append-only log of sync attempts (`CustomerSyncLog`).
#[async_trait]
pub trait SyncLog: Send + Sync {
    async fn append(&self, entry: SyncLogEntry) -> Result<(), StoreError>;
}

/// A storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The request to the database failed; `class` says whether the same call can succeed later
    /// (throttling, 5xx, network) or not (a malformed request).
    #[error("{operation} on {table} failed ({class})")]
    Request {
        operation: &'static str,
        table: String,
        class: ErrorClass,
        #[source]
        source: BoxError,
    },

    /// The row exists but is not a readable customer (a wrong attribute type). Retrying will not
    /// fix it; the reason is kept in the source, which may quote the value, so it is not shown.
    #[error("row {id} cannot be read as a customer")]
    Undecodable {
        id: String,
        #[source]
        source: BoxError,
    },

    /// A value could not be turned into the database's representation.
    #[error("cannot encode {what} for {table}")]
    Encode {
        what: &'static str,
        table: String,
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// A short stable name for metrics and the sync log.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Request { .. } => "store_request",
            StoreError::Undecodable { .. } => "undecodable_row",
            StoreError::Encode { .. } => "store_encode",
        }
    }
}

impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        match self {
            StoreError::Request { class, .. } => *class,
            StoreError::Undecodable { .. } | StoreError::Encode { .. } => ErrorClass::Permanent,
        }
    }
}

/// Why a message is dead-lettered by the exporter (the DLQ message attribute `reason`).
/// Messages that exhaust their attempts reach the DLQ through the redrive policy instead and carry
/// no `reason` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// The body is not an export message.
    MalformedMessage,
    /// The export failed in a way retrying cannot fix.
    PermanentFailure,
}

impl DeadLetterReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::MalformedMessage => "malformed_message",
            DeadLetterReason::PermanentFailure => "permanent_failure",
        }
    }
}

/// A message to move to the dead-letter queue, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The original body, unchanged, so a redrive can replay it.
    pub body: String,
    pub reason: DeadLetterReason,
    pub error_class: ErrorClass,
    pub error_kind: String,
    /// Readable and free of contact data.
    pub error_message: String,
    /// Absent when the body could not be parsed.
    pub customer_id: Option<String>,
    pub original_message_id: String,
}

/// Control of a message the exporter received.
#[async_trait]
pub trait MessageControl: Send + Sync {
    /// Keeps the message invisible for `delay` (capped at [`MAX_VISIBILITY`]) before its next
    /// delivery.
    async fn delay_retry(
        &self,
        lane: Lane,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), MessageControlError>;

    /// Sends the message to the dead-letter queue with the reason as message attributes.
    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), MessageControlError>;
}

/// The longest backoff asked of SQS. SQS allows 12 h, counted from the receive (moto and AWS
/// refuse a new timeout that would end later), so an hour is left for the time the message has
/// already been in flight.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(11 * 60 * 60);

/// A queue control call failed.
#[derive(Debug, thiserror::Error)]
pub enum MessageControlError {
    #[error("cannot change the visibility of a {lane:?} message ({class})")]
    ChangeVisibility {
        lane: Lane,
        class: ErrorClass,
        #[source]
        source: BoxError,
    },

    #[error("cannot send to the dead-letter queue ({class})")]
    DeadLetter {
        class: ErrorClass,
        #[source]
        source: BoxError,
    },
}

impl Classify for MessageControlError {
    fn class(&self) -> ErrorClass {
        match self {
            MessageControlError::ChangeVisibility { class, .. }
            | MessageControlError::DeadLetter { class, .. } => *class,
        }
    }
}
