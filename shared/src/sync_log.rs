//! `CustomerSyncLog`: one entry per sync attempt outcome, kept for a retention period.
//!
//! The log is for operators answering "what happened to this customer's export?", so entries
//! name the customer by id only and carry error classes and 1C's own messages, never contact
//! data. Stored by [`crate::ports::SyncLog`] (DynamoDB adapter: pk `customer_id`, sk
//! `<rfc3339>#<uuid>`, TTL attribute `expires_at`).

use crate::error::ErrorClass;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOperation {
    #[serde(rename = "export_to_1c")]
    ExportTo1c,
    #[serde(rename = "deactivate_in_1c")]
    DeactivateIn1c,
    #[serde(rename = "import_from_1c")]
    ImportFrom1c,
    Conflict,
}

impl SyncOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOperation::ExportTo1c => "export_to_1c",
            SyncOperation::DeactivateIn1c => "deactivate_in_1c",
            SyncOperation::ImportFrom1c => "import_from_1c",
            SyncOperation::Conflict => "conflict",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncLogStatus {
    Success,
    Retrying,
    Error,
    Skipped,
}

impl SyncLogStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncLogStatus::Success => "success",
            SyncLogStatus::Retrying => "retrying",
            SyncLogStatus::Error => "error",
            SyncLogStatus::Skipped => "skipped",
        }
    }
}

/// Free-form but PII-free details of an entry; absent fields are not stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onec_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<ErrorClass>,
    /// A short stable name such as `unavailable`, `validation`, `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// Human-readable and free of contact data (1C's error text, a validation summary, a skip
    /// reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The SQS receive count of the attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// `json`, `odata` or `commerceml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// Time spent in the 1C call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// The row version the entry is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// One sync log entry (the story's `CustomerSyncLog`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSyncLog {
    pub customer_id: String,
    pub operation_type: SyncOperation,
    pub status: SyncLogStatus,
    pub at: DateTime<Utc>,
    pub details: SyncDetails,
}

/// The name the ports use for an entry.
pub type SyncLogEntry = CustomerSyncLog;

impl CustomerSyncLog {
    pub fn new(
        customer_id: impl Into<String>,
        operation_type: SyncOperation,
        status: SyncLogStatus,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            customer_id: customer_id.into(),
            operation_type,
            status,
            at,
            details: SyncDetails::default(),
        }
    }

    pub fn with_details(mut self, details: SyncDetails) -> Self {
        self.details = details;
        self
    }
}

/// Default number of days an entry is kept (`SYNC_LOG_RETENTION_DAYS`).
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_serialise_without_absent_fields_and_with_snake_case_names() {
        // Given details with an error class and a message only
        let details = SyncDetails {
            error_class: Some(ErrorClass::Permanent),
            message: Some("1C rejected the request".into()),
            ..SyncDetails::default()
        };

        // When serialised
        let json = serde_json::to_value(&details).expect("details serialise");

        // Then only the present fields appear, in the stored spelling
        assert_eq!(
            json,
            serde_json::json!({"error_class": "permanent", "message": "1C rejected the request"})
        );
    }

    #[test]
    fn operation_and_status_names_match_their_stored_strings() {
        for op in [
            SyncOperation::ExportTo1c,
            SyncOperation::DeactivateIn1c,
            SyncOperation::ImportFrom1c,
            SyncOperation::Conflict,
        ] {
            assert_eq!(serde_json::to_value(op).ok(), Some(op.as_str().into()));
        }
        for status in [
            SyncLogStatus::Success,
            SyncLogStatus::Retrying,
            SyncLogStatus::Error,
            SyncLogStatus::Skipped,
        ] {
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(status.as_str().into())
            );
        }
    }
}
