//! The chaos run behind `make chaos` (and a short one in `make test`): the whole pipeline on
//! the local stack while 1C misbehaves, then a check of everything the sync promises.
//!
//! While the platform registers customers and edits profiles (some several times within
//! milliseconds), 1C answers a share of requests with 5xx, 429 + `Retry-After`, hangs past the
//! client's timeout, or commits and then loses the answer, and goes fully down for a while in the
//! middle. Stale and duplicate export messages are sent alongside the real ones (out-of-order
//! redelivery). The full sync runs on its schedule, as it does every night in AWS, and picks up
//! what ran out of retries. Once everything has settled the run checks:
//!
//! - every valid customer synced, 1C holding what the mapper makes of the platform's latest row;
//! - one counterparty per customer (no duplicates), no platform edit lost or overwritten;
//! - invalid customers in `error` with a reason and in the DLQ, never in 1C;
//! - no delivery beyond the attempt budget (`MAX_EXPORT_ATTEMPTS`);
//! - at most three stream records per platform write (the write, the filter's flag, the
//!   exporter's outcome), plus one for a customer whose retries ran out (its `error` row, before
//!   the full sync's export succeeded), and no record caused only by onec-sync's own writes
//!   would enqueue anything.

use crate::demo::{differing_fields, read_dlq, scan, DeadLetterSummary, Row};
use crate::runner::{FullSyncSchedule, LocalStack, LocalStackOptions, RunnerError};
use crate::spec::MAX_EXPORT_ATTEMPTS;
use crate::stream_audit::{describe, is_moto_noop, is_own_write, ItemImages};
use crate::stream_poller::{StreamPoller, StreamPollerConfig};
use crate::users::{self, Expect, GeneratedUser};
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use onec_emulator::FaultPlan;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::adapters::sqs::SqsExportQueue;
use shared::domain::SyncStatus;
use shared::filter::{decide, FilterPolicy};
use shared::mapping::CustomerDataMapper;
use shared::message::{ExportMessage, ExportReason};
use shared::ports::ExportQueue;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Platform writes in flight at once.
const WRITE_CONCURRENCY: usize = 8;
/// The 1C client's request timeout in the run; hangs last longer, so they time out.
const REQUEST_TIMEOUT_SECS: u64 = 2;
const HANG_MS: u64 = 3_000;

/// What the run does.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    pub customers: usize,
    pub seed: u64,
    /// Share of customers registered with an invalid INN or e-mail.
    pub invalid_share: f64,
    /// Share of valid customers edited while the run goes on; a third of them two or three
    /// times within milliseconds.
    pub edit_share: f64,
    /// Share of customers that also get a stale or duplicate export message.
    pub redelivery_share: f64,
    pub error_5xx_rate: f64,
    pub rate_429: f64,
    pub timeout_rate: f64,
    pub lost_response_rate: f64,
    /// 1C answers only 503 for this long, starting when half the registrations are written.
    pub outage: Duration,
    /// The full sync's schedule.
    pub full_sync_every: Duration,
    /// How long the pipeline may take to settle after the last write.
    pub converge_timeout: Duration,
    /// A progress line on stderr every few seconds.
    pub progress: bool,
}

impl ChaosOptions {
    /// The run: 2,000 customers.
    pub fn full() -> Self {
        Self {
            customers: 2_000,
            seed: 2026,
            invalid_share: 0.05,
            edit_share: 0.4,
            redelivery_share: 0.2,
            error_5xx_rate: 0.10,
            rate_429: 0.05,
            timeout_rate: 0.05,
            lost_response_rate: 0.05,
            outage: Duration::from_secs(8),
            full_sync_every: Duration::from_secs(15),
            converge_timeout: Duration::from_secs(600),
            progress: true,
        }
    }

    /// The same mix on a few customers, for `make test`.
    pub fn short() -> Self {
        Self {
            customers: 120,
            seed: 7,
            outage: Duration::from_secs(3),
            full_sync_every: Duration::from_secs(5),
            converge_timeout: Duration::from_secs(90),
            progress: false,
            ..Self::full()
        }
    }

