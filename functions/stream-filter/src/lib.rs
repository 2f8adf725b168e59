//! Stream filter: `users` table stream records → export messages on the priority or bulk queue.
//!
//! What a record means is decided by [`shared::filter::decide`]; this crate applies the
//! decisions with the stream's checkpoint semantics:
//!
//! - records are handled in order; consecutive messages are sent in `SendMessageBatch` groups
//!   (per lane, at most ten);
//! - at the first record whose flag write or enqueue still fails after the adapter's retries, the
//!   response names that record's `SequenceNumber` and the rest of the batch is left alone: Lambda
//!   redelivers everything from there (messages sent for later records are then sent again, which
//!   is harmless — the exporter reads the current row);
//! - a failing record without a sequence number fails the whole invocation (an empty
//!   `itemIdentifier` would do the same, silently);
//! - a record that cannot be read ([`InvalidRecord`]) is logged without PII, counted as
//!   `FilterInvalid` and treated as processed. Failing it would retry a record that can never
//!   succeed and, after the retries, send only shard metadata to the on-failure destination;
//!   the nightly full sync is the safety net for whatever such a record described.
//!
//! The flag write of a registration ([`PendingMarker`]) is the exporter's
//! `DynamoDbCustomerStore::mark_pending` in production (every `CustomerStore` is a marker).

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use shared::config::{self, ConfigError};
use shared::error::Classify;
use shared::filter::{decide, Decision, FilterPolicy, IgnoreReason, RemovePolicy};
use shared::mapping::{MappingConfig, MappingConfigError};
use shared::message::{ExportMessage, Lane};
use shared::metrics::{self, Dimension, Metrics};
use shared::ports::{ExportQueue, PendingMarker, QueueError, StoreError, WriteOutcome};
use std::collections::{BTreeMap, BTreeSet};

pub use lambda_runtime::Error;

/// Messages per `SendMessageBatch` call.
const GROUP_SIZE: usize = 10;

/// The function's configuration, from the environment.
#[derive(Debug, Clone)]
pub struct FilterConfig {
    pub users_table: String,
    pub priority_queue_url: String,
    pub bulk_queue_url: String,
    pub policy: FilterPolicy,
    pub metrics_namespace: String,
}

impl FilterConfig {
    /// `USERS_TABLE`, `PRIORITY_QUEUE_URL`, `BULK_QUEUE_URL` (required); `SIGNIFICANT_FIELDS`
    /// (comma-separated; default: the mapping's significant fields, from `ONEC_MAPPING_FILE` or
    /// the built-in mapping); `REMOVE_POLICY` (`deactivate` | `ignore`); `METRICS_NAMESPACE`.
    pub fn from_env() -> Result<Self, FilterConfigError> {
        Self::from_lookup(&config::env_lookup)
    }

    /// The same variables from another source (the local stack runs functions side by side).
    pub fn from_lookup(env: &impl config::Lookup) -> Result<Self, FilterConfigError> {
        let significant_fields = match config::optional_in(env, "SIGNIFICANT_FIELDS") {
            Some(raw) => {
                let fields = shared::filter::parse_field_list(&raw);
                if fields.is_empty() {
                    return Err(ConfigError::Invalid {
                        name: "SIGNIFICANT_FIELDS",
                        reason: "names no field".into(),
                    }
                    .into());
                }
                fields
            }
            None => mapping_significant_fields(env)?,
        };
        Ok(Self {
            users_table: config::required_in(env, "USERS_TABLE")?,
            priority_queue_url: config::required_in(env, "PRIORITY_QUEUE_URL")?,
            bulk_queue_url: config::required_in(env, "BULK_QUEUE_URL")?,
            policy: FilterPolicy {
                significant_fields,
                remove_policy: config::parsed_or_in(env, "REMOVE_POLICY", RemovePolicy::default())?,
            },
            metrics_namespace: config::optional_in(env, "METRICS_NAMESPACE")
                .unwrap_or_else(|| metrics::DEFAULT_NAMESPACE.to_owned()),
        })
    }
}

