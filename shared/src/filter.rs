//! Stream decisions: which `users` table changes become export messages. Pure logic, the heart
//! of loop prevention (the exporter writes back to the table whose stream feeds the filter).
//!
//! Rules, per stream record (images decoded as [`Customer`]):
//!
//! - **Created in 1C**: a record whose NewImage (or, for REMOVE, OldImage) has
//!   `created_in_1c=true` is ignored. 1C owns these users; exporting them back would echo.
//! - **INSERT** of a platform user is a registration (priority lane), unless the row is already
//!   in sync (`synced_version >= version`, only ever written by onec-sync). If the row is not already
//!   flagged (`needs_1c_export=true` and `sync_status=pending`), the decision asks the caller to
//!   flag it first ([`Decision::MarkPendingAndEnqueue`]): a conditional write of bookkeeping
//!   attributes at the row's version. If that condition fails a newer write exists and brings its
//!   own record; the message is still sent, because messages are harmless (the exporter reads the
//!   current row).
//! - **MODIFY**, in this order:
//!   1. NewImage in sync (`synced_version >= version`) → ignored: the 1C import and the
//!      exporter's write-back both set it, so this is the loop breaker;
//!   2. a significant field differs between the images → profile change (bulk lane);
//!   3. `needs_1c_export` went false → true → explicit request (bulk lane), except the filter's
//!      own registration flag (a never-exported row turning `pending` in the same write): that
//!      registration was already enqueued from the INSERT;
//!   4. otherwise ignored: nothing changed (moto emits records for no-op writes), only
//!      bookkeeping attributes changed, or only other non-significant attributes.
//!
//!   Significant fields are compared as raw DynamoDB values, so a field the [`Customer`] type
//!   does not know can be significant too.
//! - **REMOVE** with [`RemovePolicy::Deactivate`] (default) → a deactivation (bulk lane) naming
//!   the 1C reference from the OldImage; a row never exported (no `onec_id`) has nothing to
//!   deactivate. With [`RemovePolicy::Ignore`] removals are ignored.
//!
//! A record that cannot be read (unknown event name, a missing image, an image that is not a
//! customer) is an [`InvalidRecord`]; its reason never quotes attribute values.
//!
//! `changed_at` is the record's `ApproximateCreationDateTime` truncated to whole seconds (Lambda
//! sends whole seconds; moto's fraction is misread by the event types), or now when absent.

use crate::domain::{Customer, SyncStatus, BOOKKEEPING_ATTRIBUTES};
use crate::message::{ExportMessage, ExportReason, Lane};
use aws_lambda_events::event::dynamodb::EventRecord;
use chrono::{DateTime, SubsecRound, Utc};
use serde_dynamo::Item;
use std::collections::BTreeSet;
use std::str::FromStr;

/// What happens to users removed from the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemovePolicy {
    /// Mark the counterparty deactivated in 1C (never delete it).
    #[default]
    Deactivate,
    /// Leave 1C untouched.
    Ignore,
}

impl FromStr for RemovePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "deactivate" => Ok(RemovePolicy::Deactivate),
            "ignore" => Ok(RemovePolicy::Ignore),
            other => Err(format!("expected `deactivate` or `ignore`, got `{other}`")),
        }
    }
}

/// The filter's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterPolicy {
    /// Attribute names whose change is worth exporting.
    pub significant_fields: BTreeSet<String>,
    pub remove_policy: RemovePolicy,
}

impl FilterPolicy {
    pub fn new<I, S>(significant_fields: I, remove_policy: RemovePolicy) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            significant_fields: significant_fields.into_iter().map(Into::into).collect(),
            remove_policy,
        }
    }
}

/// Parses a comma-separated field list (`SIGNIFICANT_FIELDS`); blanks are dropped.
pub fn parse_field_list(raw: &str) -> BTreeSet<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What to do with one stream record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Enqueue(ExportMessage),
    /// A registration whose row is not flagged yet: flag it, then enqueue.
    MarkPendingAndEnqueue {
        message: ExportMessage,
    },
    Ignore(IgnoreReason),
}

