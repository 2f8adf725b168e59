//! Queue ports: enqueueing export messages (the stream filter), and flagging a new row as pending
//! before its registration message goes out.
//!
//! Control of a received message (backoff, dead-lettering) is [`super::MessageControl`].

use crate::error::{Classify, ErrorClass};
use crate::message::{ExportMessage, Lane};
use crate::ports::{CustomerStore, StoreError, WriteOutcome};
use async_trait::async_trait;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where export messages go: one queue per [`Lane`].
#[async_trait]
pub trait ExportQueue: Send + Sync {
    /// Sends `batch` to the lane's queue.
    ///
    /// The inner results line up with `batch`: a queue may accept some messages of a batch and
    /// refuse others. `Err` means a call failed as a whole and the messages' fate is unknown
    /// (earlier groups may have been sent; duplicates are harmless, the exporter reads the row).
    async fn enqueue(
        &self,
        lane: Lane,
        batch: &[ExportMessage],
    ) -> Result<Vec<Result<(), QueueError>>, QueueError>;
}

/// Flags a freshly registered row for export (`needs_1c_export=true`, `sync_status=pending`).
///
/// The narrow slice of [`CustomerStore`] the stream filter needs; every store provides it.
#[async_trait]
pub trait PendingMarker: Send + Sync {
    /// Flags the row if it is still at `version`; [`WriteOutcome::Stale`] means a newer write
    /// exists (its own stream record follows) or the row is gone.
    async fn mark_pending(&self, id: &str, version: u64) -> Result<WriteOutcome, StoreError>;
}

#[async_trait]
impl<T: CustomerStore + ?Sized> PendingMarker for T {
    async fn mark_pending(&self, id: &str, version: u64) -> Result<WriteOutcome, StoreError> {
        CustomerStore::mark_pending(self, id, version).await
    }
}

/// Enqueueing failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue call itself failed (network, throttling, a missing queue, no rights).
    #[error("SendMessageBatch to the {lane:?} queue failed ({class})")]
    Request {
        lane: Lane,
        class: ErrorClass,
        #[source]
        source: BoxError,
    },

    /// The queue answered but refused this message. `sender_fault` entries are the request's
    /// fault (too large, invalid attribute) and are not retried.
    #[error("the {lane:?} queue refused a message: {code} ({class})")]
    Rejected {
        lane: Lane,
        code: String,
        sender_fault: bool,
        class: ErrorClass,
    },

    /// The message could not be turned into a queue entry; a bug, not a queue problem.
    #[error("cannot encode an export message")]
    Encode {
        #[source]
        source: BoxError,
    },

    /// The queue's answer named no outcome for this message.
    #[error("the {lane:?} queue reported no outcome for a message")]
    MissingResult { lane: Lane },
}

impl QueueError {
    /// A short stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            QueueError::Request { .. } => "queue_request",
            QueueError::Rejected { .. } => "queue_rejected",
            QueueError::Encode { .. } => "queue_encode",
            QueueError::MissingResult { .. } => "queue_missing_result",
        }
    }
}

impl Classify for QueueError {
    fn class(&self) -> ErrorClass {
        match self {
            QueueError::Request { class, .. } | QueueError::Rejected { class, .. } => *class,
            QueueError::Encode { .. } => ErrorClass::Permanent,
            // SQS normally lists every entry; sending again is the safe reaction.
            QueueError::MissingResult { .. } => ErrorClass::Transient,
        }
    }
}