/// The configuration cannot be loaded; the function must not start.
#[derive(Debug, thiserror::Error)]
pub enum FilterConfigError {
    #[error(transparent)]
    Env(#[from] ConfigError),
    #[error("cannot load the mapping for the significant fields")]
    Mapping(#[from] MappingConfigError),
}

/// What the handler needs; generic so tests inject fakes.
pub struct Deps<Q, M> {
    pub queue: Q,
    pub marker: M,
    pub policy: FilterPolicy,
    pub metrics: Metrics,
}

/// What one invocation did, for metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterOutcome {
    /// Messages the queue accepted, by [`shared::message::ExportReason::as_str`].
    pub enqueued: BTreeMap<&'static str, u64>,
    pub ignored: BTreeMap<IgnoreReason, u64>,
    /// Unreadable records, by [`shared::filter::InvalidRecord::kind`].
    pub invalid: BTreeMap<&'static str, u64>,
    /// Registration rows flagged by this invocation.
    pub marked: u64,
    /// Flag writes whose condition failed (a newer write exists).
    pub marks_stale: u64,
    /// The sequence number Lambda must resume from, if a record failed.
    pub checkpoint: Option<String>,
}

impl FilterOutcome {
    /// Adds this outcome's decision counts to `metrics`.
    pub fn record(&self, metrics: &Metrics) {
        for (reason, n) in &self.enqueued {
            metrics.count(metrics::FILTER_ENQUEUED, *n, &[(Dimension::Reason, reason)]);
        }
        for (reason, n) in &self.ignored {
            metrics.count(
                metrics::FILTER_IGNORED,
                *n,
                &[(Dimension::Reason, reason.as_str())],
            );
        }
        for (kind, n) in &self.invalid {
            metrics.count(metrics::FILTER_INVALID, *n, &[(Dimension::Reason, kind)]);
        }
    }

    /// The Lambda response: empty on success, else one failure naming the checkpoint.
    pub fn response(&self) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        if let Some(sequence_number) = &self.checkpoint {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence_number.clone());
            response.batch_item_failures.push(failure);
        }
        response
    }
}

/// Why a record could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum RecordFailure {
    #[error("flagging the row for export failed")]
    Mark(#[source] StoreError),
    #[error("enqueueing the export message failed")]
    Enqueue(#[source] QueueError),
}

impl Classify for RecordFailure {
    fn class(&self) -> shared::error::ErrorClass {
        match self {
            RecordFailure::Mark(e) => e.class(),
            RecordFailure::Enqueue(e) => e.class(),
        }
    }
}

/// The invocation must fail as a whole.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// Only a sequence number can checkpoint; without one the whole batch is retried.
    #[error("record {event_id} failed and has no sequence number to resume from")]
    NoSequenceNumber {
        event_id: String,
        #[source]
        cause: RecordFailure,
    },
}

/// The Lambda handler: process, report metrics, answer with the checkpoint.
pub async fn handle<Q: ExportQueue, M: PendingMarker>(
    deps: &Deps<Q, M>,
    event: Event,
) -> Result<DynamoDbEventResponse, Error> {
    let result = process(deps, &event).await;
    if let Ok(outcome) = &result {
        outcome.record(&deps.metrics);
    }
    if let Err(err) = deps.metrics.flush_to_stdout() {
        tracing::warn!(error = %err, "cannot write metrics");
    }
    Ok(result?.response())
}

/// A message waiting to be sent, with the index of the record it came from.
struct Pending {
    record: usize,
    message: ExportMessage,
}

/// Applies the filter to the records in order; see the crate documentation for the semantics.
pub async fn process<Q: ExportQueue, M: PendingMarker>(
    deps: &Deps<Q, M>,
    event: &Event,
) -> Result<FilterOutcome, FilterError> {
    let records = &event.records;
    let mut outcome = FilterOutcome::default();
    let mut pending: Vec<Pending> = Vec::new();

    for (index, record) in records.iter().enumerate() {
        let decision = match decide(record, &deps.policy) {
            Ok(decision) => decision,
            Err(invalid) => {
                tracing::error!(
                    event_id = %record.event_id,
                    sequence_number = record.change.sequence_number.as_deref().unwrap_or(""),
                    event_name = %record.event_name,
                    reason = %invalid,
                    "skipping an unreadable stream record"
                );
                *outcome.invalid.entry(invalid.kind()).or_default() += 1;
                continue;
            }
        };
        let message = match decision {
            Decision::Ignore(reason) => {
                tracing::debug!(event_id = %record.event_id, reason = reason.as_str(), "ignored");
                *outcome.ignored.entry(reason).or_default() += 1;
                continue;
            }
            Decision::Enqueue(message) => message,
            Decision::MarkPendingAndEnqueue { message } => {
                match deps
                    .marker
                    .mark_pending(&message.customer_id, message.version)
                    .await
                {
                    Ok(WriteOutcome::Applied) => outcome.marked += 1,
                    Ok(WriteOutcome::Stale) => outcome.marks_stale += 1,
                    Err(err) => {
                        // Everything before this record must be settled before checkpointing.
                        let failed = flush(deps, &mut pending, &mut outcome).await;
                        let (at, cause) = failed.unwrap_or((index, RecordFailure::Mark(err)));
                        return checkpoint(records, at, cause, outcome);
                    }
                }
                message
            }
        };
        let lane = message.reason.lane();
        pending.push(Pending {
            record: index,
            message,
        });
        let in_lane = pending
            .iter()
            .filter(|p| p.message.reason.lane() == lane)
            .count();
        if in_lane >= GROUP_SIZE {
            if let Some((at, cause)) = flush(deps, &mut pending, &mut outcome).await {
                return checkpoint(records, at, cause, outcome);
            }
        }
    }
    if let Some((at, cause)) = flush(deps, &mut pending, &mut outcome).await {
        return checkpoint(records, at, cause, outcome);
    }
    Ok(outcome)
}

