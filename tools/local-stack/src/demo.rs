//! The demo scenario behind `make demo` (and a short run in `make test`):
//!
//! 1. the platform registers users (DynamoDB `PutItem`, as the site does);
//! 2. once they are exported, the platform edits some profiles (`UpdateItem` of significant
//!    fields with a new `version`);
//! 3. an operator changes some roles/statuses in 1C (the emulator's admin side); the full sync's
//!    import brings them back to the users (on the stack's schedule, or invoked once when the
//!    stack has none), and must not export them back: 1C receives no write in that phase;
//! 4. a live one-line summary on stderr while the pipeline works, then a report checked against
//!    what must have happened.
//!
//! Nothing personal is printed: user ids are UUIDs, e-mails/phones/INNs appear masked only.

use crate::runner::LocalStack;
use crate::users::{self, Expect, GeneratedUser};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chrono::{DateTime, Utc};
use onec_emulator::{CounterpartyPatch, CounterpartyRecord};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use shared::domain::Customer;
use shared::mapping::CustomerDataMapper;
use shared::onec::{Counterparty, CounterpartyKind};
use shared::pii::Masked;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// With empty queues and no handler activity for this long, the pipeline has done all it will.
const STUCK_AFTER: Duration = Duration::from_secs(5);
/// Platform writes in flight at once.
const WRITE_CONCURRENCY: usize = 8;

/// What the scenario does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub users: usize,
    /// Seeds the generated users and the choice of edits.
    pub seed: u64,
    /// Share of users written with an invalid INN or e-mail.
    pub invalid_share: f64,
    /// Share of valid users whose profile the platform edits after the export.
    pub edit_share: f64,
    /// Share of valid users whose role/status an operator changes in 1C.
    pub onec_edit_share: f64,
    /// How long each phase may take to settle.
    pub phase_timeout: Duration,
    /// A refreshing summary on stderr.
    pub progress: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            users: 300,
            seed: 42,
            invalid_share: 0.05,
            edit_share: 0.1,
            onec_edit_share: 0.05,
            phase_timeout: Duration::from_secs(240),
            progress: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{operation} failed")]
    Aws {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("a generated row does not convert to a DynamoDB item")]
    Item(#[source] serde_dynamo::Error),
    #[error("the 1C import failed")]
    Import(#[source] BoxError),
}

fn aws_error<E>(operation: &'static str) -> impl FnOnce(E) -> DemoError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| DemoError::Aws {
        operation,
        source: Box::new(e),
    }
}

/// The platform's edit of one profile.
#[derive(Debug, Clone)]
pub(crate) struct ProfileEdit {
    id: String,
    version: u64,
    at: DateTime<Utc>,
}

/// An operator's change in 1C, which the import brings back.
#[derive(Debug, Clone)]
pub struct OneCSideEdit {
    pub id: String,
    pub onec_id: String,
    pub platform_role: Option<String>,
    pub platform_status: Option<String>,
    pub onec_role: Option<String>,
    pub onec_status: Option<String>,
    /// The row carries 1C's role and status (as the mapping translates them) at the end.
    pub imported: bool,
}

/// A message in the DLQ.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeadLetterSummary {
    pub customer_id: String,
    /// Sent by the exporter for a permanent failure (`error_kind` set), rather than moved by
    /// SQS after the retries ran out.
    pub permanent: bool,
    /// `error_kind` for a permanent failure, else the message's own reason (registration…).
    pub detail: String,
}

/// One problem with the outcome.
pub type Finding = String;

/// What the scenario ended with.
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    pub users: usize,
    pub valid: usize,
    pub invalid: usize,
    pub synced: usize,
    pub errors: usize,
    pub profile_edits: usize,
    pub profile_edits_in_1c: usize,
    pub onec_side_edits: Vec<OneCSideEdit>,
    /// Valid users: id → onec_id (a sample goes into the rendered report).
    pub onec_ids: BTreeMap<String, String>,
    /// Invalid users: id, masked offending value, the row's `sync_error_message`.
    pub error_rows: Vec<(String, String, String)>,
    pub dead_letters: Vec<DeadLetterSummary>,
    pub registration_latency: Latency,
    pub profile_latency: Latency,
    pub onec_requests: u64,
    pub onec_faults: BTreeMap<String, u64>,
    pub exporter_retries: u64,
    /// Full-sync invocations during the run (scheduled or asked for).
    pub full_syncs: u64,
    /// Counterparty writes 1C received while only the import had work (must be 0).
    pub import_exports: u64,
    /// DLQ letters beyond the first for the same user (at-least-once delivery; see the report).
    pub duplicate_letters: usize,
    pub elapsed: Duration,
    /// Empty when the outcome is as expected.
    pub findings: Vec<Finding>,
}