impl Decision {
    /// The message to enqueue, if any.
    pub fn message(&self) -> Option<&ExportMessage> {
        match self {
            Decision::Enqueue(message) | Decision::MarkPendingAndEnqueue { message } => {
                Some(message)
            }
            Decision::Ignore(_) => None,
        }
    }

    /// The lane of the message, if any.
    pub fn lane(&self) -> Option<Lane> {
        self.message().map(|m| m.reason.lane())
    }
}

/// Why a record needs no export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IgnoreReason {
    /// The user comes from 1C.
    CreatedIn1C,
    /// 1C already holds this version (an import or the exporter's write-back).
    WrittenBySync,
    /// Only attributes onec-sync owns changed.
    BookkeepingOnly,
    /// The filter's own registration flag write; the INSERT already enqueued the registration.
    OwnPendingMark,
    /// Attributes changed, none of them significant.
    NoSignificantChange,
    /// The images are equal (a no-op write; AWS emits none, moto does).
    Unchanged,
    /// A removed user that never reached 1C.
    NothingToDeactivate,
    /// `REMOVE_POLICY=ignore`.
    RemovalIgnored,
}

impl IgnoreReason {
    /// A short stable name for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::CreatedIn1C => "created_in_1c",
            IgnoreReason::WrittenBySync => "written_by_sync",
            IgnoreReason::BookkeepingOnly => "bookkeeping_only",
            IgnoreReason::OwnPendingMark => "own_pending_mark",
            IgnoreReason::NoSignificantChange => "no_significant_change",
            IgnoreReason::Unchanged => "unchanged",
            IgnoreReason::NothingToDeactivate => "nothing_to_deactivate",
            IgnoreReason::RemovalIgnored => "removal_ignored",
        }
    }
}

/// Which image of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    New,
    Old,
}

impl std::fmt::Display for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Image::New => "NewImage",
            Image::Old => "OldImage",
        })
    }
}

/// A stream record the filter cannot read. Retrying cannot fix it.
#[derive(Debug, thiserror::Error)]
pub enum InvalidRecord {
    #[error("unknown event name")]
    UnknownEventName,

    #[error("{0} is missing")]
    MissingImage(Image),

    /// The source may quote attribute values, so it is kept for debugging but not displayed.
    #[error("{image} cannot be read as a customer")]
    Undecodable {
        image: Image,
        #[source]
        source: serde_dynamo::Error,
    },
}

impl InvalidRecord {
    /// A short stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            InvalidRecord::UnknownEventName => "unknown_event_name",
            InvalidRecord::MissingImage(_) => "missing_image",
            InvalidRecord::Undecodable { .. } => "undecodable_image",
        }
    }
}

impl crate::error::Classify for InvalidRecord {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Permanent
    }
}

/// Decides what a stream record means for 1C. See the module documentation for the rules.
pub fn decide(record: &EventRecord, policy: &FilterPolicy) -> Result<Decision, InvalidRecord> {
    let change = &record.change;
    match record.event_name.as_str() {
        "INSERT" => {
            let new = decode(&change.new_image, Image::New)?;
            if new.created_in_1c {
                return Ok(Decision::Ignore(IgnoreReason::CreatedIn1C));
            }
            if new.is_in_sync() {
                return Ok(Decision::Ignore(IgnoreReason::WrittenBySync));
            }
            let message = message(&new, ExportReason::Registration, record, None);
            let flagged = new.needs_1c_export && new.sync_status == Some(SyncStatus::Pending);
            Ok(if flagged {
                Decision::Enqueue(message)
            } else {
                Decision::MarkPendingAndEnqueue { message }
            })
        }
        "MODIFY" => {
            let new = decode(&change.new_image, Image::New)?;
            let old = decode(&change.old_image, Image::Old)?;
            if new.created_in_1c {
                return Ok(Decision::Ignore(IgnoreReason::CreatedIn1C));
            }
            if new.is_in_sync() {
                return Ok(Decision::Ignore(IgnoreReason::WrittenBySync));
            }
            let changed = changed_attributes(&change.old_image, &change.new_image);
            if changed
                .iter()
                .any(|f| policy.significant_fields.contains(*f))
            {
                let message = message(&new, ExportReason::ProfileChange, record, None);
                return Ok(Decision::Enqueue(message));
            }
            if !old.needs_1c_export && new.needs_1c_export {
                if is_own_pending_mark(&old, &new) {
                    return Ok(Decision::Ignore(IgnoreReason::OwnPendingMark));
                }
                let message = message(&new, ExportReason::ExplicitRequest, record, None);
                return Ok(Decision::Enqueue(message));
            }
            Ok(Decision::Ignore(if changed.is_empty() {
                IgnoreReason::Unchanged
            } else if changed.iter().all(|f| BOOKKEEPING_ATTRIBUTES.contains(f)) {
                IgnoreReason::BookkeepingOnly
            } else {
                IgnoreReason::NoSignificantChange
            }))
        }
        "REMOVE" => {
            let old = decode(&change.old_image, Image::Old)?;
            if old.created_in_1c {
                return Ok(Decision::Ignore(IgnoreReason::CreatedIn1C));
            }
            if policy.remove_policy == RemovePolicy::Ignore {
                return Ok(Decision::Ignore(IgnoreReason::RemovalIgnored));
            }
            let Some(onec_id) = old.onec_id.clone().filter(|id| !id.is_empty()) else {
                return Ok(Decision::Ignore(IgnoreReason::NothingToDeactivate));
            };
            let message = message(&old, ExportReason::Deactivation, record, Some(onec_id));
            Ok(Decision::Enqueue(message))
        }
        _ => Err(InvalidRecord::UnknownEventName),
    }
}

