//! The exporter Lambda: SQS export messages → 1C → bookkeeping write-back.
//!
//! One function serves both queues (priority and bulk); the lane of a record comes from its
//! `eventSourceARN`. Per message:
//! - success or skip: not reported, so Lambda deletes it;
//! - transient failure: the attempt goes to the sync log (not the users row: each row write is a
//!   stream record, and retries must not multiply them), the message is hidden for an
//!   exponential backoff (`ChangeMessageVisibility`, honouring 1C's `Retry-After`) and reported
//!   in `batchItemFailures`; after the queue's `maxReceiveCount` deliveries SQS's redrive moves
//!   it to the DLQ. On the last attempt the row shows `error` ("gave up after N attempts: …")
//!   with `export_attempts`. Such messages reach the DLQ without a `reason` attribute;
//! - permanent failure (invalid data, 1C rejecting the request) and malformed bodies: the row
//!   shows `error` and the exporter itself sends the message to the DLQ with `reason`,
//!   `error_class`, `error_kind`, `error_message`, `customer_id`, `original_message_id`
//!   attributes, then lets Lambda delete it — no pointless retries. If that send fails, the
//!   message is retried instead, so nothing is lost;
//! - after `breaker_threshold` consecutive transient 1C failures within one invocation, the rest
//!   of the batch is backed off without calling 1C; so is what has not reached 1C when the
//!   invocation's time runs short ([`Deadline`]).
//!
//! An invocation has at most `concurrency` calls to 1C in flight ([`OneCSessions`]); row reads
//! and write-backs run outside that bound, so 1C's sessions do not wait on DynamoDB.

pub mod config;
pub mod wiring;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::stream::{self, StreamExt};
use shared::backoff::{visibility_delay, CircuitBreaker, FixedJitter, RandomJitter};
use shared::error::{Classify, ErrorClass};
use shared::export::{
    exhausted_retries_message, CustomerExportService, Deadline, ExportError, ExportOutcome,
    FailureReport, OneCSessions, SkipReason,
};
use shared::message::{ExportMessage, ExportReason, Lane};
use shared::metrics::{
    Dimension, Metrics, EXPORT_DEAD_LETTERED, EXPORT_FAILED, EXPORT_SKIPPED, EXPORT_SUCCEEDED,
    SYNC_LATENCY,
};
use shared::ports::{DeadLetter, DeadLetterReason, FailureStatus, MessageControl};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// Maps an SQS `eventSourceARN` to a lane by queue name (the last segment of both the ARN and
/// the queue URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRoutes {
    priority_queue: String,
    bulk_queue: String,
}

impl QueueRoutes {
    /// From the queue URLs (or ARNs) the function is configured with.
    pub fn new(priority: &str, bulk: &str) -> Self {
        Self {
            priority_queue: queue_name(priority).to_owned(),
            bulk_queue: queue_name(bulk).to_owned(),
        }
    }

    pub fn lane_for(&self, event_source_arn: &str) -> Option<Lane> {
        let name = queue_name(event_source_arn);
        if name == self.priority_queue {
            Some(Lane::Priority)
        } else if name == self.bulk_queue {
            Some(Lane::Bulk)
        } else {
            None
        }
    }
}

fn queue_name(url_or_arn: &str) -> &str {
    url_or_arn
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(url_or_arn)
}

/// Where the random part of a backoff comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    Random,
    /// A fixed fraction of the allowed jitter, for reproducible tests.
    Fixed(f64),
}

/// The handler's knobs (see [`config::ExporterConfig`]).
#[derive(Debug, Clone)]
pub struct HandlerSettings {
    /// The queues' `maxReceiveCount`: the delivery at which the exporter gives up.
    pub max_attempts: u32,
    /// 1C calls in flight at once within an invocation (bounds the load on 1C); the row reads
    /// and write-backs around them are not counted.
    pub concurrency: usize,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub breaker_threshold: u32,
    pub jitter: Jitter,
    pub routes: QueueRoutes,
}

/// Everything the handler uses, built once per cold start.
pub struct Deps {
    pub service: CustomerExportService,
    pub control: Arc<dyn MessageControl>,
    pub metrics: Arc<Metrics>,
    pub settings: HandlerSettings,
}

/// Handles one SQS batch; the response lists the messages to deliver again.
///
/// With a batch size above 1 (`ONEC_BATCH_SIZE`, on the service) the export messages of the
/// invocation reach 1C in batch calls; each message still gets its own outcome.
pub async fn handle(
    deps: &Deps,
    event: SqsEvent,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    handle_until(deps, event, None).await
}

