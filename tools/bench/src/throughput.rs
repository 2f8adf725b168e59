//! Exporter throughput against the 1C emulator with a fixed latency: customers/s through the
//! production handler and wiring (row read, mapping, one 1C upsert, conditional write-back and
//! sync log row in moto) versus the limit `sessions ÷ latency`.
//!
//! Sessions = concurrent invocations (the event source mapping's MaximumConcurrency) × the
//! handler's EXPORT_CONCURRENCY: at most that many 1C requests are in flight, which is what a
//! 1C licence's session count bounds.

use crate::doc;
use crate::stack::{sqs_event, LocalStack};
use anyhow::Context as _;
use aws_lambda_events::event::sqs::SqsEvent;
use exporter::config::{CredentialsSource, ExporterConfig, OneCSettings};
use exporter::wiring::build_deps;
use exporter::Jitter;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use async_trait::async_trait;
use shared::export::CustomerExportService;
use shared::mapping::CustomerDataMapper;
use shared::onec::{build_client, Credentials, OneCConfig, Transport};
use shared::ports::{
    CustomerStore, ExportFailure, ExportSuccess, StoreError, StoredCustomer, SyncLog, WriteOutcome,
};
use shared::sync_log::SyncLogEntry;
use shared::testing::{FakeCustomerStore, FakeSyncLog};

/// An in-memory port whose every call takes `pause`, like a network round trip.
struct Slow<T> {
    inner: T,
    pause: Duration,
}

#[async_trait]
impl<T: CustomerStore> CustomerStore for Slow<T> {
    async fn load(&self, id: &str) -> Result<Option<StoredCustomer>, StoreError> {
        tokio::time::sleep(self.pause).await;
        self.inner.load(id).await
    }

    async fn mark_pending(&self, id: &str, version: u64) -> Result<WriteOutcome, StoreError> {
        tokio::time::sleep(self.pause).await;
        self.inner.mark_pending(id, version).await
    }

    async fn record_export_success(
        &self,
        id: &str,
        success: &ExportSuccess,
    ) -> Result<WriteOutcome, StoreError> {
        tokio::time::sleep(self.pause).await;
        self.inner.record_export_success(id, success).await
    }

    async fn record_export_failure(
        &self,
        id: &str,
        failure: &ExportFailure,
    ) -> Result<WriteOutcome, StoreError> {
        tokio::time::sleep(self.pause).await;
        self.inner.record_export_failure(id, failure).await
    }

    async fn reopen_export(
        &self,
        id: &str,
        recorded_version: u64,
        held_version: u64,
    ) -> Result<WriteOutcome, StoreError> {
        tokio::time::sleep(self.pause).await;
        self.inner
            .reopen_export(id, recorded_version, held_version)
            .await
    }
}

#[async_trait]
impl<T: SyncLog> SyncLog for Slow<T> {
    async fn append(&self, entry: SyncLogEntry) -> Result<(), StoreError> {
        tokio::time::sleep(self.pause).await;
        self.inner.append(entry).await
    }
}

const TARGET: f64 = 0.90;
/// Modelled DynamoDB latency per call (GetItem, UpdateItem, PutItem).
const DYNAMODB_CALL_MS: u64 = 5;
const BATCH_SIZE: usize = 10;

/// What answers the exporter's DynamoDB calls.
#[derive(Clone, Copy, PartialEq)]
enum Aws {
    /// moto: one Python process, so concurrent calls queue behind each other.
    Moto,
    /// In-memory rows and sync log, each call taking this long, in parallel like DynamoDB.
    Modelled { call_ms: u64 },
}

impl Aws {
    fn describe(self) -> String {
        match self {
            Aws::Moto => "moto".to_owned(),
            Aws::Modelled { call_ms } => format!("{call_ms} ms/call"),
        }
    }
}

struct Case {
    aws: Aws,
    latency_ms: u64,
    invocations: usize,
    concurrency: usize,
    customers: usize,
}