/// Sync latencies (platform write → `last_sync_at` on the row).
#[derive(Debug, Clone, Default)]
pub struct Latency {
    samples: Vec<Duration>,
}

impl Latency {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The `p`-th percentile (nearest rank), `p` in 0..=100.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted = self.samples.clone();
        sorted.sort();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
    }

    fn render(&self) -> String {
        match (self.percentile(50.0), self.percentile(95.0)) {
            (Some(p50), Some(p95)) => format!(
                "p50 {:.2}s, p95 {:.2}s (n={})",
                p50.as_secs_f64(),
                p95.as_secs_f64(),
                self.len()
            ),
            _ => "n/a".to_owned(),
        }
    }
}

impl DemoReport {
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// The report as printed at the end of the demo (no personal data).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "== onec-sync demo report ==");
        let _ = writeln!(
            out,
            "users written: {} ({} valid, {} deliberately invalid); finished in {:.1}s",
            self.users,
            self.valid,
            self.invalid,
            self.elapsed.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "synced: {}/{} valid users have an onec_id and equal data in 1C",
            self.synced, self.valid
        );
        let _ = writeln!(
            out,
            "profile edits on the platform: {} (reached 1C: {})",
            self.profile_edits, self.profile_edits_in_1c
        );
        let _ = writeln!(
            out,
            "sync latency, registration → onec_id on the row: {}",
            self.registration_latency.render()
        );
        let _ = writeln!(
            out,
            "sync latency, profile edit → 1C updated:          {}",
            self.profile_latency.render()
        );
        let faults: Vec<String> = self
            .onec_faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            out,
            "1C requests: {} (injected faults: {}); exporter retries: {}",
            self.onec_requests,
            if faults.is_empty() {
                "none".to_owned()
            } else {
                faults.join(", ")
            },
            self.exporter_retries
        );
        let _ = writeln!(out, "\nsample of synced users (user id → 1C Ref_Key):");
        for (id, onec_id) in self.onec_ids.iter().take(5) {
            let _ = writeln!(out, "  {id} → {onec_id}");
        }
        if self.onec_ids.len() > 5 {
            let _ = writeln!(out, "  … and {} more", self.onec_ids.len() - 5);
        }
        let _ = writeln!(
            out,
            "\nstatus `error` ({}), values masked:",
            self.error_rows.len()
        );
        for (id, value, message) in &self.error_rows {
            let _ = writeln!(out, "  {id}  {value}  {message}");
        }
        let _ = writeln!(
            out,
            "\nDLQ ({} messages{}):",
            self.dead_letters.len(),
            if self.duplicate_letters > 0 {
                format!(
                    ", {} of them another letter for a user already listed: the full sync or a redelivery sent it again; equivalent, each redrive idempotent",
                    self.duplicate_letters
                )
            } else {
                String::new()
            }
        );
        for letter in &self.dead_letters {
            let kind = if letter.permanent {
                "permanent failure"
            } else {
                "retries exhausted"
            };
            let _ = writeln!(out, "  {}  {kind} ({})", letter.customer_id, letter.detail);
        }
        let _ = writeln!(
            out,
            "\nchanged in 1C, brought back by the import: {}/{} (full-sync invocations: {}; 1C writes while importing: {})",
            self.onec_side_edits.iter().filter(|e| e.imported).count(),
            self.onec_side_edits.len(),
            self.full_syncs,
            self.import_exports,
        );
        for edit in &self.onec_side_edits {
            let _ = writeln!(
                out,
                "  {} ({})  role: platform {} / 1C {}   status: platform {} / 1C {}{}",
                edit.id,
                edit.onec_id,
                edit.platform_role.as_deref().unwrap_or("-"),
                edit.onec_role.as_deref().unwrap_or("-"),
                edit.platform_status.as_deref().unwrap_or("-"),
                edit.onec_status.as_deref().unwrap_or("-"),
                if edit.imported { "" } else { "   NOT IMPORTED" },
            );
        }
        if self.findings.is_empty() {
            let _ = writeln!(out, "\nOUTCOME: as expected");
        } else {
            let _ = writeln!(out, "\nOUTCOME: NOT as expected ({}):", self.findings.len());
            for finding in &self.findings {
                let _ = writeln!(out, "  - {finding}");
            }
        }
        out
    }
}

