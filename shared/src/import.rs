//! 1C → platform import: applies counterparties changed in 1C to `users` with field ownership
//! and conflict resolution (issue 5). The rules are documented for operators in
//! `docs/conflicts.md`; this is the implementation.
//!
//! [`ImportService::import_page`] reads one page of [`OneCClient::list_changed`], maps every
//! counterparty with [`CustomerDataMapper::map_1c_to_platform`] and applies it:
//!
//! - **with a platform id** → the user with that id gets the values of the fields 1C owns
//!   (`[ownership]` of the mapping file, [`crate::mapping::MappingConfig::owner_of`]); fields the
//!   platform owns are never written;
//! - **without a platform id** → the user already created for it (deterministic id
//!   [`user_id_for_counterparty`], else [`ImportStore::find_by_onec_id`]) is updated the same way,
//!   or a user is created with `created_in_1c=true`, in sync, never exported (the stream filter
//!   and the exporter skip `created_in_1c` users);
//! - **unchanged since the last sync** (`onec_version` equals 1C's `DataVersion`), or no field
//!   that differs → nothing is written. Recording only 1C's new `DataVersion` would be a write
//!   (and a stream record) that changes no data; a row without `onec_id` is never in sync, so
//!   its export links it;
//! - 1C's deletion mark creates no user and removes none: the platform decides about accounts.
//!
//! Conflicts (per field, only where 1C holds a value that differs from the platform's):
//! - a 1C-owned field while the row has unexported platform changes (`version >
//!   synced_version`): 1C's value is written (`onec_owns_field`);
//! - a platform-owned field while the row is in sync (so 1C changed it): the platform's value is
//!   kept (`platform_owns_field`). With unexported platform changes such a difference is the
//!   platform's pending change, which the queued export brings to 1C: no conflict.
//!
//! Every conflict is one sync-log entry (`conflict`) naming the field, both values (contact and
//! tax data masked) and the rule. There is no automatic re-export of a platform-owned value: a
//! 1C that rewrites a value on save would make that an endless loop; the platform's value reaches
//! 1C with the user's next export.
//!
//! Loop freedom: every write is an `UpdateItem` conditioned on the `version` read (re-read and
//! recomputed on a conflict, [`MAX_WRITE_ATTEMPTS`] times), so a concurrent platform edit is never
//! overwritten. A write of platform fields bumps `version` and sets `last_change_source` to
//! [`IMPORT_CHANGE_SOURCE`]; when the row was in sync it also sets `synced_version` to the new
//! version, which is what makes the stream filter ignore it (`written_by_sync`) — 1C already
//! holds it. When the row has unexported platform changes, `synced_version` is left behind, so
//! the pending export still happens (now carrying 1C's role/status); the filter may enqueue one
//! more message for that row, which the exporter skips once the row is synced.
//!
//! Errors: a counterparty that cannot be mapped (unknown role, bad INN…), a platform row that
//! cannot be read, or a counterparty linked to a user that is linked to another counterparty is
//! counted as an error with a sync-log entry, and the page continues. A failure that retrying can
//! fix (1C or DynamoDB unavailable, a row that kept changing) fails the whole page, so its
//! watermark is never returned and the caller retries the page; applying a page twice is
//! harmless.

use crate::domain::{Customer, Email, Inn, Kpp, Phone, SyncStatus};
use crate::error::{Classify, ErrorClass};
use crate::mapping::{
    fields, CustomerDataMapper, FieldOwner, PlatformCustomerUpdate, MAPPED_FIELDS,
};
use crate::onec::{Counterparty, OneCClient, OneCError};
use crate::pii;
use crate::ports::{StoreError, StoredCustomer, SyncLog, WriteOutcome};
use crate::sync_log::{CustomerSyncLog, SyncDetails, SyncLogStatus, SyncOperation};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `last_change_source` of a row whose platform fields the import wrote last.
pub const IMPORT_CHANGE_SOURCE: &str = "1c";

/// Attempts of one conditional write before the page gives up (transiently) on a row that keeps
/// changing under it.
pub const MAX_WRITE_ATTEMPTS: u32 = 5;

/// The id of the user created for a counterparty entered in 1C: a UUID v5 of its reference, so a
/// retried or repeated import finds the user it created instead of creating a second one.
pub fn user_id_for_counterparty(onec_id: &str) -> String {
    let name = format!(
        "urn:onec-sync:counterparty:{}",
        onec_id.to_ascii_lowercase()
    );
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
}

/// A user to create from a counterparty entered in 1C.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    /// Complete, with `created_in_1c`, `version` and `synced_version` set.
    pub customer: Customer,
    /// Import extra fields: platform attribute → value.
    pub extra: BTreeMap<String, String>,
}

/// One conditional update of an existing user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportWrite {
    /// The write happens only while the row is at this version.
    pub expected_version: u64,
    /// Platform fields (1C-owned) → their new value. Non-empty: `version` goes up by one and
    /// `last_change_source` becomes [`IMPORT_CHANGE_SOURCE`]. Empty: a bookkeeping-only write.
    pub fields: BTreeMap<String, String>,
    /// Set `synced_version` to the new version: 1C holds everything the row will hold.
    pub mark_in_sync: bool,
    pub onec_id: String,
    pub onec_version: Option<String>,
    pub at: DateTime<Utc>,
}

impl ImportWrite {
    /// The row's version after the write.
    pub fn new_version(&self) -> u64 {
        if self.fields.is_empty() {
            self.expected_version
        } else {
            self.expected_version + 1
        }
    }
}

