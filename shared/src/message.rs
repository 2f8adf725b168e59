//! The message the filter enqueues and the exporter consumes.
//!
//! It names the customer and why, not the customer's data: the exporter always reads the current
//! row, so an old, duplicated or reordered message is harmless and quick edits coalesce.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a customer needs exporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportReason {
    /// A new platform registration (priority queue).
    Registration,
    /// A significant field changed (bulk queue).
    ProfileChange,
    /// Someone set `needs_1c_export=true` on the row.
    ExplicitRequest,
    /// The user was removed from the platform: mark the counterparty, never delete it.
    Deactivation,
    /// Enqueued by a full sync run.
    FullSync,
}

impl ExportReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExportReason::Registration => "registration",
            ExportReason::ProfileChange => "profile_change",
            ExportReason::ExplicitRequest => "explicit_request",
            ExportReason::Deactivation => "deactivation",
            ExportReason::FullSync => "full_sync",
        }
    }
}

/// Which queue a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// New registrations: the 15-minute promise.
    Priority,
    /// Everything else.
    Bulk,
}

impl ExportReason {
    pub fn lane(self) -> Lane {
        match self {
            ExportReason::Registration => Lane::Priority,
            _ => Lane::Bulk,
        }
    }
}

/// Body of an export message (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportMessage {
    pub customer_id: String,
    pub reason: ExportReason,
    /// The row `version` that caused the message.
    pub version: u64,
    /// When the change happened (stream record time, or enqueue time for full sync).
    pub changed_at: DateTime<Utc>,
    /// For deactivations: the 1C reference from the removed row's last image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onec_id: Option<String>,
}