/// A users-table row as the demo reads it.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) customer: Customer,
}

/// Runs the scenario on a started stack; see the module documentation.
pub async fn run_scenario(
    stack: &LocalStack,
    options: &DemoOptions,
) -> Result<DemoReport, DemoError> {
    let started = Instant::now();
    let dynamodb = aws_sdk_dynamodb::Client::new(stack.aws());
    let generated = users::generate(options.users, options.seed, options.invalid_share);
    let written_at: Arc<Mutex<HashMap<String, DateTime<Utc>>>> = Arc::default();
    let latency = Arc::new(Mutex::new(Tracker::default()));

    let progress = Progress::start(
        stack,
        options,
        &generated,
        written_at.clone(),
        latency.clone(),
    );

    // 1. Registrations, as the site writes them.
    write_users(
        &dynamodb,
        &stack.outputs().users_table,
        &generated,
        &written_at,
    )
    .await?;
    let expected_done = |rows: &HashMap<String, Row>| {
        generated.iter().all(|u| {
            rows.get(&u.id).is_some_and(|r| match u.expect {
                Expect::Valid => r.customer.is_in_sync(),
                Expect::Invalid(_) => {
                    r.customer.sync_status == Some(shared::domain::SyncStatus::Error)
                }
            })
        })
    };
    wait_for(stack, &dynamodb, options.phase_timeout, &expected_done).await?;

    // 2. Profile edits on the platform, 3. role/status changes in 1C (different users).
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0x5eed);
    let valid: Vec<&GeneratedUser> = generated
        .iter()
        .filter(|u| u.expect == Expect::Valid)
        .collect();
    let edits_wanted = share(valid.len(), options.edit_share);
    let onec_wanted = share(valid.len(), options.onec_edit_share);
    let mut picked: Vec<&GeneratedUser> = valid.clone();
    shuffle(&mut picked, &mut rng);
    let (to_edit, rest) = picked.split_at(edits_wanted.min(picked.len()));
    let to_edit_in_1c = &rest[..onec_wanted.min(rest.len())];

    let rows = scan(&dynamodb, &stack.outputs().users_table).await?;
    let mut edits = Vec::new();
    for user in to_edit {
        let Some(row) = rows.get(&user.id) else {
            continue;
        };
        edits.push(edit_profile(&dynamodb, stack, &row.customer, &mut rng).await?);
    }
    {
        let mut tracker = latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for edit in &edits {
            tracker
                .edits
                .insert(edit.id.clone(), (edit.version, edit.at));
        }
    }
    let edits_done = |rows: &HashMap<String, Row>| {
        expected_done(rows)
            && edits.iter().all(|e| {
                rows.get(&e.id)
                    .is_some_and(|r| r.customer.synced_version.is_some_and(|v| v >= e.version))
            })
    };
    wait_for(stack, &dynamodb, options.phase_timeout, &edits_done).await?;
    // Anything still moving (duplicates, retries) finishes before 1C's side changes.
    let _ = stack
        .settle(Duration::from_millis(1500), Duration::from_secs(30))
        .await;

    // 3. 1C's side: the import brings the changes back and exports nothing.
    let rows = scan(&dynamodb, &stack.outputs().users_table).await?;
    let mut onec_side_edits = edit_in_1c(stack, &rows, to_edit_in_1c, &mut rng);
    // Counted after the operator's own edits, which the emulator counts as writes too.
    let writes_before = onec_writes(stack);
    if stack.full_sync_schedule().is_none() {
        let input = full_sync::FullSyncInput::start(
            shared::sync_run::SyncDirection::Import,
            full_sync::DEFAULT_CHUNK_SIZE,
        );
        stack
            .invoke_full_sync(&input)
            .await
            .map_err(|e| DemoError::Import(Box::new(e)))?;
    }
    let imported = |rows: &HashMap<String, Row>| {
        edits_done(rows)
            && onec_side_edits
                .iter()
                .all(|edit| carries_1c_values(stack, rows, edit))
    };
    wait_for_import(stack, &dynamodb, options.phase_timeout, &imported).await?;
    let _ = stack
        .settle(Duration::from_millis(1500), Duration::from_secs(30))
        .await;
    let import_writes = onec_writes(stack) - writes_before;
    progress.stop().await;

    let rows = scan(&dynamodb, &stack.outputs().users_table).await?;
    for edit in &mut onec_side_edits {
        edit.imported = carries_1c_values(stack, &rows, edit);
        if let Some(row) = rows.get(&edit.id) {
            edit.platform_role.clone_from(&row.customer.role);
            edit.platform_status.clone_from(&row.customer.status);
        }
    }
    latency
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .observe(
            &rows,
            &written_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    let dead_letters = read_dlq(stack).await?;
    let tracker = latency
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut report = build_report(
        stack,
        &generated,
        &rows,
        &edits,
        onec_side_edits,
        dead_letters,
        tracker,
        started.elapsed(),
    );
    report.full_syncs = stack
        .stats()
        .full_sync_invocations
        .load(std::sync::atomic::Ordering::Relaxed);
    report.import_exports = import_writes;
    if import_writes > 0 {
        report.findings.push(format!(
            "1C received {import_writes} writes while only the import ran: it was exported back"
        ));
    }
    Ok(report)
}