    fn fault_plan(&self) -> FaultPlan {
        FaultPlan {
            seed: self.seed,
            error_5xx_rate: self.error_5xx_rate,
            rate_429: self.rate_429,
            retry_after_secs: 1,
            timeout_rate: self.timeout_rate,
            lost_response_rate: self.lost_response_rate,
            hang_ms: HANG_MS,
            ..FaultPlan::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("the local stack cannot start")]
    Stack(#[from] RunnerError),
    #[error("{operation} failed")]
    Aws {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("reading the outcome failed")]
    Outcome(#[source] BoxError),
}

fn aws<E: std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
) -> impl FnOnce(E) -> ChaosError {
    move |e| ChaosError::Aws {
        operation,
        source: Box::new(e),
    }
}

/// The figures of a run and what did not hold.
#[derive(Debug, Default, Clone)]
pub struct ChaosReport {
    pub customers: usize,
    pub valid: usize,
    pub invalid: usize,
    /// Profile edits written (each a platform write with a new version).
    pub edits: usize,
    /// Customers edited two or three times within milliseconds.
    pub quick_edit_customers: usize,
    /// Stale (older version) and duplicate export messages sent next to the real ones.
    pub stale_messages: usize,
    pub duplicate_messages: usize,
    pub outage: Duration,
    /// Injected 1C faults by kind, as the emulator counted them.
    pub faults: BTreeMap<String, u64>,
    pub onec_requests: u64,
    pub exporter_messages: u64,
    pub exporter_retries: u64,
    pub full_syncs: u64,
    /// From the last platform write to everything settled.
    pub converge_time: Option<Duration>,
    pub elapsed: Duration,
    pub synced: usize,
    /// Counterparties beyond one per customer.
    pub duplicates: usize,
    /// Edited customers whose latest data is not on the row or not in 1C.
    pub lost_updates: usize,
    pub invalid_in_error: usize,
    pub invalid_in_dlq: usize,
    /// DLQ letters by `error_kind` (permanent) or `retries_exhausted`.
    pub dead_letters: BTreeMap<String, usize>,
    /// Valid customers whose retries ran out (1C down too long) and that the full sync then
    /// exported.
    pub recovered_by_full_sync: usize,
    /// The highest delivery count in the sync log, against the budget.
    pub max_attempt: u32,
    /// Records AWS would write (moto's records of updates that changed nothing left out).
    pub stream_records: usize,
    /// moto's records of updates that changed nothing (AWS writes none).
    pub moto_noop_records: usize,
    /// moto's records of a conditional write that raced another one on the same item and
    /// passed its condition against the state before it: the record's old image is not the
    /// item's previous new image. DynamoDB serialises writes to an item, so the loser of such
    /// a race fails its condition there and writes nothing (moto under load, measured:
    /// 1 in 300 races of eight writers).
    pub moto_race_records: usize,
    pub platform_writes: usize,
    /// Own writes (bookkeeping only, or bringing the row in sync) the filter would enqueue.
    pub own_writes_enqueued: usize,
    pub findings: Vec<String>,
}

impl ChaosReport {
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "== onec-sync chaos run ==");
        let _ = writeln!(
            out,
            "customers: {} ({} valid, {} invalid); profile edits: {} ({} customers edited 2-3 times within milliseconds)",
            self.customers, self.valid, self.invalid, self.edits, self.quick_edit_customers
        );
        let _ = writeln!(
            out,
            "redelivered out of order: {} stale and {} duplicate export messages",
            self.stale_messages, self.duplicate_messages
        );
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            out,
            "1C: {} requests, faults injected: {}; full outage {:.0}s",
            self.onec_requests,
            faults.join(", "),
            self.outage.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "exporter: {} deliveries, {} retried; highest attempt {} of {}; full-sync invocations {}",
            self.exporter_messages,
            self.exporter_retries,
            self.max_attempt,
            MAX_EXPORT_ATTEMPTS,
            self.full_syncs
        );
        let _ = writeln!(
            out,
            "converged {} after the last write; whole run {:.1}s",
            self.converge_time
                .map_or("NEVER".to_owned(), |d| format!("{:.1}s", d.as_secs_f64())),
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "synced: {}/{} valid customers, equal data in 1C; duplicates: {}; lost updates: {}",
            self.synced, self.valid, self.duplicates, self.lost_updates
        );
        let _ = writeln!(
            out,
            "invalid: {}/{} in status error with a reason, {}/{} in the DLQ",
            self.invalid_in_error, self.invalid, self.invalid_in_dlq, self.invalid
        );
        let letters: Vec<String> = self
            .dead_letters
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            out,
            "DLQ: {}; valid customers whose retries ran out and the full sync exported: {}",
            if letters.is_empty() {
                "empty".to_owned()
            } else {
                letters.join(", ")
            },
            self.recovered_by_full_sync
        );
        let _ = writeln!(
            out,
            "stream: {} records for {} platform writes ({:.2} per write; moto-only records left out: {} of no-op updates, {} of racing conditional writes); own writes that would enqueue: {}",
            self.stream_records,
            self.platform_writes,
            self.stream_records as f64 / self.platform_writes.max(1) as f64,
            self.moto_noop_records,
            self.moto_race_records,
            self.own_writes_enqueued
        );
        if self.findings.is_empty() {
            let _ = writeln!(out, "OUTCOME: every promise held");
        } else {
            let _ = writeln!(out, "OUTCOME: {} findings:", self.findings.len());
            for finding in self.findings.iter().take(50) {
                let _ = writeln!(out, "  - {finding}");
            }
            if self.findings.len() > 50 {
                let _ = writeln!(out, "  … and {} more", self.findings.len() - 50);
            }
        }
        out
    }
}