/// What the import needs from the `users` table.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// The current row (strongly consistent), or `None`.
    async fn load(&self, id: &str) -> Result<Option<StoredCustomer>, StoreError>;

    /// The user linked to this 1C reference, or `None`.
    async fn find_by_onec_id(&self, onec_id: &str) -> Result<Option<StoredCustomer>, StoreError>;

    /// Creates the user unless a row with its id exists ([`WriteOutcome::Stale`]).
    async fn create(&self, user: &NewUser) -> Result<WriteOutcome, StoreError>;

    /// Applies the write if the row still exists at `write.expected_version`
    /// ([`WriteOutcome::Stale`] otherwise).
    async fn apply(&self, id: &str, write: &ImportWrite) -> Result<WriteOutcome, StoreError>;
}

/// What one page did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportPageReport {
    /// Users created from counterparties entered in 1C.
    pub imported: u64,
    /// Users whose 1C-owned fields changed.
    pub updated: u64,
    /// Conflicting fields (one sync-log entry each).
    pub conflicts: u64,
    /// Counterparties that could not be applied (one sync-log entry each).
    pub errors: u64,
    /// Counterparties with nothing to change (incl. already imported versions and users removed
    /// from the platform).
    pub unchanged: u64,
    /// Pass back for the next page; `None` after the last page.
    pub next_cursor: Option<String>,
    /// Store after this page; the next import starts from it.
    pub watermark: Option<String>,
}

/// A page could not be applied as a whole; nothing of its watermark may be stored.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot list changed counterparties: {0}")]
    OneC(#[source] OneCError),

    #[error("cannot apply counterparty {onec_id}: {source}")]
    Store {
        onec_id: String,
        #[source]
        source: StoreError,
    },

    /// The row changed under every attempt (a burst of platform edits); the page is retried.
    #[error("user {id} kept changing; gave up after {attempts} attempts")]
    Contended { id: String, attempts: u32 },
}

impl ImportError {
    /// A short stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ImportError::OneC(err) => err.kind(),
            ImportError::Store { source, .. } => source.kind(),
            ImportError::Contended { .. } => "contended",
        }
    }
}

impl Classify for ImportError {
    fn class(&self) -> ErrorClass {
        match self {
            ImportError::OneC(err) => err.class(),
            ImportError::Store { source, .. } => source.class(),
            ImportError::Contended { .. } => ErrorClass::Transient,
        }
    }
}

/// Which rule decided a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictRule {
    /// 1C owns the field: its value is written.
    OneCOwnsField,
    /// The platform owns the field: its value is kept.
    PlatformOwnsField,
}

impl ConflictRule {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictRule::OneCOwnsField => "onec_owns_field",
            ConflictRule::PlatformOwnsField => "platform_owns_field",
        }
    }
}

/// One conflicting field, values masked where they are personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    pub field: String,
    pub platform_value: Option<String>,
    pub onec_value: String,
    pub rule: ConflictRule,
}

impl FieldConflict {
    /// The sync-log message: stable `key=value` pairs, values masked.
    pub fn describe(&self) -> String {
        let platform = self
            .platform_value
            .as_deref()
            .map_or_else(|| "<none>".to_owned(), |v| masked(&self.field, v));
        let (kept, side) = match self.rule {
            ConflictRule::OneCOwnsField => ("onec", "1C"),
            ConflictRule::PlatformOwnsField => ("platform", "platform"),
        };
        format!(
            "field={} platform=\"{}\" onec=\"{}\" rule={} kept={kept} ({side} owns the field)",
            self.field,
            platform,
            masked(&self.field, &self.onec_value),
            self.rule.as_str(),
        )
    }
}

/// Role and status are codes, not personal data; everything else the import compares is.
fn masked(field: &str, value: &str) -> String {
    match field {
        fields::ROLE | fields::STATUS => value.to_owned(),
        fields::EMAIL => pii::mask_email(value),
        fields::PHONE => pii::mask_phone(value),
        fields::TAX_ID | fields::KPP => pii::mask_inn(value),
        _ => pii::mask(value),
    }
}

/// How one counterparty ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    Created,
    Updated,
    Unchanged,
    Failed,
}

/// Applies 1C's changes to the platform's users.
pub struct ImportService {
    client: Arc<dyn OneCClient>,
    store: Arc<dyn ImportStore>,
    log: Arc<dyn SyncLog>,
    mapper: CustomerDataMapper,
}

impl ImportService {
    pub fn new(
        client: Arc<dyn OneCClient>,
        store: Arc<dyn ImportStore>,
        log: Arc<dyn SyncLog>,
        mapper: CustomerDataMapper,
    ) -> Self {
        Self {
            client,
            store,
            log,
            mapper,
        }
    }