/// [`handle`] within an invocation's time: no 1C call starts after `deadline`; the messages
/// left are backed off like any transient failure (`out_of_time`) and the invocation ends in
/// time, instead of timing out and having SQS deliver the whole batch again.
pub async fn handle_until(
    deps: &Deps,
    event: SqsEvent,
    deadline: Option<Deadline>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let breaker = CircuitBreaker::new(deps.settings.breaker_threshold);
    let messages = event.records.len();
    let failures: Vec<String> = if deps.service.batch_size() > 1 {
        handle_batched(deps, &breaker, deadline, event.records).await
    } else {
        let concurrency = deps.settings.concurrency.max(1);
        let sessions = OneCSessions::new(concurrency, Some(&breaker)).with_deadline(deadline);
        let (units, mut failures) = parse_by_customer(deps, event.records).await;
        let (breaker, sessions) = (&breaker, &sessions);
        let from_units: Vec<Vec<String>> = stream::iter(units)
            // One customer's messages one after another: run side by side, two exports of a
            // new customer could both miss it in 1C and both create it (OData looks up, then
            // creates). The second usually finds the row in sync and sends nothing.
            .map(|unit| async move {
                let mut failed = Vec::new();
                for parsed in unit {
                    let span = parsed.span.clone();
                    failed.extend(
                        process(deps, breaker, sessions, parsed)
                            .instrument(span)
                            .await,
                    );
                }
                failed
            })
            // While `concurrency` exports are in 1C, as many more load their rows or write
            // their results back.
            .buffer_unordered(concurrency.saturating_mul(2))
            .collect()
            .await;
        failures.extend(from_units.into_iter().flatten());
        failures
    };
    tracing::info!(messages, redelivered = failures.len(), "batch done");
    let mut response = SqsBatchResponse::default();
    for id in failures {
        response.add_failure(id);
    }
    Ok(response)
}

fn message_span(record: &SqsMessage) -> tracing::Span {
    tracing::info_span!(
        "export_message",
        message_id = record.message_id.as_deref().unwrap_or(""),
        customer_id = tracing::field::Empty,
        lane = tracing::field::Empty,
    )
}

/// A record whose body is an export message.
struct Parsed {
    record: SqsMessage,
    message_id: String,
    msg: ExportMessage,
    receive_count: u32,
    lane: Option<Lane>,
    span: tracing::Span,
}

impl Parsed {
    fn attempt<'a>(&'a self, deps: &'a Deps) -> Attempt<'a> {
        Attempt {
            deps,
            record: &self.record,
            message_id: &self.message_id,
            msg: &self.msg,
            receive_count: self.receive_count,
            lane: self.lane,
        }
    }
}

/// Reads a record; `Err` carries the outcome of one that needs no export (no id, poison).
async fn parse(deps: &Deps, record: SqsMessage) -> Result<Parsed, Option<String>> {
    let Some(message_id) = record.message_id.clone().filter(|id| !id.is_empty()) else {
        // Nothing to report it by; Lambda would not know which message failed.
        tracing::error!("SQS record without a message id; ignored");
        return Err(None);
    };
    let receive_count = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(1);
    let lane = record
        .event_source_arn
        .as_deref()
        .and_then(|arn| deps.settings.routes.lane_for(arn));
    let span = tracing::Span::current();
    if let Some(lane) = lane {
        span.record("lane", lane_name(lane));
    }
    let body = record.body.clone().unwrap_or_default();
    let msg = match serde_json::from_str::<ExportMessage>(&body) {
        Ok(msg) => msg,
        Err(err) => return Err(poison(deps, &record, &message_id, body, &err, lane).await),
    };
    span.record("customer_id", msg.customer_id.as_str());
    Ok(Parsed {
        record,
        message_id,
        msg,
        receive_count,
        lane,
        span,
    })
}

/// Parses every record and groups the export messages by customer, in first-seen order; the
/// outcomes of records that need no export (no id, poison) come back beside them.
async fn parse_by_customer(
    deps: &Deps,
    records: Vec<SqsMessage>,
) -> (Vec<Vec<Parsed>>, Vec<String>) {
    let mut failures = Vec::new();
    let mut units: Vec<Vec<Parsed>> = Vec::new();
    let mut unit_of: HashMap<String, usize> = HashMap::new();
    for record in records {
        let span = message_span(&record);
        match parse(deps, record).instrument(span).await {
            Err(outcome) => failures.extend(outcome),
            Ok(parsed) => match unit_of.get(&parsed.msg.customer_id) {
                Some(&at) => units[at].push(parsed),
                None => {
                    unit_of.insert(parsed.msg.customer_id.clone(), units.len());
                    units.push(vec![parsed]);
                }
            },
        }
    }
    (units, failures)
}