/// What the platform last wrote for a customer.
#[derive(Debug, Clone)]
struct Written {
    version: u64,
    phone: Option<String>,
    last_name: Option<String>,
    writes: usize,
}

/// Starts a local stack with the fault plan, runs the scenario, checks the outcome, stops the
/// stack.
pub async fn run_chaos(options: &ChaosOptions) -> Result<ChaosReport, ChaosError> {
    let started = Instant::now();
    let stack = LocalStack::start(LocalStackOptions {
        faults: options.fault_plan(),
        env_overrides: BTreeMap::from([(
            "ONEC_REQUEST_TIMEOUT_SECS".to_owned(),
            REQUEST_TIMEOUT_SECS.to_string(),
        )]),
        exporter_workers: 3,
        full_sync: Some(FullSyncSchedule::template_input(options.full_sync_every)),
        ..LocalStackOptions::default()
    })
    .await?;
    let result = run_on(&stack, options, started).await;
    stack.stop().await;
    result
}

async fn run_on(
    stack: &LocalStack,
    options: &ChaosOptions,
    started: Instant,
) -> Result<ChaosReport, ChaosError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(stack.aws());
    let table = stack.outputs().users_table.clone();
    let queue = SqsExportQueue::new(
        aws_sdk_sqs::Client::new(stack.aws()),
        stack.outputs().priority_queue_url.clone(),
        stack.outputs().bulk_queue_url.clone(),
    );
    let generated = users::generate(options.customers, options.seed, options.invalid_share);
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0xC4A05);
    let mut report = ChaosReport {
        customers: generated.len(),
        valid: generated
            .iter()
            .filter(|u| u.expect == Expect::Valid)
            .count(),
        outage: options.outage,
        ..ChaosReport::default()
    };
    report.invalid = report.customers - report.valid;
    let mut written: HashMap<String, Written> = HashMap::new();
    let progress = options
        .progress
        .then(|| spawn_progress(stack, generated.len()));

    // Registrations with edits and stale/duplicate messages interleaved; the outage starts
    // halfway through and runs beside the writes.
    let mut outage = Outage::new(stack, options);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut registered: Vec<&GeneratedUser> = Vec::new();
    for (i, user) in generated.iter().enumerate() {
        if i == generated.len() / 2 {
            outage.begin();
        }
        outage.end_when_due();
        while in_flight.len() >= WRITE_CONCURRENCY {
            if let Some(done) = in_flight.join_next().await {
                flatten(done)?;
            }
        }
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(user.row.clone()).map_err(|e| ChaosError::Outcome(e.into()))?;
        let request = dynamodb.put_item().table_name(&table).set_item(Some(item));
        in_flight.spawn(async move { request.send().await.map(|_| ()).map_err(aws("PutItem")) });
        written.insert(
            user.id.clone(),
            Written {
                version: user.row["version"].as_u64().unwrap_or(1),
                phone: user.row["phone"].as_str().map(str::to_owned),
                last_name: user.row["last_name"].as_str().map(str::to_owned),
                writes: 1,
            },
        );
        registered.push(user);

        // Edit an earlier valid customer now and then (its registration is written by now:
        // the JoinSet holds at most the last few).
        if registered.len() > WRITE_CONCURRENCY * 2 && rng.random_bool(options.edit_share) {
            let pick = registered[rng.random_range(0..registered.len() - WRITE_CONCURRENCY * 2)];
            if pick.expect == Expect::Valid {
                let quick = rng.random_bool(1.0 / 3.0);
                let times = if quick { rng.random_range(2..=3) } else { 1 };
                if quick {
                    report.quick_edit_customers += 1;
                }
                for _ in 0..times {
                    let state = written.get_mut(&pick.id).ok_or_else(|| {
                        ChaosError::Outcome("an edited customer was never written".into())
                    })?;
                    edit(&dynamodb, &table, &pick.id, state, &mut rng).await?;
                    report.edits += 1;
                }
            }
        }
        if registered.len() > WRITE_CONCURRENCY * 2 && rng.random_bool(options.redelivery_share) {
            let pick = registered[rng.random_range(0..registered.len() - WRITE_CONCURRENCY * 2)];
            let version = written.get(&pick.id).map_or(1, |w| w.version);
            let stale = version > 1 && rng.random_bool(0.5);
            let message = ExportMessage {
                customer_id: pick.id.clone(),
                reason: if stale {
                    ExportReason::ProfileChange
                } else {
                    ExportReason::Registration
                },
                version: if stale { version - 1 } else { 1 },
                changed_at: Utc::now(),
                onec_id: None,
            };
            let lane = message.reason.lane();
            queue
                .enqueue(lane, std::slice::from_ref(&message))
                .await
                .map_err(aws("SendMessageBatch"))?;
            if stale {
                report.stale_messages += 1;
            } else {
                report.duplicate_messages += 1;
            }
        }
    }
    while let Some(done) = in_flight.join_next().await {
        flatten(done)?;
    }
    outage.finish().await;
    let last_write = Instant::now();

    // Settle: every valid customer synced at its latest version, every invalid one in error,
    // and nothing moving.
    let deadline = last_write + options.converge_timeout;
    loop {
        let rows = scan(&dynamodb, &table)
            .await
            .map_err(|e| ChaosError::Outcome(e.into()))?;
        if settled(&generated, &rows, &written)
            && stack
                .is_idle(Duration::from_secs(2), last_write)
                .await
                .unwrap_or(false)
        {
            report.converge_time = Some(last_write.elapsed());
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if let Some(progress) = progress {
        progress.abort();
        eprintln!();
    }

    check(stack, &generated, &written, &mut report).await?;
    report.elapsed = started.elapsed();
    Ok(report)
}

fn flatten(done: Result<Result<(), ChaosError>, tokio::task::JoinError>) -> Result<(), ChaosError> {
    done.map_err(|e| ChaosError::Outcome(e.into()))?
}

/// The platform edits a profile: a new phone (typed as people type them) and, where the
/// customer has one, a new last name, with the next version.
async fn edit(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    id: &str,
    state: &mut Written,
    rng: &mut StdRng,
) -> Result<(), ChaosError> {
    let version = state.version + 1;
    let phone = users::phone(rng);
    let mut set = vec!["phone = :phone", "version = :v", "updated_at = :at"];
    let mut request = dynamodb
        .update_item()
        .table_name(table)
        .key("id", AttributeValue::S(id.to_owned()))
        .expression_attribute_values(":phone", AttributeValue::S(phone.clone()))
        .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
        .expression_attribute_values(":at", AttributeValue::S(Utc::now().to_rfc3339()));
    let last_name = state.last_name.as_ref().map(|_| users::person(rng).1);
    if let Some(last) = &last_name {
        set.push("last_name = :last");
        request = request.expression_attribute_values(":last", AttributeValue::S(last.clone()));
    }
    request
        .update_expression(format!("SET {}", set.join(", ")))
        .send()
        .await
        .map_err(aws("UpdateItem"))?;
    state.version = version;
    state.phone = Some(phone);
    if last_name.is_some() {
        state.last_name = last_name;
    }
    state.writes += 1;
    Ok(())
}

/// 1C down for a while, then back to the run's fault mix; driven from the writing loop.
struct Outage<'a> {
    stack: &'a LocalStack,
    plan: FaultPlan,
    length: Duration,
    since: Option<Instant>,
    over: bool,
}