fn decode(item: &Item, image: Image) -> Result<Customer, InvalidRecord> {
    if item.is_empty() {
        return Err(InvalidRecord::MissingImage(image));
    }
    serde_dynamo::from_item(item.clone())
        .map_err(|source| InvalidRecord::Undecodable { image, source })
}

/// The registration path flags a never-exported row `pending` in one write; an explicit request
/// on such a row is redundant because its registration message is already on its way.
fn is_own_pending_mark(old: &Customer, new: &Customer) -> bool {
    old.synced_version.is_none()
        && old.sync_status != Some(SyncStatus::Pending)
        && new.sync_status == Some(SyncStatus::Pending)
}

/// Names of attributes whose values differ between the images (present in either).
fn changed_attributes<'a>(old: &'a Item, new: &'a Item) -> BTreeSet<&'a str> {
    old.keys()
        .chain(new.keys())
        .filter(|name| old.get(*name) != new.get(*name))
        .map(String::as_str)
        .collect()
}

fn message(
    customer: &Customer,
    reason: ExportReason,
    record: &EventRecord,
    onec_id: Option<String>,
) -> ExportMessage {
    ExportMessage {
        customer_id: customer.id.clone(),
        reason,
        version: customer.version,
        changed_at: changed_at(record.change.approximate_creation_date_time),
        onec_id,
    }
}

