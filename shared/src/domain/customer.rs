use serde::{Deserialize, Serialize};

/// Sync state of a customer, written only by onec-sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// Waiting for an export (new registration or significant change).
    Pending,
    /// 1C holds the platform's data as of `synced_version`.
    Synced,
    /// A transient failure happened; the export is being retried.
    Retrying,
    /// A permanent failure; `sync_error_message` says why. Needs an operator or a data fix.
    Error,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Pending => "pending",
            SyncStatus::Synced => "synced",
            SyncStatus::Retrying => "retrying",
            SyncStatus::Error => "error",
        }
    }
}

/// Attributes onec-sync owns on the `users` row. Writes by this system touch only these (plus,
/// for the 1C import, the fields 1C owns), and a change in these alone is never a reason to export.
pub const BOOKKEEPING_ATTRIBUTES: &[&str] = &[
    "needs_1c_export",
    "onec_id",
    "onec_version",
    "sync_status",
    "last_sync_at",
    "sync_error_message",
    "export_attempts",
    "failed_version",
    "synced_version",
    "last_change_source",
];

/// A platform user as stored in the `users` table (partition key `id`).
///
/// Contact and tax fields are kept as the platform stored them: validation happens when the
/// customer is mapped for 1C ([`crate::mapping::CustomerDataMapper`]), so a bad value becomes a
/// visible export error instead of an unreadable row. Attributes the platform adds that this type
/// does not know are not carried here; every write onec-sync makes is an `UpdateItem` on named
/// attributes, so they survive.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// INN (ИНН).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kpp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,

    #[serde(default)]
    pub needs_1c_export: bool,
    /// The user was created by the 1C import; it is never exported back.
    #[serde(default)]
    pub created_in_1c: bool,
    /// 1C's reference (`Ref_Key` GUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onec_id: Option<String>,
    /// 1C's `DataVersion` (or the transport's equivalent) as of the last sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onec_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_status: Option<SyncStatus>,
    /// RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_error_message: Option<String>,
    #[serde(default)]
    pub export_attempts: u32,
    /// The row's `version` whose export last failed (the `error`/`retrying` status is about
    /// it): a row changed since a permanent failure is exported again by the full sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_version: Option<u64>,
    /// The row's `version` that 1C is known to hold. `synced_version >= version` means in sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synced_version: Option<u64>,
    /// `"1c"` when the last write of platform fields came from the 1C import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_source: Option<String>,

    /// Monotonic row version, incremented by every write of platform fields.
    #[serde(default)]
    pub version: u64,
    /// RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl Customer {
    /// 1C already holds this version of the customer (or a newer one).
    pub fn is_in_sync(&self) -> bool {
        self.synced_version.is_some_and(|v| v >= self.version)
    }
}