    /// Reads one page of counterparties changed after `watermark` (continuing at `cursor`) and
    /// applies it. The report's watermark is returned only when the whole page was applied.
    pub async fn import_page(
        &self,
        watermark: Option<&str>,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<ImportPageReport, ImportError> {
        let page = self
            .client
            .list_changed(watermark, cursor, page_size)
            .await
            .map_err(ImportError::OneC)?;
        let mut report = ImportPageReport::default();
        for cp in &page.items {
            let (applied, conflicts) = self.apply_counterparty(cp).await?;
            report.conflicts += conflicts;
            match applied {
                Applied::Created => report.imported += 1,
                Applied::Updated => report.updated += 1,
                Applied::Unchanged => report.unchanged += 1,
                Applied::Failed => report.errors += 1,
            }
        }
        report.next_cursor = page.next_cursor;
        report.watermark = page.watermark;
        Ok(report)
    }

    /// Applies one counterparty; `Err` only for what retrying the page can fix.
    async fn apply_counterparty(&self, cp: &Counterparty) -> Result<(Applied, u64), ImportError> {
        let log_key = log_key(cp);
        let update = match self.mapper.map_1c_to_platform(cp) {
            Ok(update) => update,
            Err(problems) => {
                // The problems name fields and reasons, never values.
                self.log_error(
                    &log_key,
                    cp.onec_id.clone(),
                    "unmappable",
                    &problems.to_string(),
                )
                .await;
                return Ok((Applied::Failed, 0));
            }
        };
        match self.apply_update(&update).await {
            Ok(done) => Ok(done),
            Err(ImportError::Store { source, .. }) if !source.is_retryable() => {
                self.log_error(
                    &log_key,
                    Some(update.onec_id.clone()),
                    source.kind(),
                    &source.to_string(),
                )
                .await;
                Ok((Applied::Failed, 0))
            }
            Err(err) => Err(err),
        }
    }

    async fn apply_update(
        &self,
        update: &PlatformCustomerUpdate,
    ) -> Result<(Applied, u64), ImportError> {
        let store_err = |source| ImportError::Store {
            onec_id: update.onec_id.clone(),
            source,
        };
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let current = match &update.platform_id {
                Some(id) => self.store.load(id).await.map_err(store_err)?,
                None => self
                    .find_created(&update.onec_id)
                    .await
                    .map_err(store_err)?,
            };
            let Some(current) = current else {
                return match &update.platform_id {
                    Some(id) => Ok((self.user_gone(id, update).await, 0)),
                    None => self.create(update).await,
                };
            };
            let id = current.customer.id.clone();
            if let Some(linked) = current.customer.onec_id.as_deref() {
                if !linked.eq_ignore_ascii_case(&update.onec_id) {
                    let message = format!(
                        "the user is linked to counterparty {linked}, not to {}",
                        update.onec_id
                    );
                    self.log_error(
                        &id,
                        Some(update.onec_id.clone()),
                        "linked_elsewhere",
                        &message,
                    )
                    .await;
                    return Ok((Applied::Failed, 0));
                }
            }
            let plan = self.plan(&current, update);
            if plan.nothing_to_write {
                // A platform-owned field 1C changed is still a conflict to report, though
                // nothing is written for it.
                for conflict in &plan.conflicts {
                    self.log_conflict(&id, update, current.customer.version, conflict)
                        .await;
                }
                return Ok((Applied::Unchanged, plan.conflicts.len() as u64));
            }
            let write = ImportWrite {
                expected_version: current.customer.version,
                fields: plan.fields.clone(),
                mark_in_sync: current.customer.is_in_sync(),
                onec_id: update.onec_id.clone(),
                onec_version: update.onec_version.clone(),
                at: Utc::now(),
            };
            match self.store.apply(&id, &write).await.map_err(store_err)? {
                WriteOutcome::Stale => continue,
                WriteOutcome::Applied => {
                    let conflicts = plan.conflicts.len() as u64;
                    for conflict in &plan.conflicts {
                        self.log_conflict(&id, update, write.new_version(), conflict)
                            .await;
                    }
                    let applied = if write.fields.is_empty() {
                        Applied::Unchanged
                    } else {
                        self.log_success(&id, update, write.new_version(), &write.fields)
                            .await;
                        Applied::Updated
                    };
                    return Ok((applied, conflicts));
                }
            }
        }
        Err(ImportError::Contended {
            id: update
                .platform_id
                .clone()
                .unwrap_or_else(|| user_id_for_counterparty(&update.onec_id)),
            attempts: MAX_WRITE_ATTEMPTS,
        })
    }

    /// The user created for a counterparty entered in 1C: by its deterministic id, else by
    /// reference (a user linked to it some other way).
    async fn find_created(&self, onec_id: &str) -> Result<Option<StoredCustomer>, StoreError> {
        if let Some(found) = self.store.load(&user_id_for_counterparty(onec_id)).await? {
            return Ok(Some(found));
        }
        self.store.find_by_onec_id(onec_id).await
    }

    /// What to write to `current` for `update`, and the conflicts found.
    fn plan(&self, current: &StoredCustomer, update: &PlatformCustomerUpdate) -> Plan {
        let customer = &current.customer;
        let already_imported = update.onec_version.is_some()
            && customer.onec_version == update.onec_version
            && customer.onec_id.is_some();
        if already_imported {
            return Plan::unchanged();
        }
        let config = self.mapper.config();
        let platform_dirty = !customer.is_in_sync();
        let mut plan = Plan::default();
        let names = MAPPED_FIELDS
            .iter()
            .map(|f| (*f).to_owned())
            .chain(config.import_extras().map(|e| e.platform.clone()));
        for field in names {
            let Some(onec) = normalized(&field, update.value_of(&field)) else {
                // 1C says nothing: never clears a platform value.
                continue;
            };
            let platform_raw = platform_value(current, &field);
            if normalized(&field, platform_raw.as_deref()).as_deref() == Some(onec.as_str()) {
                continue;
            }
            match config.owner_of(&field) {
                Some(FieldOwner::OneC) => {
                    if platform_dirty {
                        plan.conflicts.push(FieldConflict {
                            field: field.clone(),
                            platform_value: platform_raw,
                            onec_value: onec.clone(),
                            rule: ConflictRule::OneCOwnsField,
                        });
                    }
                    plan.fields.insert(field, onec);
                }
                Some(FieldOwner::Platform) if !platform_dirty => {
                    plan.conflicts.push(FieldConflict {
                        field,
                        platform_value: platform_raw,
                        onec_value: onec,
                        rule: ConflictRule::PlatformOwnsField,
                    });
                }
                // The platform's pending change; its export is on its way.
                Some(FieldOwner::Platform) | None => {}
            }
        }
        plan.nothing_to_write = plan.fields.is_empty();
        plan
    }

    /// A counterparty naming a user the platform no longer has: the removal's deactivation
    /// reaches 1C through the export; nothing to import, and no user is re-created.
    async fn user_gone(&self, id: &str, update: &PlatformCustomerUpdate) -> Applied {
        if !update.deletion_mark {
            self.log(
                CustomerSyncLog::new(
                    id,
                    SyncOperation::ImportFrom1c,
                    SyncLogStatus::Skipped,
                    Utc::now(),
                )
                .with_details(SyncDetails {
                    onec_id: Some(update.onec_id.clone()),
                    message: Some("user_gone: the platform user no longer exists".into()),
                    ..SyncDetails::default()
                }),
            )
            .await;
        }
        Applied::Unchanged
    }