/// The event types default a missing timestamp to the epoch.
fn changed_at(approximate: DateTime<Utc>) -> DateTime<Utc> {
    if approximate.timestamp() <= 0 {
        Utc::now().trunc_subsecs(0)
    } else {
        approximate.trunc_subsecs(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn policy() -> FilterPolicy {
        FilterPolicy::new(
            [
                "email",
                "phone",
                "first_name",
                "last_name",
                "company_name",
                "tax_id",
                "kpp",
            ],
            RemovePolicy::Deactivate,
        )
    }

    fn platform_user() -> Customer {
        Customer {
            id: "u-1".into(),
            email: Some("anna@example.com".into()),
            first_name: Some("Anna".into()),
            version: 3,
            ..Customer::default()
        }
    }

    fn synced(mut c: Customer) -> Customer {
        c.onec_id = Some("9a1b6f0e-0000-4000-8000-000000000001".into());
        c.synced_version = Some(c.version);
        c.sync_status = Some(SyncStatus::Synced);
        c
    }

    fn item(c: &Customer) -> Item {
        serde_dynamo::to_item(c).expect("a customer always encodes")
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 10, 15, 30).unwrap()
    }

    fn record(event: &str, old: Option<&Customer>, new: Option<&Customer>) -> EventRecord {
        let mut r = EventRecord::default();
        r.event_name = event.into();
        r.event_id = "e-1".into();
        r.change.sequence_number = Some("100".into());
        r.change.approximate_creation_date_time = at() + chrono::Duration::milliseconds(38);
        r.change.old_image = old.map(item).unwrap_or_default();
        r.change.new_image = new.map(item).unwrap_or_default();
        r
    }

    fn expected(c: &Customer, reason: ExportReason, onec_id: Option<&str>) -> ExportMessage {
        ExportMessage {
            customer_id: c.id.clone(),
            reason,
            version: c.version,
            changed_at: at(),
            onec_id: onec_id.map(str::to_owned),
        }
    }

    #[test]
    fn an_unflagged_registration_is_flagged_and_enqueued_on_the_priority_lane() {
        // Given a platform user inserted without the export flag
        let user = platform_user();
        // When the INSERT is decided
        let decision = decide(&record("INSERT", None, Some(&user)), &policy()).unwrap();
        // Then the row is flagged and a registration goes to the priority lane
        assert_eq!(
            decision,
            Decision::MarkPendingAndEnqueue {
                message: expected(&user, ExportReason::Registration, None)
            }
        );
        assert_eq!(decision.lane(), Some(Lane::Priority));
    }

    #[test]
    fn an_already_flagged_registration_is_enqueued_without_a_flag_write() {
        // Given a user the platform inserted already flagged and pending
        let mut user = platform_user();
        user.needs_1c_export = true;
        user.sync_status = Some(SyncStatus::Pending);
        // When the INSERT is decided
        let decision = decide(&record("INSERT", None, Some(&user)), &policy()).unwrap();
        // Then it is enqueued directly
        assert_eq!(
            decision,
            Decision::Enqueue(expected(&user, ExportReason::Registration, None))
        );
    }

    #[test]
    fn an_insert_of_a_row_already_in_sync_is_ignored() {
        // Given a row written with synced_version = version (a re-created, already exported row)
        let user = synced(platform_user());
        // When its INSERT is decided
        let decision = decide(&record("INSERT", None, Some(&user)), &policy()).unwrap();
        // Then nothing is exported
        assert_eq!(decision, Decision::Ignore(IgnoreReason::WrittenBySync));
    }

    #[test]
    fn a_user_created_in_1c_is_never_exported_back() {
        // Given a user the 1C import created
        let mut user = platform_user();
        user.created_in_1c = true;
        let mut edited = user.clone();
        edited.email = Some("new@example.com".into());
        edited.version += 1;
        // When its INSERT, a later edit and its removal are decided
        let insert = decide(&record("INSERT", None, Some(&user)), &policy()).unwrap();
        let modify = decide(&record("MODIFY", Some(&user), Some(&edited)), &policy()).unwrap();
        let remove = decide(&record("REMOVE", Some(&synced(user)), None), &policy()).unwrap();
        // Then all are ignored
        for decision in [insert, modify, remove] {
            assert_eq!(decision, Decision::Ignore(IgnoreReason::CreatedIn1C));
        }
    }

    #[test]
    fn a_significant_change_is_a_profile_change_on_the_bulk_lane() {
        // Given a synced user whose phone changes
        let old = synced(platform_user());
        let mut new = old.clone();
        new.phone = Some("+7 900 000-00-00".into());
        new.version += 1;
        // When the MODIFY is decided
        let decision = decide(&record("MODIFY", Some(&old), Some(&new)), &policy()).unwrap();
        // Then a profile change for the new version goes to bulk
        assert_eq!(
            decision,
            Decision::Enqueue(expected(&new, ExportReason::ProfileChange, None))
        );
        assert_eq!(decision.lane(), Some(Lane::Bulk));
    }

    #[test]
    fn a_significant_field_unknown_to_the_customer_type_counts_too() {
        // Given a policy naming a platform attribute the Customer type does not model
        let policy = FilterPolicy::new(["loyalty_tier"], RemovePolicy::Deactivate);
        let old = synced(platform_user());
        let mut new = old.clone();
        new.version += 1;
        let mut r = record("MODIFY", Some(&old), Some(&new));
        r.change.old_image.insert(
            "loyalty_tier".into(),
            serde_dynamo::AttributeValue::S("silver".into()),
        );
        r.change.new_image.insert(
            "loyalty_tier".into(),
            serde_dynamo::AttributeValue::S("gold".into()),
        );
        // When decided
        let decision = decide(&r, &policy).unwrap();
        // Then it is a profile change
        assert_eq!(
            decision,
            Decision::Enqueue(expected(&new, ExportReason::ProfileChange, None))
        );
    }

    #[test]
    fn a_write_that_sets_synced_version_to_version_is_ignored_even_with_significant_changes() {
        // Given the 1C import changing the e-mail and marking the row in sync
        let old = synced(platform_user());
        let mut new = old.clone();
        new.email = Some("from-1c@example.com".into());
        new.version += 1;
        new.synced_version = Some(new.version);
        new.last_change_source = Some("1c".into());
        // When decided
        let decision = decide(&record("MODIFY", Some(&old), Some(&new)), &policy()).unwrap();
        // Then it is ignored: 1C already holds it
        assert_eq!(decision, Decision::Ignore(IgnoreReason::WrittenBySync));
    }

    #[test]
    fn the_exporters_write_back_is_ignored() {
        // Given a pending registration and the exporter recording its success
        let mut old = platform_user();
        old.needs_1c_export = true;
        old.sync_status = Some(SyncStatus::Pending);
        let mut new = synced(old.clone());
        new.needs_1c_export = false;
        // When decided
        let decision = decide(&record("MODIFY", Some(&old), Some(&new)), &policy()).unwrap();
        // Then it is ignored
        assert_eq!(decision, Decision::Ignore(IgnoreReason::WrittenBySync));
    }

    #[test]
    fn a_bookkeeping_only_change_is_ignored() {
        // Given an export failure recorded on a row that is behind 1C
        let mut old = synced(platform_user());
        old.version += 1;
        old.needs_1c_export = true;
        let mut new = old.clone();
        new.sync_status = Some(SyncStatus::Retrying);
        new.export_attempts = 2;
        new.sync_error_message = Some("1C unavailable".into());
        // When decided
        let decision = decide(&record("MODIFY", Some(&old), Some(&new)), &policy()).unwrap();
        // Then it is ignored as bookkeeping
        assert_eq!(decision, Decision::Ignore(IgnoreReason::BookkeepingOnly));
    }

    #[test]
    fn a_change_of_non_significant_platform_fields_is_ignored() {
        // Given only updated_at and the version changing
        let old = synced(platform_user());
        let mut new = old.clone();
        new.version += 1;
        new.updated_at = Some("2026-11-28T10:15:30Z".into());
        // When decided
        let decision = decide(&record("MODIFY", Some(&old), Some(&new)), &policy()).unwrap();
        // Then nothing is exported
        assert_eq!(
            decision,
            Decision::Ignore(IgnoreReason::NoSignificantChange)
        );
    }

    #[test]
    fn a_no_op_write_is_ignored() {
        // Given identical images (moto emits these)
        let user = synced(platform_user());
        let mut behind = user.clone();
        behind.version += 1;
        // When decided
        let decision = decide(&record("MODIFY", Some(&behind), Some(&behind)), &policy()).unwrap();
        // Then it is ignored as unchanged
        assert_eq!(decision, Decision::Ignore(IgnoreReason::Unchanged));
    }

    #[test]
    fn setting_the_export_flag_on_an_exported_user_is_an_explicit_request() {
        // Given a synced user that then got a platform-side change without significant fields...
        let mut old = synced(platform_user());
        old.version += 1;
        let mut new = old.clone();
        // ...and someone sets needs_1c_export=true
        new.needs_1c_export = true;
        // When decided
        let decision = decide(&record("MODIFY", Some(&old), Some(&new)), &policy()).unwrap();
        // Then an explicit request goes to bulk
        assert_eq!(
            decision,
            Decision::Enqueue(expected(&new, ExportReason::ExplicitRequest, None))
        );
        assert_eq!(decision.lane(), Some(Lane::Bulk));
    }

    #[test]
    fn the_filters_own_registration_flag_write_is_ignored() {
        // Given a fresh registration and the filter's flag write on it
        let old = platform_user();
        let mut new = old.clone();
        new.needs_1c_export = true;
        new.sync_status = Some(SyncStatus::Pending);
        // When decided
        let decision = decide(&record("MODIFY", Some(&old), Some(&new)), &policy()).unwrap();
        // Then it is ignored: the INSERT already enqueued the registration
        assert_eq!(decision, Decision::Ignore(IgnoreReason::OwnPendingMark));
    }

    #[test]
    fn a_removed_exported_user_is_deactivated_with_its_1c_reference() {
        // Given an exported user being removed
        let old = synced(platform_user());
        // When decided
        let decision = decide(&record("REMOVE", Some(&old), None), &policy()).unwrap();
        // Then a deactivation with the 1C reference goes to bulk
        assert_eq!(
            decision,
            Decision::Enqueue(expected(
                &old,
                ExportReason::Deactivation,
                old.onec_id.as_deref()
            ))
        );
        assert_eq!(decision.lane(), Some(Lane::Bulk));
    }

    #[test]
    fn a_removed_user_that_never_reached_1c_has_nothing_to_deactivate() {
        let decision = decide(&record("REMOVE", Some(&platform_user()), None), &policy()).unwrap();
        assert_eq!(
            decision,
            Decision::Ignore(IgnoreReason::NothingToDeactivate)
        );
    }

    #[test]
    fn removals_are_ignored_when_the_policy_says_so() {
        // Given REMOVE_POLICY=ignore
        let policy = FilterPolicy {
            remove_policy: "ignore".parse().unwrap(),
            ..policy()
        };
        // When an exported user is removed
        let decision = decide(
            &record("REMOVE", Some(&synced(platform_user())), None),
            &policy,
        );
        // Then nothing is exported
        assert_eq!(
            decision.unwrap(),
            Decision::Ignore(IgnoreReason::RemovalIgnored)
        );
    }

    #[test]
    fn an_image_with_a_wrong_attribute_type_is_invalid_without_quoting_values() {
        // Given a NewImage whose version is a string holding an e-mail
        let mut r = record("INSERT", None, Some(&platform_user()));
        r.change.new_image.insert(
            "version".into(),
            serde_dynamo::AttributeValue::S("secret@example.com".into()),
        );
        // When decided
        let err = decide(&r, &policy()).unwrap_err();
        // Then the record is invalid and the reason does not repeat the value
        assert_eq!(err.kind(), "undecodable_image");
        assert_eq!(err.to_string(), "NewImage cannot be read as a customer");
    }

    #[test]
    fn an_image_without_an_id_is_invalid() {
        let mut r = record("INSERT", None, Some(&platform_user()));
        r.change.new_image.remove("id");
        assert_eq!(
            decide(&r, &policy()).unwrap_err().kind(),
            "undecodable_image"
        );
    }

    #[test]
    fn a_modify_without_an_old_image_and_an_unknown_event_name_are_invalid() {
        let user = platform_user();
        let modify = decide(&record("MODIFY", None, Some(&user)), &policy()).unwrap_err();
        assert_eq!(modify.to_string(), "OldImage is missing");
        let unknown = decide(&record("UPSERT", None, Some(&user)), &policy()).unwrap_err();
        assert_eq!(unknown.kind(), "unknown_event_name");
    }

    #[test]
    fn a_missing_creation_time_falls_back_to_now() {
        // Given a record without ApproximateCreationDateTime (the types default it to the epoch)
        let mut r = record("INSERT", None, Some(&platform_user()));
        r.change.approximate_creation_date_time = DateTime::<Utc>::default();
        let before = Utc::now().trunc_subsecs(0);
        // When decided
        let decision = decide(&r, &policy()).unwrap();
        // Then changed_at is now, in whole seconds
        let changed_at = decision.message().map(|m| m.changed_at).unwrap();
        assert!(changed_at >= before && changed_at <= Utc::now());
        assert_eq!(changed_at.timestamp_subsec_nanos(), 0);
    }

    #[test]
    fn significant_fields_parse_from_a_comma_separated_list() {
        assert_eq!(
            parse_field_list(" email, phone ,,tax_id "),
            ["email", "phone", "tax_id"].map(String::from).into()
        );
        assert!("purge".parse::<RemovePolicy>().is_err());
    }
}