pub async fn run() -> anyhow::Result<()> {
    let modelled = Aws::Modelled {
        call_ms: DYNAMODB_CALL_MS,
    };
    let case = |aws, latency_ms, concurrency, customers| Case {
        aws,
        latency_ms,
        invocations: 2,
        concurrency,
        customers,
    };
    let cases = [
        // The template's defaults: BulkMaxConcurrency 2, ExportConcurrency 4.
        case(modelled, 200, 4, 240),
        // Concurrencies that divide the batch size.
        case(modelled, 200, 5, 300),
        case(modelled, 200, 10, 400),
        // A fast 1C: the AWS calls' share shows.
        case(modelled, 50, 5, 400),
        // Through moto: its single process serialises the AWS calls.
        case(Aws::Moto, 200, 5, 300),
        case(Aws::Moto, 200, 10, 400),
    ];
    let mut table = String::from(
        "| AWS side | 1C latency | Invocations × EXPORT_CONCURRENCY = sessions | Customers | Limit (sessions ÷ latency) | Measured | Share of limit |\n|---|---:|---|---:|---:|---:|---:|\n",
    );
    let mut figures = Vec::new();
    for case in &cases {
        let m = measure(case)
            .await
            .with_context(|| format!("throughput at {} ms", case.latency_ms))?;
        let rate = m.rate;
        let sessions = case.invocations * case.concurrency;
        let limit = sessions as f64 / (case.latency_ms as f64 / 1000.0);
        let share = rate / limit;
        table.push_str(&format!(
            "| {} | {} ms | {} × {} = {sessions} | {} | {limit:.0}/s | {rate:.1}/s ({:.1} s) | {:.0} % {} |\n",
            case.aws.describe(),
            case.latency_ms,
            case.invocations,
            case.concurrency,
            case.customers,
            m.elapsed.as_secs_f64(),
            share * 100.0,
            if share >= TARGET { "✅" } else { "❌" }
        ));
        figures.push(json!({
            "aws": case.aws.describe(),
            "latency_ms": case.latency_ms,
            "invocations": case.invocations,
            "concurrency": case.concurrency,
            "sessions": sessions,
            "customers": case.customers,
            "customers_per_s": rate,
            "limit_per_s": limit,
            "share": share,
            "invocation_ms_per_customer": m.invocation_ms_per_customer,
            "emf_bytes_per_customer": m.emf_bytes_per_customer,
        }));
    }
    doc::save_figures("throughput", &Value::Array(figures))?;
    let body = format!(
        "### Exporter throughput, one customer per 1C request (target ≥ {:.0} % of sessions ÷ latency)\n\n\
         The production handler (`exporter::handle`) in this process, fed SQS events of \
         {BATCH_SIZE} registrations by as many concurrent \"invocations\" as the event source \
         mapping allows, against the 1C emulator over HTTP with a fixed latency per request \
         (JSON transport: one upsert per customer). Every customer is read, mapped, exported, \
         written back and logged; the emulator holds exactly one counterparty per customer \
         afterwards. The DynamoDB side is either moto (production wiring, `wiring::build_deps`) \
         or the in-memory store and sync log with {DYNAMODB_CALL_MS} ms per call (an assumed \
         single-digit DynamoDB latency): moto is one Python process on the same two cores, so \
         its calls queue behind each other and its rows measure moto, not the exporter.\n\n{table}\n\
         A batch is finished before the invocation takes the next one, so a concurrency that \
         does not divide the batch size leaves sessions idle in every batch's last wave \
         (10 messages at concurrency 4 take three waves of 4 slots: at most 10/12 = 83 %). \
         Choose `ExportConcurrency` as a divisor of the batch size (5 or 10) to reach the \
         limit. A 1C session is held for the 1C call alone: while some exports are in 1C, \
         others read their rows or write their results back (up to twice `ExportConcurrency` \
         messages in flight). What remains is each batch's edges: the first wave waits for its \
         rows and the invocation for the last wave's write-backs and sync log rows — a few ms \
         each on DynamoDB, more on moto, and more of a short 1C call than of a long one.\n",
        TARGET * 100.0
    );
    doc::write_section("throughput", &body)
}

struct Measured {
    rate: f64,
    elapsed: Duration,
    /// Invocation time ÷ customers: what Lambda bills per customer.
    invocation_ms_per_customer: f64,
    emf_bytes_per_customer: f64,
}