    async fn create(&self, update: &PlatformCustomerUpdate) -> Result<(Applied, u64), ImportError> {
        if update.deletion_mark {
            // Marked for deletion in 1C before the platform ever saw it.
            return Ok((Applied::Unchanged, 0));
        }
        let at = Utc::now();
        let id = user_id_for_counterparty(&update.onec_id);
        let user = NewUser {
            customer: Customer {
                id: id.clone(),
                email: update.email.clone(),
                phone: update.phone.clone(),
                first_name: update.first_name.clone(),
                last_name: update.last_name.clone(),
                company_name: update.company_name.clone(),
                tax_id: update.tax_id.clone(),
                kpp: update.kpp.clone(),
                role: update.role.clone(),
                status: update.status.clone(),
                needs_1c_export: false,
                created_in_1c: true,
                onec_id: Some(update.onec_id.clone()),
                onec_version: update.onec_version.clone(),
                sync_status: Some(SyncStatus::Synced),
                last_sync_at: Some(timestamp(at)),
                sync_error_message: None,
                export_attempts: 0,
                failed_version: None,
                synced_version: Some(1),
                last_change_source: Some(IMPORT_CHANGE_SOURCE.to_owned()),
                version: 1,
                updated_at: None,
            },
            extra: update.extra.clone(),
        };
        let outcome = self
            .store
            .create(&user)
            .await
            .map_err(|source| ImportError::Store {
                onec_id: update.onec_id.clone(),
                source,
            })?;
        if outcome == WriteOutcome::Stale {
            // Created meanwhile (a concurrent or repeated import): apply to it instead.
            return Box::pin(self.apply_update(update)).await;
        }
        self.log(
            CustomerSyncLog::new(&id, SyncOperation::ImportFrom1c, SyncLogStatus::Success, at)
                .with_details(SyncDetails {
                    onec_id: Some(update.onec_id.clone()),
                    message: Some("created: a user for a counterparty entered in 1C".into()),
                    version: Some(1),
                    ..SyncDetails::default()
                }),
        )
        .await;
        Ok((Applied::Created, 0))
    }

    async fn log_success(
        &self,
        id: &str,
        update: &PlatformCustomerUpdate,
        version: u64,
        written: &BTreeMap<String, String>,
    ) {
        let names = written.keys().map(String::as_str).collect::<Vec<_>>();
        self.log(
            CustomerSyncLog::new(
                id,
                SyncOperation::ImportFrom1c,
                SyncLogStatus::Success,
                Utc::now(),
            )
            .with_details(SyncDetails {
                onec_id: Some(update.onec_id.clone()),
                message: Some(format!("updated: {}", names.join(", "))),
                version: Some(version),
                ..SyncDetails::default()
            }),
        )
        .await;
    }

    async fn log_conflict(
        &self,
        id: &str,
        update: &PlatformCustomerUpdate,
        version: u64,
        conflict: &FieldConflict,
    ) {
        self.log(
            CustomerSyncLog::new(
                id,
                SyncOperation::Conflict,
                SyncLogStatus::Success,
                Utc::now(),
            )
            .with_details(SyncDetails {
                onec_id: Some(update.onec_id.clone()),
                message: Some(conflict.describe()),
                version: Some(version),
                ..SyncDetails::default()
            }),
        )
        .await;
    }

    async fn log_error(&self, key: &str, onec_id: Option<String>, kind: &str, message: &str) {
        self.log(
            CustomerSyncLog::new(
                key,
                SyncOperation::ImportFrom1c,
                SyncLogStatus::Error,
                Utc::now(),
            )
            .with_details(SyncDetails {
                onec_id,
                error_class: Some(ErrorClass::Permanent),
                error_kind: Some(kind.to_owned()),
                message: Some(pii::scrub(message)),
                ..SyncDetails::default()
            }),
        )
        .await;
    }

    /// The log is for operators; failing to write it must not fail or repeat the import.
    async fn log(&self, entry: CustomerSyncLog) {
        if let Err(err) = self.log.append(entry).await {
            tracing::warn!(error = %err, "cannot append to the sync log");
        }
    }
}

#[derive(Debug, Default)]
struct Plan {
    fields: BTreeMap<String, String>,
    conflicts: Vec<FieldConflict>,
    nothing_to_write: bool,
}

impl Plan {
    fn unchanged() -> Self {
        Self {
            nothing_to_write: true,
            ..Self::default()
        }
    }
}

/// The sync-log partition of a counterparty: its platform id, else its 1C reference.
fn log_key(cp: &Counterparty) -> String {
    if !cp.platform_id.trim().is_empty() {
        return cp.platform_id.clone();
    }
    match cp.onec_id.as_deref().filter(|id| !id.trim().is_empty()) {
        Some(onec_id) => user_id_for_counterparty(onec_id),
        None => "1c:unknown".to_owned(),
    }
}

fn platform_value(current: &StoredCustomer, field: &str) -> Option<String> {
    let c = &current.customer;
    let value = match field {
        fields::EMAIL => &c.email,
        fields::PHONE => &c.phone,
        fields::FIRST_NAME => &c.first_name,
        fields::LAST_NAME => &c.last_name,
        fields::COMPANY_NAME => &c.company_name,
        fields::TAX_ID => &c.tax_id,
        fields::KPP => &c.kpp,
        fields::ROLE => &c.role,
        fields::STATUS => &c.status,
        other => return current.extra.get(other).cloned(),
    };
    value.clone()
}