impl<'a> Outage<'a> {
    fn new(stack: &'a LocalStack, options: &ChaosOptions) -> Self {
        Self {
            stack,
            plan: options.fault_plan(),
            length: options.outage,
            since: None,
            over: options.outage.is_zero(),
        }
    }

    fn begin(&mut self) {
        if !self.over && self.since.is_none() {
            self.stack.emulator().set_faults(FaultPlan {
                down: true,
                ..self.plan.clone()
            });
            self.since = Some(Instant::now());
        }
    }

    fn end_when_due(&mut self) {
        if let Some(since) = self.since.filter(|_| !self.over) {
            if since.elapsed() >= self.length {
                self.stack.emulator().set_faults(self.plan.clone());
                self.over = true;
            }
        }
    }

    /// Waits out the rest of the outage (the writes may finish first), then ends it.
    async fn finish(&mut self) {
        if let Some(since) = self.since.filter(|_| !self.over) {
            tokio::time::sleep(self.length.saturating_sub(since.elapsed())).await;
        }
        self.end_when_due();
    }
}

fn spawn_progress(stack: &LocalStack, total: usize) -> tokio::task::JoinHandle<()> {
    let dynamodb = aws_sdk_dynamodb::Client::new(stack.aws());
    let table = stack.outputs().users_table.clone();
    let stats = stack.stats().clone();
    let started = Instant::now();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let Ok(rows) = scan(&dynamodb, &table).await else {
                continue;
            };
            let synced = rows.values().filter(|r| r.customer.is_in_sync()).count();
            let errors = rows
                .values()
                .filter(|r| r.customer.sync_status == Some(SyncStatus::Error))
                .count();
            eprintln!(
                "[{:>6.1}s] written {}/{} | synced {} | errors {} | deliveries {} (retried {}) | full syncs {}",
                started.elapsed().as_secs_f64(),
                rows.len(),
                total,
                synced,
                errors,
                stats.exporter_messages.load(Ordering::Relaxed),
                stats.exporter_retries.load(Ordering::Relaxed),
                stats.full_sync_invocations.load(Ordering::Relaxed),
            );
        }
    })
}