/// Processes one parsed record; returns its message id when it must be delivered again.
async fn process(
    deps: &Deps,
    breaker: &CircuitBreaker,
    sessions: &OneCSessions<'_>,
    parsed: Parsed,
) -> Option<String> {
    let ctx = parsed.attempt(deps);
    if breaker.is_open() {
        return circuit_open(&ctx).await;
    }
    let result = deps
        .service
        .export_customer_to_1c_within(&parsed.msg, sessions)
        .await;
    settle(&ctx, Some(breaker), result.as_ref()).await
}

/// Backs a delivery off without reading its row or calling 1C: the breaker is already open.
async fn circuit_open(ctx: &Attempt<'_>) -> Option<String> {
    tracing::info!("circuit open: backing off without calling 1C");
    settle(ctx, None, Err(&ExportError::CircuitOpen)).await
}

/// Applies an export's result to one delivery: success, backoff or dead letter.
async fn settle(
    ctx: &Attempt<'_>,
    breaker: Option<&CircuitBreaker>,
    result: Result<&ExportOutcome, &ExportError>,
) -> Option<String> {
    match result {
        Ok(outcome) => {
            // Only an answer from 1C says 1C works; a skip decided on the row never asked it
            // (a deactivation's skips did: 1C answered its lookup).
            let answered = !matches!(
                outcome,
                ExportOutcome::Skipped(
                    SkipReason::CustomerDeleted
                        | SkipReason::CreatedIn1c
                        | SkipReason::AlreadySynced
                )
            );
            if let (Some(breaker), true) = (breaker, answered) {
                breaker.record_success();
            }
            ctx.succeeded(outcome);
            None
        }
        Err(err) => {
            if let Some(breaker) = breaker {
                if err.is_transient_onec_failure() && breaker.record_transient_failure() {
                    tracing::warn!("circuit breaker opened for the rest of this batch");
                }
            }
            if err.is_retryable() {
                let message = err.to_string();
                ctx.retry(err.retry_after(), &message, err.kind()).await
            } else {
                ctx.permanent(err).await
            }
        }
    }
}

/// The batched path: parse every record, send each customer once per invocation (duplicate
/// messages share one item), in chunks of the batch size, a few chunks at a time.
async fn handle_batched(
    deps: &Deps,
    breaker: &CircuitBreaker,
    deadline: Option<Deadline>,
    records: Vec<SqsMessage>,
) -> Vec<String> {
    let (grouped, mut failures) = parse_by_customer(deps, records).await;
    let mut deactivations = Vec::new();
    let mut units: Vec<Vec<Parsed>> = Vec::new();
    for unit in grouped {
        let (deactivating, exporting): (Vec<Parsed>, Vec<Parsed>) = unit
            .into_iter()
            .partition(|p| p.msg.reason == ExportReason::Deactivation);
        deactivations.extend(deactivating);
        if !exporting.is_empty() {
            units.push(exporting);
        }
    }
    let batch_size = deps.service.batch_size();
    let mut chunks: Vec<Vec<Vec<Parsed>>> = Vec::new();
    for unit in units {
        match chunks.last_mut() {
            Some(chunk) if chunk.len() < batch_size => chunk.push(unit),
            _ => chunks.push(vec![unit]),
        }
    }
    let concurrency = deps.settings.concurrency.max(1);
    let sessions = OneCSessions::new(concurrency, Some(breaker)).with_deadline(deadline);
    let sessions = &sessions;
    let from_chunks: Vec<Vec<String>> = stream::iter(chunks)
        .map(|chunk| export_chunk(deps, breaker, sessions, chunk))
        .buffer_unordered(concurrency.saturating_mul(2))
        .collect()
        .await;
    failures.extend(from_chunks.into_iter().flatten());
    let from_deactivations: Vec<Option<String>> = stream::iter(deactivations)
        .map(|parsed| async move {
            let span = parsed.span.clone();
            async {
                let ctx = parsed.attempt(deps);
                if breaker.is_open() {
                    return circuit_open(&ctx).await;
                }
                let result = deps
                    .service
                    .export_customer_to_1c_within(&parsed.msg, sessions)
                    .await;
                settle(&ctx, Some(breaker), result.as_ref()).await
            }
            .instrument(span)
            .await
        })
        .buffer_unordered(concurrency.saturating_mul(2))
        .collect()
        .await;
    failures.extend(from_deactivations.into_iter().flatten());
    failures
}