/// A value as the mapper would send it (trimmed, E.164 phone, normalised e-mail and tax ids), so
/// formatting differences between the platform and 1C are not conflicts. Blank → `None`; a
/// value the domain type refuses is compared as typed.
fn normalized(field: &str, value: Option<&str>) -> Option<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    let parsed = match field {
        fields::EMAIL => Email::parse(value).ok().map(String::from),
        fields::PHONE => Phone::parse(value).ok().map(String::from),
        fields::TAX_ID => Inn::parse(value).ok().map(String::from),
        fields::KPP => Kpp::parse(value).ok().map(String::from),
        _ => None,
    };
    Some(parsed.unwrap_or_else(|| value.to_owned()))
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{decide, Decision, FilterPolicy, IgnoreReason, RemovePolicy};
    use crate::onec::CounterpartyKind;
    use crate::ports::CustomerStore;
    use crate::testing::{FakeChangeFeed, FakeCustomerStore, FakeSyncLog};
    use aws_lambda_events::event::dynamodb::EventRecord;
    use serde_json::{json, Value};

    const REF: &str = "1fa1a135-d89b-11e6-8343-40167e2531c3";
    const OTHER_REF: &str = "2fa1a135-d89b-11e6-8343-40167e2531c3";

    /// A platform user exported at version 3, as the exporter leaves it.
    fn synced_user(id: &str) -> Customer {
        Customer {
            id: id.into(),
            email: Some("anna@example.com".into()),
            phone: Some("+7 912 345-67-89".into()),
            first_name: Some("Анна".into()),
            last_name: Some("Иванова".into()),
            role: Some("retail".into()),
            status: Some("active".into()),
            onec_id: Some(REF.into()),
            onec_version: Some("v1".into()),
            sync_status: Some(SyncStatus::Synced),
            synced_version: Some(3),
            version: 3,
            ..Customer::default()
        }
    }

    /// The same customer as 1C holds it, at `data_version`.
    fn in_1c(platform_id: &str, data_version: &str) -> Counterparty {
        Counterparty {
            platform_id: platform_id.into(),
            onec_id: Some(REF.into()),
            data_version: Some(data_version.into()),
            kind: CounterpartyKind::Individual,
            name: "Иванова Анна".into(),
            full_name: "Иванова Анна".into(),
            first_name: Some("Анна".into()),
            last_name: Some("Иванова".into()),
            contact_person: None,
            inn: None,
            kpp: None,
            email: Some("anna@example.com".into()),
            phone: Some("+79123456789".into()),
            role: Some("Розница".into()),
            status: Some("Активен".into()),
            deletion_mark: false,
            extra: BTreeMap::new(),
        }
    }

    struct Rig {
        store: Arc<FakeCustomerStore>,
        log: Arc<FakeSyncLog>,
        feed: Arc<FakeChangeFeed>,
    }

    impl Rig {
        fn new(users: Vec<Customer>, changes: Vec<Counterparty>) -> Self {
            Self {
                store: Arc::new(FakeCustomerStore::with_customers(users)),
                log: Arc::new(FakeSyncLog::new()),
                feed: Arc::new(FakeChangeFeed::new(changes)),
            }
        }

        fn service_with(&self, store: Arc<dyn ImportStore>) -> ImportService {
            ImportService::new(
                self.feed.clone(),
                store,
                self.log.clone(),
                CustomerDataMapper::default(),
            )
        }

        async fn import(&self) -> Result<ImportPageReport, ImportError> {
            self.service_with(self.store.clone())
                .import_page(None, None, 100)
                .await
        }

        fn user(&self, id: &str) -> Customer {
            self.store.customer(id).expect("the user exists")
        }

        fn messages(&self, operation: SyncOperation) -> Vec<String> {
            self.log
                .entries()
                .into_iter()
                .filter(|e| e.operation_type == operation)
                .filter_map(|e| e.details.message)
                .collect()
        }
    }

    fn policy() -> FilterPolicy {
        FilterPolicy::new(
            crate::mapping::MappingConfig::default().significant_fields(),
            RemovePolicy::Deactivate,
        )
    }

    fn record(event: &str, old: Option<&Customer>, new: &Customer) -> EventRecord {
        let mut r = EventRecord::default();
        r.event_name = event.into();
        r.change.old_image = old
            .map(|c| serde_dynamo::to_item(c).expect("a customer encodes"))
            .unwrap_or_default();
        r.change.new_image = serde_dynamo::to_item(new).expect("a customer encodes");
        r
    }

    #[tokio::test]
    async fn a_role_and_status_changed_in_1c_reach_a_synced_user_without_an_export() {
        // Given a synced user, and 1C making them wholesale and blocked
        let before = synced_user("u-1");
        let mut cp = in_1c("u-1", "v2");
        cp.role = Some("Опт".into());
        cp.status = Some("Заблокирован".into());
        let rig = Rig::new(vec![before.clone()], vec![cp]);
        rig.store.insert_row({
            let mut row = serde_json::to_value(&before).expect("encodes");
            row["loyalty_tier"] = json!("gold");
            row
        });

        // When the page is imported
        let report = rig.import().await.expect("the page applies");

        // Then the user has 1C's role and status, a new version that 1C already holds
        let after = rig.user("u-1");
        assert_eq!(report.updated, 1);
        assert_eq!(report.conflicts, 0);
        assert_eq!(after.role.as_deref(), Some("wholesale"));
        assert_eq!(after.status.as_deref(), Some("blocked"));
        assert_eq!((after.version, after.synced_version), (4, Some(4)));
        assert_eq!(after.onec_version.as_deref(), Some("v2"));
        assert_eq!(
            after.last_change_source.as_deref(),
            Some(IMPORT_CHANGE_SOURCE)
        );
        assert_eq!(
            rig.store
                .row("u-1")
                .and_then(|r| r.get("loyalty_tier").cloned()),
            Some(json!("gold"))
        );
        // and the stream filter ignores the write: no ping-pong
        let decision = decide(&record("MODIFY", Some(&before), &after), &policy()).unwrap();
        assert_eq!(decision, Decision::Ignore(IgnoreReason::WrittenBySync));
    }

    #[tokio::test]
    async fn a_counterparty_entered_in_1c_becomes_a_created_in_1c_user_that_is_never_exported() {
        // Given a counterparty entered in 1C, with no platform id
        let mut cp = in_1c("", "v1");
        cp.onec_id = Some(OTHER_REF.into());
        cp.role = Some("Опт".into());
        let rig = Rig::new(vec![], vec![cp.clone()]);

        // When it is imported twice (a repeated page)
        let first = rig.import().await.expect("the page applies");
        let second = rig.import().await.expect("the page applies again");

        // Then one user exists, created in 1C, in sync, with 1C's data
        let id = user_id_for_counterparty(OTHER_REF);
        let user = rig.user(&id);
        assert_eq!(
            (first.imported, second.imported, second.unchanged),
            (1, 0, 1)
        );
        assert!(user.created_in_1c);
        assert!(!user.needs_1c_export);
        assert_eq!(user.sync_status, Some(SyncStatus::Synced));
        assert_eq!(user.onec_id.as_deref(), Some(OTHER_REF));
        assert_eq!(user.role.as_deref(), Some("wholesale"));
        assert_eq!(user.phone.as_deref(), Some("+79123456789"));
        assert!(user.is_in_sync());
        // and the filter never exports it, nor a later platform edit of it
        let insert = decide(&record("INSERT", None, &user), &policy()).unwrap();
        let mut edited = user.clone();
        edited.email = Some("new@example.com".into());
        edited.version += 1;
        let modify = decide(&record("MODIFY", Some(&user), &edited), &policy()).unwrap();
        assert_eq!(insert, Decision::Ignore(IgnoreReason::CreatedIn1C));
        assert_eq!(modify, Decision::Ignore(IgnoreReason::CreatedIn1C));
    }

    #[tokio::test]
    async fn the_exporter_skips_a_user_created_from_1c_even_when_asked_to_export_it() {
        // Given a user the import created from a counterparty entered in 1C
        let mut cp = in_1c("", "v1");
        cp.onec_id = Some(OTHER_REF.into());
        let rig = Rig::new(vec![], vec![cp]);
        rig.import().await.expect("the page applies");
        let id = user_id_for_counterparty(OTHER_REF);
        let onec = Arc::new(crate::testing::FakeOneCClient::new());
        let exporter = crate::export::CustomerExportService::new(
            rig.store.clone(),
            rig.log.clone(),
            onec.clone(),
            CustomerDataMapper::default(),
            Arc::new(crate::metrics::Metrics::new("OnecSyncTest", "import-test")),
            "json",
        );

        // When an export message for it arrives (e.g. a full-sync export)
        let outcome = exporter
            .export_customer_to_1c(&crate::message::ExportMessage {
                customer_id: id,
                reason: crate::message::ExportReason::ExplicitRequest,
                version: 1,
                changed_at: Utc::now(),
                onec_id: None,
            })
            .await
            .expect("the export decides");

        // Then nothing is sent to 1C
        assert_eq!(
            outcome,
            crate::export::ExportOutcome::Skipped(crate::export::SkipReason::CreatedIn1c)
        );
        assert_eq!(onec.call_count(), 0);
    }

    #[tokio::test]
    async fn an_unexported_platform_role_change_loses_to_1c_and_is_logged_with_both_values() {
        // Given a platform edit of the role not yet exported (version 4, synced 3)...
        let mut user = synced_user("u-1");
        user.role = Some("vip".into());
        user.version = 4;
        // ...and 1C making the customer a partner meanwhile
        let mut cp = in_1c("u-1", "v2");
        cp.role = Some("Партнёр".into());
        let rig = Rig::new(vec![user], vec![cp]);

        // When imported
        let report = rig.import().await.expect("the page applies");

        // Then 1C's value wins, the pending export is kept, and the conflict is logged
        let after = rig.user("u-1");
        assert_eq!((report.updated, report.conflicts), (1, 1));
        assert_eq!(after.role.as_deref(), Some("partner"));
        assert_eq!((after.version, after.synced_version), (5, Some(3)));
        assert_eq!(
            rig.messages(SyncOperation::Conflict),
            vec![
                "field=role platform=\"vip\" onec=\"partner\" rule=onec_owns_field kept=onec \
                 (1C owns the field)"
                    .to_owned()
            ]
        );
    }

    #[tokio::test]
    async fn a_1c_edit_of_a_platform_owned_email_keeps_the_platform_value_and_logs_it_masked() {
        // Given a synced user whose e-mail someone changed in 1C
        let mut cp = in_1c("u-1", "v2");
        cp.email = Some("other.person@corp.ru".into());
        let rig = Rig::new(vec![synced_user("u-1")], vec![cp]);

        // When imported
        let report = rig.import().await.expect("the page applies");

        // Then the platform's e-mail stays and nothing is written to the row
        let after = rig.user("u-1");
        assert_eq!(
            (report.updated, report.unchanged, report.conflicts),
            (0, 1, 1)
        );
        assert_eq!(after.email.as_deref(), Some("anna@example.com"));
        assert_eq!((after.version, after.synced_version), (3, Some(3)));
        assert!(rig.store.writes().is_empty());
        // and the log holds both values, masked
        let messages = rig.messages(SyncOperation::Conflict);
        assert_eq!(
            messages,
            vec![
                "field=email platform=\"a***@e***.com\" onec=\"o***@c***.ru\" \
                 rule=platform_owns_field kept=platform (platform owns the field)"
                    .to_owned()
            ]
        );
        assert!(!messages[0].contains("anna@example.com"));
    }

    #[tokio::test]
    async fn a_pending_platform_change_of_a_platform_owned_field_is_not_a_conflict() {
        // Given the platform changed the phone (not yet exported); 1C still has the old one
        let mut user = synced_user("u-1");
        user.phone = Some("+7 999 000-00-01".into());
        user.version = 4;
        let rig = Rig::new(vec![user], vec![in_1c("u-1", "v2")]);

        // When imported
        let report = rig.import().await.expect("the page applies");

        // Then the platform's phone stays and nothing is logged as a conflict
        assert_eq!(report.conflicts, 0);
        assert_eq!(rig.user("u-1").phone.as_deref(), Some("+7 999 000-00-01"));
        assert!(rig.messages(SyncOperation::Conflict).is_empty());
    }

    #[tokio::test]
    async fn formatting_differences_are_neither_changes_nor_conflicts() {
        // Given a platform phone with spaces and dashes and 1C holding it in E.164
        let rig = Rig::new(vec![synced_user("u-1")], vec![in_1c("u-1", "v2")]);

        // When imported
        let report = rig.import().await.expect("the page applies");

        // Then nothing is written: equal data costs no write and no stream record
        assert_eq!(
            (report.updated, report.unchanged, report.conflicts),
            (0, 1, 0)
        );
        assert!(rig.store.writes().is_empty());
    }

    #[tokio::test]
    async fn an_already_imported_data_version_writes_nothing() {
        // Given 1C's counterparty at the version the row already records
        let rig = Rig::new(vec![synced_user("u-1")], vec![in_1c("u-1", "v1")]);

        // When imported
        let report = rig.import().await.expect("the page applies");

        // Then no write happens
        assert_eq!(report.unchanged, 1);
        assert!(rig.store.writes().is_empty());
    }

    /// A store where the platform edits the row between the import's read and its write.
    struct RacingStore {
        inner: Arc<FakeCustomerStore>,
        edits_left: std::sync::Mutex<u32>,
    }

    #[async_trait]
    impl ImportStore for RacingStore {
        async fn load(&self, id: &str) -> Result<Option<StoredCustomer>, StoreError> {
            ImportStore::load(self.inner.as_ref(), id).await
        }

        async fn find_by_onec_id(
            &self,
            onec_id: &str,
        ) -> Result<Option<StoredCustomer>, StoreError> {
            self.inner.find_by_onec_id(onec_id).await
        }

        async fn create(&self, user: &NewUser) -> Result<WriteOutcome, StoreError> {
            self.inner.create(user).await
        }

        async fn apply(&self, id: &str, write: &ImportWrite) -> Result<WriteOutcome, StoreError> {
            let edit = {
                let mut left = self.edits_left.lock().unwrap_or_else(|e| e.into_inner());
                let edit = *left > 0;
                *left = left.saturating_sub(1);
                edit
            };
            if edit {
                // The platform changes the role and the e-mail, bumping the version.
                let mut row = self.inner.row(id).expect("the row exists");
                let version = row["version"].as_u64().unwrap_or(0);
                row["role"] = json!("vip");
                row["email"] = json!("anna.new@example.com");
                row["version"] = json!(version + 1);
                self.inner.insert_row(row);
            }
            self.inner.apply(id, write).await
        }
    }

    #[tokio::test]
    async fn a_platform_edit_between_read_and_write_is_not_lost() {
        // Given 1C making a synced user wholesale, and the platform editing the row at that moment
        let mut cp = in_1c("u-1", "v2");
        cp.role = Some("Опт".into());
        let rig = Rig::new(vec![synced_user("u-1")], vec![cp]);
        let racing = Arc::new(RacingStore {
            inner: rig.store.clone(),
            edits_left: std::sync::Mutex::new(1),
        });

        // When imported
        let report = rig
            .service_with(racing)
            .import_page(None, None, 10)
            .await
            .expect("the page applies");

        // Then the first write was refused, the row re-read: the platform's e-mail survives,
        // the 1C-owned role is 1C's (a logged conflict), and the platform's edit is still to be
        // exported
        let after = rig.user("u-1");
        assert_eq!((report.updated, report.conflicts), (1, 1));
        assert_eq!(after.email.as_deref(), Some("anna.new@example.com"));
        assert_eq!(after.role.as_deref(), Some("wholesale"));
        assert_eq!((after.version, after.synced_version), (5, Some(3)));
        let outcomes: Vec<_> = rig.store.writes().iter().map(|w| w.outcome).collect();
        assert_eq!(outcomes, vec![WriteOutcome::Stale, WriteOutcome::Applied]);
        assert_eq!(rig.messages(SyncOperation::Conflict).len(), 1);
    }

    #[tokio::test]
    async fn a_row_that_keeps_changing_fails_the_page_transiently() {
        // Given a platform that edits the row before every write
        let mut cp = in_1c("u-1", "v2");
        cp.role = Some("Опт".into());
        let rig = Rig::new(vec![synced_user("u-1")], vec![cp]);
        let racing = Arc::new(RacingStore {
            inner: rig.store.clone(),
            edits_left: std::sync::Mutex::new(u32::MAX),
        });

        // When imported
        let err = rig
            .service_with(racing)
            .import_page(None, None, 10)
            .await
            .unwrap_err();

        // Then the page fails, retryably, after the bounded attempts
        assert_eq!(err.kind(), "contended");
        assert!(err.is_retryable());
        assert_eq!(rig.store.writes().len(), MAX_WRITE_ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn an_unmappable_counterparty_is_an_error_and_the_page_continues() {
        // Given a page with an unknown 1C role first and a valid change after it
        let mut bad = in_1c("u-1", "v2");
        bad.role = Some("Дилер".into());
        let mut good = in_1c("u-2", "v2");
        good.onec_id = Some(OTHER_REF.into());
        good.status = Some("Заблокирован".into());
        let mut other = synced_user("u-2");
        other.onec_id = Some(OTHER_REF.into());
        let rig = Rig::new(vec![synced_user("u-1"), other], vec![bad, good]);

        // When imported
        let report = rig.import().await.expect("the page applies");

        // Then the bad one is an error with a log entry, the good one is applied, and the
        // watermark is returned
        assert_eq!((report.errors, report.updated), (1, 1));
        assert_eq!(rig.user("u-1").role.as_deref(), Some("retail"));
        assert_eq!(rig.user("u-2").status.as_deref(), Some("blocked"));
        assert_eq!(report.watermark.as_deref(), Some("2"));
        let errors: Vec<_> = rig
            .log
            .entries_for("u-1")
            .into_iter()
            .filter(|e| e.status == SyncLogStatus::Error)
            .collect();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].details.error_kind.as_deref(), Some("unmappable"));
    }

    #[tokio::test]
    async fn a_user_linked_to_another_counterparty_is_an_error_not_an_overwrite() {
        // Given 1C holding a second counterparty that claims the platform id of u-1
        let mut duplicate = in_1c("u-1", "v9");
        duplicate.onec_id = Some(OTHER_REF.into());
        duplicate.role = Some("Опт".into());
        let rig = Rig::new(vec![synced_user("u-1")], vec![duplicate]);

        // When imported
        let report = rig.import().await.expect("the page applies");

        // Then the user is untouched and the error is logged
        assert_eq!(report.errors, 1);
        assert_eq!(rig.user("u-1").role.as_deref(), Some("retail"));
        assert!(rig.store.writes().is_empty());
    }

    #[tokio::test]
    async fn a_transient_store_failure_fails_the_page_without_a_watermark() {
        // Given DynamoDB throttling the read
        let rig = Rig::new(vec![synced_user("u-1")], vec![in_1c("u-1", "v2")]);
        rig.store.fail_next(StoreError::Request {
            operation: "GetItem",
            table: "users".into(),
            class: ErrorClass::Transient,
            source: "throttled".into(),
        });

        // When imported
        let err = rig.import().await.unwrap_err();

        // Then the page fails retryably (the caller keeps its old watermark)
        assert!(err.is_retryable());
        assert_eq!(err.kind(), "store_request");
    }

    #[tokio::test]
    async fn an_unreadable_row_is_an_error_of_that_counterparty_only() {
        // Given a row whose version is not a number, then a valid change
        let rig = Rig::new(vec![], vec![in_1c("u-1", "v2")]);
        rig.store
            .insert_row(json!({"id": "u-1", "version": "three", "onec_id": REF}));
        let mut cp = in_1c("", "v1");
        cp.onec_id = Some(OTHER_REF.into());
        rig.feed.push(cp);

        // When imported
        let report = rig.import().await.expect("the page applies");

        // Then one error, one user created
        assert_eq!((report.errors, report.imported), (1, 1));
    }

    #[tokio::test]
    async fn a_1c_failure_fails_the_page_with_its_class() {
        let rig = Rig::new(vec![], vec![]);
        rig.feed.fail_next(OneCError::Unavailable {
            status: 503,
            retry_after: None,
            detail: None,
        });
        let err = rig.import().await.unwrap_err();
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn pages_follow_the_cursor_and_each_returns_its_watermark() {
        // Given five counterparties entered in 1C
        let changes: Vec<Counterparty> = (0..5)
            .map(|i| {
                let mut cp = in_1c("", "v1");
                cp.onec_id = Some(format!("00000000-0000-4000-8000-00000000000{i}"));
                cp
            })
            .collect();
        let rig = Rig::new(vec![], changes);
        let service = rig.service_with(rig.store.clone());

        // When imported in pages of two
        let mut cursor: Option<String> = None;
        let mut watermarks = Vec::new();
        let mut imported = 0;
        loop {
            let report = service
                .import_page(None, cursor.as_deref(), 2)
                .await
                .expect("the page applies");
            imported += report.imported;
            watermarks.push(report.watermark.clone());
            cursor = report.next_cursor;
            if cursor.is_none() {
                break;
            }
        }

        // Then every counterparty became a user once, over three pages
        assert_eq!(imported, 5);
        assert_eq!(
            watermarks,
            vec![Some("2".into()), Some("4".into()), Some("5".into())]
        );
        assert_eq!(rig.store.writes().len(), 5);
    }

    #[tokio::test]
    async fn a_counterparty_of_a_removed_user_recreates_nothing() {
        // Given 1C holding a counterparty whose platform user is gone
        let rig = Rig::new(vec![], vec![in_1c("u-gone", "v2")]);

        // When imported
        let report = rig.import().await.expect("the page applies");

        // Then nothing is created; the skip is logged
        assert_eq!((report.unchanged, report.imported), (1, 0));
        assert!(rig.store.customer("u-gone").is_none());
        assert_eq!(
            rig.log.entries_for("u-gone")[0].status,
            SyncLogStatus::Skipped
        );
    }

    #[test]
    fn the_created_user_id_depends_on_the_reference_only() {
        assert_eq!(
            user_id_for_counterparty(REF),
            user_id_for_counterparty(&REF.to_uppercase())
        );
        assert_ne!(
            user_id_for_counterparty(REF),
            user_id_for_counterparty(OTHER_REF)
        );
    }

    #[tokio::test]
    async fn the_fake_import_store_keeps_unknown_attributes() {
        let store = FakeCustomerStore::new();
        store.insert_row(json!({"id": "u", "version": 1, "city": "Kazan"}));
        let write = ImportWrite {
            expected_version: 1,
            fields: BTreeMap::from([("role".to_owned(), "vip".to_owned())]),
            mark_in_sync: true,
            onec_id: REF.into(),
            onec_version: None,
            at: Utc::now(),
        };
        assert_eq!(
            store.apply("u", &write).await.ok(),
            Some(WriteOutcome::Applied)
        );
        let row = store.row("u").unwrap_or(Value::Null);
        assert_eq!(
            (row["city"].clone(), row["version"].clone()),
            (json!("Kazan"), json!(2))
        );
        assert!(CustomerStore::load(&store, "u").await.is_ok());
    }
}