async fn measure(case: &Case) -> anyhow::Result<Measured> {
    let stack = LocalStack::start("throughput", case.latency_ms).await?;
    let config = ExporterConfig {
        users_table: stack.outputs.users_table.clone(),
        sync_log_table: stack.outputs.sync_log_table.clone(),
        priority_queue_url: stack.outputs.priority_queue_url.clone(),
        bulk_queue_url: stack.outputs.bulk_queue_url.clone(),
        dlq_url: stack.outputs.dlq_url.clone(),
        onec: OneCSettings {
            base_url: stack.emulator.base_url(),
            transport: "json".into(),
            hs_root: stack.emulator.config().hs_root.clone(),
            allow_insecure_http: true,
            credentials: CredentialsSource::Secret {
                secret_id: stack.secret_arn.clone(),
            },
            mapping_file: None,
            request_timeout: None,
        },
        max_attempts: 5,
        concurrency: case.concurrency,
        backoff_base: Duration::from_secs(1),
        backoff_cap: Duration::from_secs(2),
        breaker_threshold: 5,
        remove_policy: shared::filter::RemovePolicy::Deactivate,
        metrics_namespace: "OnecSyncBench".into(),
        function_name: "exporter".into(),
        sync_log_retention_days: 30,
    };
    let mut deps = build_deps(&config, &stack.aws)
        .await
        .context("wiring the exporter")?;
    deps.settings.jitter = Jitter::Fixed(0.0);
    let ids: Vec<String> = (0..case.customers).map(|i| format!("tp-{i}")).collect();
    match case.aws {
        Aws::Moto => {
            stack.put_customers("tp", case.customers).await?;
        }
        Aws::Modelled { call_ms } => {
            let store = FakeCustomerStore::new();
            for id in &ids {
                store.insert_row(crate::stack::row(id));
            }
            let pause = Duration::from_millis(call_ms);
            let login = stack.emulator.config();
            let onec = build_client(OneCConfig::new(
                stack.emulator.base_url().parse()?,
                Transport::Json,
                Credentials::new(login.username.clone(), login.password.clone()),
                true,
            )?)?;
            deps.service = CustomerExportService::new(
                Arc::new(Slow {
                    inner: store,
                    pause,
                }),
                Arc::new(Slow {
                    inner: FakeSyncLog::new(),
                    pause,
                }),
                onec,
                CustomerDataMapper::default(),
                deps.metrics.clone(),
                "json",
            );
        }
    }
    let deps = Arc::new(deps);

    let mut events = Vec::new();
    for chunk in ids.chunks(BATCH_SIZE) {
        let event: SqsEvent =
            serde_json::from_value(sqs_event(&stack.outputs.bulk_queue_arn, chunk))?;
        events.push(event);
    }
    let queue = Arc::new(Mutex::new(events));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..case.invocations {
        let queue = queue.clone();
        let deps = deps.clone();
        workers.push(tokio::spawn(async move {
            let mut billed = Duration::ZERO;
            let mut emf_bytes = 0usize;
            loop {
                let Some(event) = queue.lock().await.pop() else {
                    return Ok::<_, anyhow::Error>((billed, emf_bytes));
                };
                let invoked = Instant::now();
                let response = exporter::handle(&deps, event)
                    .await
                    .map_err(|e| anyhow::anyhow!("the handler failed: {e}"))?;
                billed += invoked.elapsed();
                if !response.batch_item_failures.is_empty() {
                    anyhow::bail!("{} messages failed", response.batch_item_failures.len());
                }
                // EMF lines go to stdout (and CloudWatch Logs) on Lambda; counted for the cost.
                let mut emf = Vec::new();
                deps.metrics.flush(&mut emf)?;
                emf_bytes += emf.len();
            }
        }));
    }
    let mut billed = Duration::ZERO;
    let mut emf_bytes = 0usize;
    for worker in workers {
        let (b, e) = worker.await??;
        billed += b;
        emf_bytes += e;
    }
    let elapsed = started.elapsed();
    let exported = stack
        .emulator
        .counterparties()
        .iter()
        .filter(|c| {
            c.fields
                .platform_id
                .as_deref()
                .is_some_and(|p| p.starts_with("tp-"))
        })
        .count();
    anyhow::ensure!(
        exported == case.customers,
        "the emulator holds {exported} counterparties for {} customers",
        case.customers
    );
    Ok(Measured {
        rate: case.customers as f64 / elapsed.as_secs_f64(),
        elapsed,
        invocation_ms_per_customer: billed.as_secs_f64() * 1e3 / case.customers as f64,
        emf_bytes_per_customer: emf_bytes as f64 / case.customers as f64,
    })
}