/// One batch call for these customers, then each delivery settled from its customer's result.
async fn export_chunk(
    deps: &Deps,
    breaker: &CircuitBreaker,
    sessions: &OneCSessions<'_>,
    chunk: Vec<Vec<Parsed>>,
) -> Vec<String> {
    let mut failures = Vec::new();
    if breaker.is_open() {
        for parsed in chunk.iter().flatten() {
            let ctx = parsed.attempt(deps);
            let failed = circuit_open(&ctx).instrument(parsed.span.clone()).await;
            failures.extend(failed);
        }
        return failures;
    }
    // The newest message of a customer stands for all: the export reads the current row anyway.
    let msgs: Vec<ExportMessage> = chunk
        .iter()
        .filter_map(|unit| unit.iter().max_by_key(|p| p.msg.version))
        .map(|p| p.msg.clone())
        .collect();
    let results = deps
        .service
        .export_customers_to_1c_within(&msgs, sessions)
        .await;
    for (unit, result) in chunk.iter().zip(results) {
        for (i, parsed) in unit.iter().enumerate() {
            let ctx = parsed.attempt(deps);
            // The breaker counts 1C's answer once per customer, not per duplicate delivery.
            let counting = (i == 0).then_some(breaker);
            let failed = settle(&ctx, counting, result.as_ref())
                .instrument(parsed.span.clone())
                .await;
            failures.extend(failed);
        }
    }
    failures
}
fn lane_name(lane: Lane) -> &'static str {
    match lane {
        Lane::Priority => "priority",
        Lane::Bulk => "bulk",
    }
}

/// A body that is not an export message: dead-letter it; never log it (it may hold anything).
async fn poison(
    deps: &Deps,
    record: &SqsMessage,
    message_id: &str,
    body: String,
    err: &serde_json::Error,
    lane: Option<Lane>,
) -> Option<String> {
    // serde's message can quote the body, so only its category and position are kept.
    let description = format!(
        "body is not an export message ({:?} error at line {} column {})",
        err.classify(),
        err.line(),
        err.column()
    );
    tracing::error!(error = %description, "malformed export message");
    let letter = DeadLetter {
        body,
        reason: DeadLetterReason::MalformedMessage,
        error_class: ErrorClass::Permanent,
        error_kind: "malformed_message".into(),
        error_message: description,
        customer_id: None,
        original_message_id: message_id.to_owned(),
    };
    deps.metrics.count(
        EXPORT_FAILED,
        1,
        &[(Dimension::ErrorClass, ErrorClass::Permanent.as_str())],
    );
    match deps.control.dead_letter(&letter).await {
        Ok(()) => {
            deps.metrics.count(
                EXPORT_DEAD_LETTERED,
                1,
                &[(
                    Dimension::Reason,
                    DeadLetterReason::MalformedMessage.as_str(),
                )],
            );
            None
        }
        Err(dlq_err) => {
            tracing::error!(error = %dlq_err, "cannot dead-letter a malformed message; it will be delivered again");
            backoff(deps, record, lane, 1, None).await;
            Some(message_id.to_owned())
        }
    }
}

/// Hides the message for the backoff before its next delivery. A failure here only means the
/// retry comes after the queue's visibility timeout instead.
async fn backoff(
    deps: &Deps,
    record: &SqsMessage,
    lane: Option<Lane>,
    receive_count: u32,
    retry_after: Option<Duration>,
) {
    let settings = &deps.settings;
    let delay = match settings.jitter {
        Jitter::Random => visibility_delay(
            receive_count,
            settings.backoff_base,
            settings.backoff_cap,
            retry_after,
            &mut RandomJitter,
        ),
        Jitter::Fixed(fraction) => visibility_delay(
            receive_count,
            settings.backoff_base,
            settings.backoff_cap,
            retry_after,
            &mut FixedJitter(fraction),
        ),
    };
    let (Some(lane), Some(receipt)) = (lane, record.receipt_handle.as_deref()) else {
        tracing::warn!(
            event_source_arn = record.event_source_arn.as_deref().unwrap_or(""),
            "unknown source queue or no receipt handle: retry after the queue's visibility timeout"
        );
        return;
    };
    if let Err(err) = deps.control.delay_retry(lane, receipt, delay).await {
        tracing::warn!(error = %err, "cannot set the retry backoff");
    }
}