/// Counterparty writes 1C has received.
fn onec_writes(stack: &LocalStack) -> u64 {
    let stats = stack.emulator().stats();
    stats.creates + stats.updates + stats.deletes
}

/// The user's row holds 1C's role and status for it: the platform's values map to 1C's.
fn carries_1c_values(stack: &LocalStack, rows: &HashMap<String, Row>, edit: &OneCSideEdit) -> bool {
    let (Some(row), Some(held)) = (
        rows.get(&edit.id),
        stack.emulator().counterparty(&edit.onec_id),
    ) else {
        return false;
    };
    CustomerDataMapper::default()
        .map_platform_to_1c(&row.customer, &Default::default())
        .is_ok_and(|mapped| mapped.role == held.fields.role && mapped.status == held.fields.status)
}

/// Like [`wait_for`], but an idle pipeline is no reason to stop: the import comes on the
/// schedule, not from a queue.
async fn wait_for_import(
    stack: &LocalStack,
    dynamodb: &aws_sdk_dynamodb::Client,
    timeout: Duration,
    done: &dyn Fn(&HashMap<String, Row>) -> bool,
) -> Result<bool, DemoError> {
    let deadline = Instant::now() + timeout;
    loop {
        if done(&scan(dynamodb, &stack.outputs().users_table).await?) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            tracing::warn!("the 1C changes were not imported within {timeout:?}");
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn share(n: usize, fraction: f64) -> usize {
    if fraction <= 0.0 || n == 0 {
        return 0;
    }
    ((n as f64 * fraction).round() as usize).max(1)
}

fn shuffle<T>(items: &mut [T], rng: &mut impl Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

async fn write_users(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    users: &[GeneratedUser],
    written_at: &Mutex<HashMap<String, DateTime<Utc>>>,
) -> Result<(), DemoError> {
    let joined = |done: Result<Result<(), DemoError>, tokio::task::JoinError>| {
        done.map_err(|e| DemoError::Aws {
            operation: "PutItem",
            source: Box::new(e),
        })?
    };
    let mut in_flight = tokio::task::JoinSet::new();
    for user in users {
        if in_flight.len() >= WRITE_CONCURRENCY {
            if let Some(done) = in_flight.join_next().await {
                joined(done)?;
            }
        }
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(user.row.clone()).map_err(DemoError::Item)?;
        let request = dynamodb.put_item().table_name(table).set_item(Some(item));
        written_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(user.id.clone(), Utc::now());
        in_flight.spawn(async move {
            request
                .send()
                .await
                .map(|_| ())
                .map_err(aws_error("PutItem"))
        });
    }
    while let Some(done) = in_flight.join_next().await {
        joined(done)?;
    }
    Ok(())
}

/// The platform edits a profile: a new phone (typed differently) and, for some, a new last name
/// or e-mail, with the next `version`.
pub(crate) async fn edit_profile(
    dynamodb: &aws_sdk_dynamodb::Client,
    stack: &LocalStack,
    customer: &Customer,
    rng: &mut impl Rng,
) -> Result<ProfileEdit, DemoError> {
    let version = customer.version + 1;
    let at = Utc::now();
    let mut request = dynamodb
        .update_item()
        .table_name(&stack.outputs().users_table)
        .key("id", AttributeValue::S(customer.id.clone()))
        .expression_attribute_values(":phone", AttributeValue::S(users::phone(rng)))
        .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
        .expression_attribute_values(":at", AttributeValue::S(at.to_rfc3339()));
    let mut set = vec!["#phone = :phone", "#version = :v", "#updated_at = :at"];
    if rng.random_bool(0.5) {
        let (_, last) = users::person(rng);
        set.push("#last_name = :last");
        request = request.expression_attribute_values(":last", AttributeValue::S(last));
    } else if let Some(email) = &customer.email {
        set.push("#email = :email");
        let changed = email.replacen('@', "+shop@", 1);
        request = request.expression_attribute_values(":email", AttributeValue::S(changed));
    }
    for placeholder in &set {
        let name = placeholder.split(' ').next().unwrap_or_default();
        request = request.expression_attribute_names(name, name.trim_start_matches('#'));
    }
    request
        .update_expression(format!("SET {}", set.join(", ")))
        .send()
        .await
        .map_err(aws_error("UpdateItem"))?;
    Ok(ProfileEdit {
        id: customer.id.clone(),
        version,
        at,
    })
}

/// An operator changes role and status in 1C for these users.
fn edit_in_1c(
    stack: &LocalStack,
    rows: &HashMap<String, Row>,
    users: &[&GeneratedUser],
    rng: &mut impl Rng,
) -> Vec<OneCSideEdit> {
    const ROLES: &[&str] = &["Опт", "VIP", "Партнёр", "Розница"];
    const STATUSES: &[&str] = &["Заблокирован", "Неактивен"];
    let mut out = Vec::new();
    for user in users {
        let Some(row) = rows.get(&user.id) else {
            continue;
        };
        let Some(onec_id) = row.customer.onec_id.clone() else {
            continue;
        };
        let current = stack.emulator().counterparty(&onec_id);
        let current_role = current.as_ref().and_then(|c| c.fields.role.clone());
        let role = ROLES
            .iter()
            .find(|r| Some(**r) != current_role.as_deref())
            .map(|r| (*r).to_owned());
        let status = STATUSES[rng.random_range(0..STATUSES.len())].to_owned();
        let patch = CounterpartyPatch {
            role: Some(role),
            status: Some(Some(status)),
            ..CounterpartyPatch::default()
        };
        match stack.emulator().edit_in_1c(&onec_id, patch) {
            Ok(record) => out.push(OneCSideEdit {
                id: user.id.clone(),
                onec_id,
                platform_role: row.customer.role.clone(),
                platform_status: row.customer.status.clone(),
                onec_role: record.fields.role.clone(),
                onec_status: record.fields.status.clone(),
                imported: false,
            }),
            Err(err) => tracing::warn!(error = %err, "cannot edit the counterparty in 1C"),
        }
    }
    out
}

/// Every row of the users table, by id.
pub(crate) async fn scan(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<HashMap<String, Row>, DemoError> {
    let mut rows = HashMap::new();
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(aws_error("Scan"))?;
        for item in page.items.unwrap_or_default() {
            match serde_dynamo::from_item::<_, Customer>(item) {
                Ok(customer) => {
                    rows.insert(customer.id.clone(), Row { customer });
                }
                // The error may quote attribute values; the id is enough to find the row.
                Err(_) => tracing::warn!("a row of the users table does not read as a customer"),
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(rows);
        }
    }
}

/// Latencies seen so far: registration (write → first `last_sync_at`) and profile edits.
#[derive(Debug, Clone, Default)]
struct Tracker {
    registration: HashMap<String, Duration>,
    edits: HashMap<String, (u64, DateTime<Utc>)>,
    edit_latency: HashMap<String, Duration>,
}

impl Tracker {
    fn observe(&mut self, rows: &HashMap<String, Row>, written: &HashMap<String, DateTime<Utc>>) {
        for (id, row) in rows {
            let Some(synced_at) = row
                .customer
                .last_sync_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
            else {
                continue;
            };
            if let Some(at) = written.get(id) {
                if !self.registration.contains_key(id) && row.customer.synced_version == Some(1) {
                    self.registration
                        .insert(id.clone(), (synced_at - *at).to_std().unwrap_or_default());
                }
            }
            if let Some((version, at)) = self.edits.get(id) {
                if row.customer.synced_version.is_some_and(|v| v >= *version)
                    && !self.edit_latency.contains_key(id)
                {
                    self.edit_latency
                        .insert(id.clone(), (synced_at - *at).to_std().unwrap_or_default());
                }
            }
        }
    }

    fn registration(&self) -> Latency {
        Latency {
            samples: self.registration.values().copied().collect(),
        }
    }

    fn profile(&self) -> Latency {
        Latency {
            samples: self.edit_latency.values().copied().collect(),
        }
    }
}

/// Polls the table until `done` holds or the timeout passes.
async fn wait_for(
    stack: &LocalStack,
    dynamodb: &aws_sdk_dynamodb::Client,
    timeout: Duration,
    done: &dyn Fn(&HashMap<String, Row>) -> bool,
) -> Result<bool, DemoError> {
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let rows = scan(dynamodb, &stack.outputs().users_table).await?;
        if done(&rows) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            tracing::warn!("the pipeline did not settle within {timeout:?}");
            return Ok(false);
        }
        // Nothing left to deliver or retry: waiting longer cannot change the outcome.
        if stack.is_idle(STUCK_AFTER, started).await.unwrap_or(false) {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Receives everything in the DLQ (and makes it visible again, so `--keep` still shows it).
pub(crate) async fn read_dlq(stack: &LocalStack) -> Result<Vec<DeadLetterSummary>, DemoError> {
    let sqs = aws_sdk_sqs::Client::new(stack.aws());
    let url = &stack.outputs().dlq_url;
    let mut seen = BTreeSet::new();
    let mut letters = Vec::new();
    let mut receipts = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(30)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(aws_error("ReceiveMessage"))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            if let Some(handle) = m.receipt_handle() {
                receipts.push(handle.to_owned());
            }
            if !seen.insert(m.message_id().unwrap_or_default().to_owned()) {
                continue;
            }
            let attribute = |name: &str| {
                m.message_attributes()
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned)
            };
            let customer = attribute("customer_id").or_else(|| {
                m.body()
                    .and_then(|b| serde_json::from_str::<Value>(b).ok())
                    .and_then(|v| v["customer_id"].as_str().map(str::to_owned))
            });
            let kind = attribute("error_kind");
            letters.push(DeadLetterSummary {
                customer_id: customer.unwrap_or_else(|| "(unknown)".to_owned()),
                permanent: kind.is_some(),
                detail: kind
                    .or_else(|| attribute("reason"))
                    .unwrap_or_else(|| "-".to_owned()),
            });
        }
    }
    for handle in receipts {
        let _ = sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await;
    }
    letters.sort();
    Ok(letters)
}

/// Fields of the counterparty 1C holds that differ from what the mapper makes of the row.
pub(crate) fn differing_fields(
    expected: &Counterparty,
    held: &CounterpartyRecord,
) -> Vec<&'static str> {
    let kind_matches = matches!(
        (expected.kind, held.fields.kind),
        (
            CounterpartyKind::Individual,
            onec_emulator::CounterpartyKind::Individual
        ) | (
            CounterpartyKind::LegalEntity,
            onec_emulator::CounterpartyKind::LegalEntity
        )
    );
    let f = &held.fields;
    let checks: [(&'static str, bool); 11] = [
        ("kind", kind_matches),
        (
            "platform_id",
            f.platform_id.as_deref() == Some(expected.platform_id.as_str()),
        ),
        ("name", f.name == expected.name),
        ("inn", f.inn == expected.inn),
        ("kpp", f.kpp == expected.kpp),
        ("email", f.email == expected.email),
        ("phone", f.phone == expected.phone),
        ("role", f.role == expected.role),
        ("status", f.status == expected.status),
        (
            "contact_person",
            f.contact_person == expected.contact_person,
        ),
        ("deletion_mark", !f.deletion_mark),
    ];
    checks
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect()
}

fn masked_value(user: &GeneratedUser, field: &str) -> String {
    let raw = user.row[field].as_str().unwrap_or_default();
    match field {
        "email" => format!("email={}", Masked::email(raw)),
        "tax_id" => format!("tax_id={}", Masked::inn(raw)),
        _ => format!("{field}={}", Masked::other(raw)),
    }
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    stack: &LocalStack,
    generated: &[GeneratedUser],
    rows: &HashMap<String, Row>,
    edits: &[ProfileEdit],
    onec_side_edits: Vec<OneCSideEdit>,
    dead_letters: Vec<DeadLetterSummary>,
    tracker: Tracker,
    elapsed: Duration,
) -> DemoReport {
    let mapper = CustomerDataMapper::default();
    let stats = stack.emulator().stats();
    let mut report = DemoReport {
        users: generated.len(),
        valid: generated
            .iter()
            .filter(|u| u.expect == Expect::Valid)
            .count(),
        invalid: generated
            .iter()
            .filter(|u| u.expect != Expect::Valid)
            .count(),
        profile_edits: edits.len(),
        registration_latency: tracker.registration(),
        profile_latency: tracker.profile(),
        onec_requests: stats.requests_total(),
        onec_faults: stats.faults.clone(),
        exporter_retries: stack
            .stats()
            .exporter_retries
            .load(std::sync::atomic::Ordering::Relaxed),
        elapsed,
        ..DemoReport::default()
    };
    for edit in onec_side_edits.iter().filter(|e| !e.imported) {
        report.findings.push(format!(
            "{}: its role/status changed in 1C did not reach the platform",
            edit.id
        ));
    }
    let edited: HashMap<&str, &ProfileEdit> = edits.iter().map(|e| (e.id.as_str(), e)).collect();
    let dlq_ids: BTreeMap<&str, usize> =
        dead_letters
            .iter()
            .fold(BTreeMap::new(), |mut acc, letter| {
                *acc.entry(letter.customer_id.as_str()).or_default() += 1;
                acc
            });

    for user in generated {
        let Some(row) = rows.get(&user.id) else {
            report
                .findings
                .push(format!("{}: the row is missing", user.id));
            continue;
        };
        let customer = &row.customer;
        let held = stack.emulator().find_by_platform_id(&user.id);
        match user.expect {
            Expect::Valid => {
                let Some(onec_id) = customer.onec_id.clone().filter(|_| customer.is_in_sync())
                else {
                    // The message names fields and error classes, never values.
                    report.findings.push(format!(
                        "{}: not synced (status {}{})",
                        user.id,
                        customer.sync_status.map_or("none", |s| s.as_str()),
                        customer
                            .sync_error_message
                            .as_deref()
                            .filter(|m| !m.is_empty())
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ));
                    continue;
                };
                if held.len() != 1 {
                    report.findings.push(format!(
                        "{}: 1C holds {} counterparties for it",
                        user.id,
                        held.len()
                    ));
                    continue;
                }
                let record = &held[0];
                if record.onec_id != onec_id {
                    report
                        .findings
                        .push(format!("{}: onec_id on the row is not 1C's", user.id));
                }
                match mapper.map_platform_to_1c(customer, &Default::default()) {
                    Ok(expected) => {
                        let differing = differing_fields(&expected, record);
                        if differing.is_empty() {
                            if edited.contains_key(user.id.as_str()) {
                                report.profile_edits_in_1c += 1;
                            }
                        } else {
                            report.findings.push(format!(
                                "{}: 1C differs in {}",
                                user.id,
                                differing.join(", ")
                            ));
                        }
                    }
                    Err(err) => report
                        .findings
                        .push(format!("{}: a valid user does not map: {err}", user.id)),
                }
                report.synced += 1;
                report.onec_ids.insert(user.id.clone(), onec_id);
                if dlq_ids.contains_key(user.id.as_str()) {
                    report
                        .findings
                        .push(format!("{}: synced, yet a message is in the DLQ", user.id));
                }
            }
            Expect::Invalid(field) => {
                let message = customer.sync_error_message.clone().unwrap_or_default();
                if customer.sync_status != Some(shared::domain::SyncStatus::Error) {
                    report.findings.push(format!(
                        "{}: invalid {field}, yet status is {}",
                        user.id,
                        customer.sync_status.map_or("none", |s| s.as_str())
                    ));
                } else if !message.contains(field) {
                    report.findings.push(format!(
                        "{}: the error message does not name {field}",
                        user.id
                    ));
                } else {
                    report.errors += 1;
                }
                if !held.is_empty() {
                    report
                        .findings
                        .push(format!("{}: invalid, yet it reached 1C", user.id));
                }
                // At least one letter, each a permanent failure. More than one is at-least-once
                // delivery at work (the full sync enqueued the user while the stream's message
                // was on its way, or SQS delivered twice): equivalent letters, each redrive
                // idempotent.
                let letters: Vec<&DeadLetterSummary> = dead_letters
                    .iter()
                    .filter(|l| l.customer_id == user.id)
                    .collect();
                if letters.is_empty() {
                    report
                        .findings
                        .push(format!("{}: invalid, yet not in the DLQ", user.id));
                } else if letters.iter().any(|l| !l.permanent) {
                    report.findings.push(format!(
                        "{}: invalid, yet dead-lettered as retries exhausted",
                        user.id
                    ));
                }
                report.duplicate_letters += letters.len().saturating_sub(1);
                report
                    .error_rows
                    .push((user.id.clone(), masked_value(user, field), message));
            }
        }
    }
    for letter in dead_letters.iter().filter(|l| !l.permanent) {
        report.findings.push(format!(
            "{}: a {} message exhausted its retries (1C kept failing)",
            letter.customer_id, letter.detail
        ));
    }
    let failed_batches = stack
        .stats()
        .filter_failed_batches
        .load(std::sync::atomic::Ordering::Relaxed);
    if failed_batches > 0 {
        report
            .findings
            .push(format!("{failed_batches} stream batches were skipped"));
    }
    report.onec_side_edits = onec_side_edits;
    report.dead_letters = dead_letters;
    report
}

/// The live one-line summary on stderr.
struct Progress {
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(
        stack: &LocalStack,
        options: &DemoOptions,
        generated: &[GeneratedUser],
        written_at: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
        tracker: Arc<Mutex<Tracker>>,
    ) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let dynamodb = aws_sdk_dynamodb::Client::new(stack.aws());
        let sqs = aws_sdk_sqs::Client::new(stack.aws());
        let table = stack.outputs().users_table.clone();
        let dlq = stack.outputs().dlq_url.clone();
        let stats = stack.stats().clone();
        let total = generated.len();
        let show = options.progress;
        let tty = std::io::stderr().is_terminal();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut last_line = Instant::now() - Duration::from_secs(60);
            loop {
                if let Ok(rows) = scan(&dynamodb, &table).await {
                    let written = written_at
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone();
                    let latency = {
                        let mut t = tracker
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        t.observe(&rows, &written);
                        t.registration()
                    };
                    let synced = rows.values().filter(|r| r.customer.is_in_sync()).count();
                    let errors = rows
                        .values()
                        .filter(|r| {
                            r.customer.sync_status == Some(shared::domain::SyncStatus::Error)
                        })
                        .count();
                    // Retries live in the sync log and the queues, not on the rows.
                    let retries = stats
                        .exporter_retries
                        .load(std::sync::atomic::Ordering::Relaxed);
                    let pending = rows.len().saturating_sub(synced + errors);
                    let dlq_depth = queue_depth(&sqs, &dlq).await;
                    let line = format!(
                        "[{:>5.1}s] written {}/{} | pending {} | synced {} | errors {} | DLQ {} | retries {} | latency p50 {} p95 {}",
                        started.elapsed().as_secs_f64(),
                        rows.len(),
                        total,
                        pending,
                        synced,
                        errors,
                        dlq_depth,
                        retries,
                        secs(latency.percentile(50.0)),
                        secs(latency.percentile(95.0)),
                    );
                    if show {
                        let mut err = std::io::stderr().lock();
                        if tty {
                            let _ = write!(err, "\r\x1b[2K{line}");
                        } else if last_line.elapsed() >= Duration::from_secs(5) {
                            let _ = writeln!(err, "{line}");
                            last_line = Instant::now();
                        }
                        let _ = err.flush();
                    }
                }
                tokio::select! {
                    _ = crate::runner::until_stopped(&mut stopped) => break,
                    _ = tokio::time::sleep(Duration::from_millis(700)) => {}
                }
            }
            if show && tty {
                let _ = writeln!(std::io::stderr());
            }
        });
        Self {
            stop,
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.2}s", d.as_secs_f64()))
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .ok()
        .and_then(|o| o.attributes)
        .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0)
}

/// An AWS CLI command that registers one more user, for `--keep`.
pub fn example_put_item(table: &str, endpoint: &str) -> String {
    let item = json!({
        "id": {"S": "demo-user-1"},
        "email": {"S": "ivan.petrov@example.ru"},
        "phone": {"S": "8 (912) 345-67-89"},
        "first_name": {"S": "Иван"},
        "last_name": {"S": "Петров"},
        "role": {"S": "retail"},
        "version": {"N": "1"}
    });
    format!(
        "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 \\\n  aws dynamodb put-item --endpoint-url {endpoint} --table-name {table} \\\n  --item '{item}'"
    )
}
