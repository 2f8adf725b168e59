//! Which users the export scan enqueues.

use shared::domain::{Customer, SyncStatus};
use shared::export::is_exhausted_retries_message;

/// The attributes [`export_need`] reads: the scan projects only these.
pub const DECISION_ATTRIBUTES: &[&str] = &[
    "id",
    "version",
    "synced_version",
    "created_in_1c",
    "needs_1c_export",
    "sync_status",
    "sync_error_message",
];

/// Why a user needs exporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportNeed {
    /// A transient failure is being retried (its message may have been lost).
    Retrying,
    /// The attempts ran out on transient failures; 1C may be back.
    ExhaustedRetries,
    /// `needs_1c_export` is set.
    Flagged,
    /// Never exported.
    NeverSynced,
    /// Changed since its last export (`version > synced_version`).
    Changed,
}

/// Whether the full sync enqueues this user, and why.
///
/// Never: users created in 1C (1C owns them; exporting would echo), users 1C already holds at
/// their version, and users whose export of this version failed permanently (a data problem;
/// sending them again only fills the DLQ). A row changed since its permanent failure (a fix,
/// whose stream record may have been lost) is exported again.
pub fn export_need(user: &Customer) -> Option<ExportNeed> {
    if user.created_in_1c || user.is_in_sync() {
        return None;
    }
    match user.sync_status {
        Some(SyncStatus::Retrying) => Some(ExportNeed::Retrying),
        Some(SyncStatus::Error) => {
            if user
                .sync_error_message
                .as_deref()
                .is_some_and(is_exhausted_retries_message)
            {
                Some(ExportNeed::ExhaustedRetries)
            } else if user
                .failed_version
                .is_some_and(|failed| failed < user.version)
            {
                Some(ExportNeed::Changed)
            } else {
                None
            }
        }
        _ if user.needs_1c_export => Some(ExportNeed::Flagged),
        _ if user.synced_version.is_none() => Some(ExportNeed::NeverSynced),
        _ => Some(ExportNeed::Changed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(changes: impl FnOnce(&mut Customer)) -> Customer {
        let mut user = Customer {
            id: "u".into(),
            version: 3,
            synced_version: Some(3),
            sync_status: Some(SyncStatus::Synced),
            ..Customer::default()
        };
        changes(&mut user);
        user
    }

    #[test]
    fn users_in_sync_or_created_in_1c_are_not_exported() {
        assert_eq!(export_need(&user(|_| {})), None);
        assert_eq!(
            export_need(&user(|u| {
                u.created_in_1c = true;
                u.synced_version = None;
                u.needs_1c_export = true;
            })),
            None
        );
        // An explicit flag on a row 1C already holds: the exporter would skip it.
        assert_eq!(export_need(&user(|u| u.needs_1c_export = true)), None);
    }

    #[test]
    fn flagged_never_synced_changed_and_retrying_users_are_exported() {
        assert_eq!(
            export_need(&user(|u| {
                u.version = 4;
                u.needs_1c_export = true;
                u.sync_status = Some(SyncStatus::Pending);
            })),
            Some(ExportNeed::Flagged)
        );
        assert_eq!(
            export_need(&user(|u| {
                u.synced_version = None;
                u.sync_status = None;
            })),
            Some(ExportNeed::NeverSynced)
        );
        assert_eq!(
            export_need(&user(|u| u.version = 4)),
            Some(ExportNeed::Changed)
        );
        assert_eq!(
            export_need(&user(|u| {
                u.version = 4;
                u.sync_status = Some(SyncStatus::Retrying);
            })),
            Some(ExportNeed::Retrying)
        );
    }

    #[test]
    fn an_error_is_exported_again_when_retries_ran_out_or_the_row_changed_since() {
        let failed = |message: &str, failed_version: Option<u64>| {
            user(|u| {
                u.version = 4;
                u.needs_1c_export = true;
                u.sync_status = Some(SyncStatus::Error);
                u.sync_error_message = Some(message.into());
                u.failed_version = failed_version;
            })
        };
        assert_eq!(
            export_need(&failed(
                "gave up after 5 attempts: 1C answered 503",
                Some(4)
            )),
            Some(ExportNeed::ExhaustedRetries)
        );
        // Refused at this very version: sending it again would only fill the DLQ
        assert_eq!(
            export_need(&failed("the INN has a wrong checksum", Some(4))),
            None
        );
        assert_eq!(
            export_need(&failed("the INN has a wrong checksum", None)),
            None
        );
        // Refused at version 3, edited since (a fix whose stream record may be lost)
        assert_eq!(
            export_need(&failed("the INN has a wrong checksum", Some(3))),
            Some(ExportNeed::Changed)
        );
    }
}