/// One delivery of a parsed message.
struct Attempt<'a> {
    deps: &'a Deps,
    record: &'a SqsMessage,
    message_id: &'a str,
    msg: &'a ExportMessage,
    receive_count: u32,
    lane: Option<Lane>,
}

impl Attempt<'_> {
    fn succeeded(&self, outcome: &ExportOutcome) {
        let metrics = &self.deps.metrics;
        match outcome {
            ExportOutcome::Exported { .. } | ExportOutcome::Deactivated { .. } => {
                let lane = self.lane.map_or("unknown", lane_name);
                metrics.count(EXPORT_SUCCEEDED, 1, &[(Dimension::Lane, lane)]);
                let latency = chrono::Utc::now() - self.msg.changed_at;
                // Precision loss is irrelevant at millisecond scale.
                metrics.duration_ms(
                    SYNC_LATENCY,
                    latency.num_milliseconds() as f64,
                    &[(Dimension::Lane, lane)],
                );
                // Debug, not info: the sync log already records every export, and at ~550 bytes
                // a line this was most of the exporter's log bill (docs/benchmarks.md, cost).
                tracing::debug!(outcome = ?outcome, "exported");
            }
            ExportOutcome::Skipped(reason) => {
                metrics.count(EXPORT_SKIPPED, 1, &[(Dimension::Reason, reason.as_str())]);
                tracing::info!(reason = reason.as_str(), "skipped");
            }
        }
    }

    /// A transient failure: record it, back off, report the message for redelivery.
    async fn retry(
        &self,
        retry_after: Option<Duration>,
        reason: &str,
        kind: &str,
    ) -> Option<String> {
        let deps = self.deps;
        let last = self.receive_count >= deps.settings.max_attempts;
        let (status, message) = if last {
            (
                FailureStatus::Error,
                exhausted_retries_message(self.receive_count, reason),
            )
        } else {
            (FailureStatus::Retrying, reason.to_owned())
        };
        tracing::warn!(
            attempt = self.receive_count,
            last_attempt = last,
            error_kind = kind,
            error = reason,
            "export failed transiently"
        );
        deps.metrics.count(
            EXPORT_FAILED,
            1,
            &[(Dimension::ErrorClass, ErrorClass::Transient.as_str())],
        );
        let report = FailureReport {
            status,
            message,
            error_class: ErrorClass::Transient,
            error_kind: kind.to_owned(),
            attempt: self.receive_count,
        };
        if last {
            self.record(report).await;
        } else {
            self.deps.service.log_failure(self.msg, &report).await;
        }
        backoff(
            deps,
            self.record,
            self.lane,
            self.receive_count,
            retry_after,
        )
        .await;
        Some(self.message_id.to_owned())
    }

    /// A permanent failure: record it and dead-letter the message ourselves.
    async fn permanent(&self, err: &ExportError) -> Option<String> {
        let deps = self.deps;
        let message = err.to_string();
        tracing::error!(error_kind = err.kind(), error = %message, "export failed permanently");
        deps.metrics.count(
            EXPORT_FAILED,
            1,
            &[(Dimension::ErrorClass, ErrorClass::Permanent.as_str())],
        );
        self.record(FailureReport {
            status: FailureStatus::Error,
            message: message.clone(),
            error_class: ErrorClass::Permanent,
            error_kind: err.kind().to_owned(),
            attempt: self.receive_count,
        })
        .await;
        let letter = DeadLetter {
            body: self.record.body.clone().unwrap_or_default(),
            reason: DeadLetterReason::PermanentFailure,
            error_class: ErrorClass::Permanent,
            error_kind: err.kind().to_owned(),
            error_message: message,
            customer_id: Some(self.msg.customer_id.clone()),
            original_message_id: self.message_id.to_owned(),
        };
        match deps.control.dead_letter(&letter).await {
            Ok(()) => {
                deps.metrics.count(
                    EXPORT_DEAD_LETTERED,
                    1,
                    &[(
                        Dimension::Reason,
                        DeadLetterReason::PermanentFailure.as_str(),
                    )],
                );
                None
            }
            Err(dlq_err) => {
                tracing::error!(error = %dlq_err, "cannot dead-letter; the message will be delivered again");
                backoff(deps, self.record, self.lane, self.receive_count, None).await;
                Some(self.message_id.to_owned())
            }
        }
    }

    async fn record(&self, report: FailureReport) {
        if let Err(err) = self.deps.service.record_failure(self.msg, &report).await {
            tracing::warn!(error = %err, "cannot record the failure on the row");
        }
    }
}