fn settled(
    generated: &[GeneratedUser],
    rows: &HashMap<String, Row>,
    written: &HashMap<String, Written>,
) -> bool {
    generated.iter().all(|u| {
        let Some(row) = rows.get(&u.id) else {
            return false;
        };
        match u.expect {
            Expect::Valid => {
                let latest = written.get(&u.id).map_or(1, |w| w.version);
                row.customer.version == latest
                    && row.customer.is_in_sync()
                    && row.customer.onec_id.is_some()
            }
            Expect::Invalid(_) => row.customer.sync_status == Some(SyncStatus::Error),
        }
    })
}

/// Everything the run promises, checked against the rows, 1C, the DLQ, the sync log and the
/// stream.
async fn check(
    stack: &LocalStack,
    generated: &[GeneratedUser],
    written: &HashMap<String, Written>,
    report: &mut ChaosReport,
) -> Result<(), ChaosError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(stack.aws());
    let rows = scan(&dynamodb, &stack.outputs().users_table)
        .await
        .map_err(|e| ChaosError::Outcome(e.into()))?;
    let letters = read_dlq(stack)
        .await
        .map_err(|e| ChaosError::Outcome(e.into()))?;
    let log = sync_log_attempts(stack).await?;
    let mapper = CustomerDataMapper::default();
    let emulator_stats = stack.emulator().stats();
    report.faults = emulator_stats.faults.clone();
    report.onec_requests = emulator_stats.requests_total();
    let stats = stack.stats();
    report.exporter_messages = stats.exporter_messages.load(Ordering::Relaxed);
    report.exporter_retries = stats.exporter_retries.load(Ordering::Relaxed);
    report.full_syncs = stats.full_sync_invocations.load(Ordering::Relaxed);
    report.max_attempt = log.max_attempt;
    if log.max_attempt > MAX_EXPORT_ATTEMPTS {
        report.findings.push(format!(
            "a message was delivered {} times, over the budget of {MAX_EXPORT_ATTEMPTS}",
            log.max_attempt
        ));
    }
    let mut letters_of: HashMap<&str, Vec<&DeadLetterSummary>> = HashMap::new();
    for letter in &letters {
        letters_of
            .entry(letter.customer_id.as_str())
            .or_default()
            .push(letter);
        let kind = if letter.permanent {
            letter.detail.clone()
        } else {
            "retries_exhausted".to_owned()
        };
        *report.dead_letters.entry(kind).or_default() += 1;
    }

    for user in generated {
        let letters = letters_of.remove(user.id.as_str()).unwrap_or_default();
        let held = stack.emulator().find_by_platform_id(&user.id);
        let Some(row) = rows.get(&user.id) else {
            report
                .findings
                .push(format!("{}: the row is gone", user.id));
            continue;
        };
        let customer = &row.customer;
        match user.expect {
            Expect::Valid => {
                if held.len() > 1 {
                    report.duplicates += held.len() - 1;
                    report.findings.push(format!(
                        "{}: 1C holds {} counterparties",
                        user.id,
                        held.len()
                    ));
                }
                if !customer.is_in_sync() || customer.onec_id.is_none() {
                    report.findings.push(format!(
                        "{}: not synced (status {})",
                        user.id,
                        customer.sync_status.map_or("none", |s| s.as_str())
                    ));
                    continue;
                }
                report.synced += 1;
                let Some(record) = held.first() else {
                    report
                        .findings
                        .push(format!("{}: synced, yet not in 1C", user.id));
                    continue;
                };
                let latest = written.get(&user.id);
                let row_is_latest = latest.is_some_and(|w| {
                    customer.version == w.version
                        && customer.phone == w.phone
                        && customer.last_name == w.last_name
                });
                let in_1c = mapper
                    .map_platform_to_1c(customer, &Default::default())
                    .map(|expected| differing_fields(&expected, record))
                    .unwrap_or_else(|_| vec!["(does not map)"]);
                if !row_is_latest || !in_1c.is_empty() {
                    report.lost_updates += 1;
                    report.findings.push(format!(
                        "{}: lost update (row is the latest write: {row_is_latest}; 1C differs in: {})",
                        user.id,
                        in_1c.join(", ")
                    ));
                }
                if letters.iter().any(|l| l.permanent) {
                    report.findings.push(format!(
                        "{}: valid, yet dead-lettered as a permanent failure",
                        user.id
                    ));
                } else if !letters.is_empty() {
                    report.recovered_by_full_sync += 1;
                }
            }
            Expect::Invalid(field) => {
                if !held.is_empty() {
                    report
                        .findings
                        .push(format!("{}: invalid {field}, yet in 1C", user.id));
                }
                let reason = customer
                    .sync_error_message
                    .as_deref()
                    .is_some_and(|m| !m.trim().is_empty());
                if customer.sync_status == Some(SyncStatus::Error) && reason {
                    report.invalid_in_error += 1;
                } else {
                    report.findings.push(format!(
                        "{}: invalid {field}, yet status {}",
                        user.id,
                        customer.sync_status.map_or("none", |s| s.as_str())
                    ));
                }
                if letters.iter().any(|l| l.permanent) {
                    report.invalid_in_dlq += 1;
                } else {
                    report.findings.push(format!(
                        "{}: invalid {field}, yet not dead-lettered as a permanent failure",
                        user.id
                    ));
                }
            }
        }
    }
    for (id, _) in letters_of {
        report
            .findings
            .push(format!("{id}: a DLQ letter for no customer of the run"));
    }

    check_stream(stack, written, &log.gave_up, report).await
}