/// Sends everything pending, lane by lane. Returns the earliest record that was not enqueued.
async fn flush<Q: ExportQueue, M: PendingMarker>(
    deps: &Deps<Q, M>,
    pending: &mut Vec<Pending>,
    outcome: &mut FilterOutcome,
) -> Option<(usize, RecordFailure)> {
    let mut first_failure: Option<(usize, RecordFailure)> = None;
    let mut note = |record: usize, err: QueueError| {
        if first_failure.as_ref().is_none_or(|(at, _)| record < *at) {
            first_failure = Some((record, RecordFailure::Enqueue(err)));
        }
    };
    for lane in [Lane::Priority, Lane::Bulk] {
        let group: Vec<&Pending> = pending
            .iter()
            .filter(|p| p.message.reason.lane() == lane)
            .collect();
        if group.is_empty() {
            continue;
        }
        let messages: Vec<ExportMessage> = group.iter().map(|p| p.message.clone()).collect();
        match deps.queue.enqueue(lane, &messages).await {
            Ok(results) => {
                let mut results = results.into_iter();
                for p in &group {
                    match results.next() {
                        Some(Ok(())) => {
                            *outcome
                                .enqueued
                                .entry(p.message.reason.as_str())
                                .or_default() += 1;
                        }
                        Some(Err(err)) => note(p.record, err),
                        None => note(p.record, QueueError::MissingResult { lane }),
                    }
                }
            }
            Err(err) => {
                if let Some(first) = group.first() {
                    note(first.record, err);
                }
            }
        }
    }
    pending.clear();
    first_failure
}

fn checkpoint(
    records: &[EventRecord],
    at: usize,
    cause: RecordFailure,
    mut outcome: FilterOutcome,
) -> Result<FilterOutcome, FilterError> {
    let Some(record) = records.get(at) else {
        // Indices come from enumerating `records`; keep the whole batch for a retry regardless.
        return Err(FilterError::NoSequenceNumber {
            event_id: String::new(),
            cause,
        });
    };
    match record
        .change
        .sequence_number
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        Some(sequence_number) => {
            tracing::warn!(
                event_id = %record.event_id,
                sequence_number,
                error = %cause,
                error_class = %cause.class(),
                cause = %cause_chain(&cause),
                "record failed; resuming from it"
            );
            outcome.checkpoint = Some(sequence_number.to_owned());
            Ok(outcome)
        }
        None => {
            tracing::error!(
                event_id = %record.event_id,
                error = %cause,
                cause = %cause_chain(&cause),
                "record failed without a sequence number; failing the whole batch"
            );
            Err(FilterError::NoSequenceNumber {
                event_id: record.event_id.clone(),
                cause,
            })
        }
    }
}

/// The error's sources, for logs. Store and queue errors name tables, queues and codes, never
/// row contents.
fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut chain = Vec::new();
    let mut source = err.source();
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    chain.join(": ")
}

/// The significant fields when `SIGNIFICANT_FIELDS` is not set: the mapping's, so a field the
/// exporter sends is exactly a field whose change triggers an export.
fn mapping_significant_fields(
    env: &impl config::Lookup,
) -> Result<BTreeSet<String>, FilterConfigError> {
    let mapping = match config::optional_in(env, "ONEC_MAPPING_FILE") {
        Some(path) => MappingConfig::from_file(path)?,
        None => MappingConfig::default(),
    };
    Ok(mapping
        .significant_fields()
        .into_iter()
        .map(str::to_owned)
        .collect())
}