/// The sync log's view of the attempts.
struct LogAttempts {
    max_attempt: u32,
    /// Customers with an attempt that ended in "gave up" (retries exhausted).
    gave_up: BTreeSet<String>,
}

async fn sync_log_attempts(stack: &LocalStack) -> Result<LogAttempts, ChaosError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(stack.aws());
    let mut out = LogAttempts {
        max_attempt: 0,
        gave_up: BTreeSet::new(),
    };
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(&stack.outputs().sync_log_table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(aws("Scan(sync log)"))?;
        for item in page.items() {
            let Some(AttributeValue::M(details)) = item.get("details") else {
                continue;
            };
            let attempt = details
                .get("attempt")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u32>().ok());
            out.max_attempt = out.max_attempt.max(attempt.unwrap_or(0));
            let status = item.get("status").and_then(|v| v.as_s().ok());
            let transient = details
                .get("error_class")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|c| c == "transient");
            if status.is_some_and(|s| s == "error") && transient {
                if let Some(AttributeValue::S(id)) = item.get("customer_id") {
                    out.gave_up.insert(id.clone());
                }
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(out);
        }
    }
}

/// Reads the users table's stream from its start (a second reader beside the filter's) and
/// checks the bound and that onec-sync's own writes enqueue nothing.
async fn check_stream(
    stack: &LocalStack,
    written: &HashMap<String, Written>,
    gave_up: &BTreeSet<String>,
    report: &mut ChaosReport,
) -> Result<(), ChaosError> {
    let mut poller = StreamPoller::new(
        aws_sdk_dynamodbstreams::Client::new(stack.aws()),
        stack.outputs().users_stream_arn.clone(),
        StreamPollerConfig {
            batch_size: 1000,
            ..StreamPollerConfig::default()
        },
    );
    let records = std::sync::Mutex::new(Vec::<EventRecord>::new());
    poller
        .drain(|event| {
            records
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(event.records);
            async { Ok::<_, Infallible>(DynamoDbEventResponse::default()) }
        })
        .await
        .map_err(|e| ChaosError::Outcome(e.into()))?;
    let records = records
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let env = stack.function_env().clone();
    let policy: FilterPolicy =
        stream_filter::FilterConfig::from_lookup(&move |name: &str| env.get(name).cloned())
            .map_err(|e| ChaosError::Outcome(e.into()))?
            .policy;

    // Per customer: its records, each as the event and the attributes it changed (names only).
    let mut per_customer: HashMap<String, Vec<String>> = HashMap::new();
    let mut item_images = ItemImages::default();
    for record in &records {
        if is_moto_noop(record) {
            report.moto_noop_records += 1;
            continue;
        }
        let id = match record.change.keys.get("id") {
            Some(serde_dynamo::AttributeValue::S(id)) => Some(id),
            _ => None,
        };
        if let Some(id) = id {
            if item_images.follows(id, record) {
                per_customer
                    .entry(id.clone())
                    .or_default()
                    .push(describe(record));
            } else {
                report.moto_race_records += 1;
            }
        }
        let decision = decide(record, &policy).map_err(|e| ChaosError::Outcome(e.into()))?;
        if is_own_write(record) && decision.message().is_some() {
            report.own_writes_enqueued += 1;
            report
                .findings
                .push("a write of onec-sync's own would enqueue an export".to_owned());
        }
    }
    report.stream_records = records.len() - report.moto_noop_records - report.moto_race_records;
    report.platform_writes = written.values().map(|w| w.writes).sum();
    for (id, seen) in per_customer {
        let writes = written.get(&id).map_or(0, |w| w.writes);
        let bound = 3 * writes + usize::from(gave_up.contains(&id));
        if seen.len() > bound {
            report.findings.push(format!(
                "{id}: {} stream records for {writes} platform writes (bound {bound}): {}",
                seen.len(),
                seen.join("; ")
            ));
        }
    }
    Ok(())
}
