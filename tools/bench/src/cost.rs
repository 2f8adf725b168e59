//! Cost per million exports and per full sync of 1M users, from the measured figures
//! (target/bench/*.json) and list prices. Every input is printed next to the result.

use crate::doc;
use serde_json::{json, Value};

/// us-east-1 list prices, from /work/shared/docs/aws-lambda-notes.md §7.3 (compiled
/// 2026-11-28; secondary sources marked there) unless noted.
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    pub lambda_request: f64,
    pub lambda_gb_s_arm64: f64,
    pub sqs_request: f64,
    pub dynamodb_wru: f64,
    pub dynamodb_rru: f64,
    /// Not in the notes: provisioned capacity per WCU-hour and RCU-hour, and 1-year reserved
    /// capacity (per 100 units: $150 / $30 upfront plus $0.0128 / $0.0025 an hour), us-east-1
    /// (AWS pricing page for provisioned capacity, via secondary sources).
    pub wcu_hour: f64,
    pub rcu_hour: f64,
    pub reserved_wcu_hour: f64,
    pub reserved_rcu_hour: f64,
    /// Not in the notes: CloudWatch Logs standard ingestion, $0.50/GB (AWS pricing page).
    pub logs_per_gb: f64,
}

/// The issue's target, dollars per million exports.
const TARGET: f64 = 0.60;

pub const PRICES: Prices = Prices {
    lambda_request: 0.20 / 1e6,
    lambda_gb_s_arm64: 0.000_013_333_4,
    sqs_request: 0.40 / 1e6,
    dynamodb_wru: 0.625 / 1e6,
    dynamodb_rru: 0.125 / 1e6,
    wcu_hour: 0.000_65,
    rcu_hour: 0.000_13,
    // The upfront fee spread over the year's 8,760 hours, per unit.
    reserved_wcu_hour: (150.0 / 8760.0 + 0.0128) / 100.0,
    reserved_rcu_hour: (30.0 / 8760.0 + 0.0025) / 100.0,
    logs_per_gb: 0.50,
};

/// How a table's reads and writes are paid for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Capacity {
    OnDemand,
    /// Provisioned with auto scaling holding consumption at this share of the capacity.
    Provisioned {
        utilisation: f64,
    },
    /// Provisioned and bought as 1-year reserved capacity, at this utilisation.
    Reserved {
        utilisation: f64,
    },
}

impl Capacity {
    /// Dollars per write unit and per read unit consumed.
    fn unit_prices(self, prices: &Prices) -> (f64, f64) {
        // A capacity unit serves one request unit per second: 3,600 an hour at full use.
        let per_unit = |hourly: f64, utilisation: f64| hourly / 3600.0 / utilisation;
        match self {
            Capacity::OnDemand => (prices.dynamodb_wru, prices.dynamodb_rru),
            Capacity::Provisioned { utilisation } => (
                per_unit(prices.wcu_hour, utilisation),
                per_unit(prices.rcu_hour, utilisation),
            ),
            Capacity::Reserved { utilisation } => (
                per_unit(prices.reserved_wcu_hour, utilisation),
                per_unit(prices.reserved_rcu_hour, utilisation),
            ),
        }
    }

    fn describe(self) -> String {
        match self {
            Capacity::OnDemand => "on-demand".to_owned(),
            Capacity::Provisioned { utilisation } => {
                format!("provisioned, auto scaling at {:.0} %", utilisation * 100.0)
            }
            Capacity::Reserved { utilisation } => {
                format!("1-year reserved, {:.0} % used", utilisation * 100.0)
            }
        }
    }
}

/// The capacity of each table an export writes: the platform's `users` table (flag write,
/// write-back, the exporter's read) and the template's sync log (`SyncLogCapacity`).
#[derive(Debug, Clone, Copy)]
pub struct Tables {
    pub users: Capacity,
    pub sync_log: Capacity,
}

impl Tables {
    pub fn all(capacity: Capacity) -> Self {
        Self {
            users: capacity,
            sync_log: capacity,
        }
    }

    fn describe(self) -> String {
        if self.users == self.sync_log {
            self.users.describe()
        } else {
            format!(
                "users {}, sync log {}",
                self.users.describe(),
                self.sync_log.describe()
            )
        }
    }
}

/// What one export costs in each unit, for a traffic shape.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Stream records delivered to the filter per export (registration: the INSERT, the
    /// filter's own flag write, the exporter's write-back — all pass the ESM filter).
    pub filter_records: f64,
    /// Records per filter invocation.
    pub filter_batch: f64,
    pub filter_ms_per_record: f64,
    pub filter_memory_mb: f64,
    /// Messages per exporter invocation.
    pub exporter_batch: f64,
    /// Exporter invocation time per customer.
    pub exporter_ms_per_customer: f64,
    pub exporter_memory_mb: f64,
    /// One cold start every this many invocations, each billed its init time.
    pub invocations_per_cold_start: f64,
    pub filter_init_ms: f64,
    pub exporter_init_ms: f64,
    /// Write units on the users table (flag write, write-back) and on the sync log.
    pub users_wru: f64,
    pub sync_log_wru: f64,
    /// Read units on the users table.
    pub rru: f64,
    pub log_bytes: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Breakdown {
    pub lambda_requests: f64,
    pub lambda_duration: f64,
    pub sqs: f64,
    pub dynamodb: f64,
    pub logs: f64,
}

impl Breakdown {
    pub fn total(&self) -> f64 {
        self.lambda_requests + self.lambda_duration + self.sqs + self.dynamodb + self.logs
    }
}

/// Lambda bills whole milliseconds per invocation.
fn billed_ms(ms: f64) -> f64 {
    ms.max(0.0).ceil().max(1.0)
}

/// Cost of `exports` exports of this shape.
pub fn cost(shape: &Shape, prices: &Prices, tables: Tables, exports: f64) -> Breakdown {
    let filter_invocations = exports * shape.filter_records / shape.filter_batch;
    let exporter_invocations = exports / shape.exporter_batch;
    let gb = |mb: f64| mb / 1024.0;
    let filter_gb_s =
        filter_invocations * billed_ms(shape.filter_ms_per_record * shape.filter_batch) / 1000.0
            * gb(shape.filter_memory_mb);
    let exporter_gb_s = exporter_invocations
        * billed_ms(shape.exporter_ms_per_customer * shape.exporter_batch)
        / 1000.0
        * gb(shape.exporter_memory_mb);
    let init_gb_s = (filter_invocations * shape.filter_init_ms * gb(shape.filter_memory_mb)
        + exporter_invocations * shape.exporter_init_ms * gb(shape.exporter_memory_mb))
        / 1000.0
        / shape.invocations_per_cold_start;
    // SendMessageBatch (≤ 10), the mapping's ReceiveMessage and DeleteMessageBatch, per batch
    // of the exporter; ChangeMessageVisibility only on failures (none in this shape).
    let sqs_requests = exports / shape.exporter_batch.min(10.0) * 3.0;
    Breakdown {
        lambda_requests: (filter_invocations + exporter_invocations) * prices.lambda_request,
        lambda_duration: (filter_gb_s + exporter_gb_s + init_gb_s) * prices.lambda_gb_s_arm64,
        sqs: sqs_requests * prices.sqs_request,
        dynamodb: {
            let (users_wru, users_rru) = tables.users.unit_prices(prices);
            let (log_wru, _) = tables.sync_log.unit_prices(prices);
            exports
                * (shape.users_wru * users_wru
                    + shape.rru * users_rru
                    + shape.sync_log_wru * log_wru)
        },
        logs: exports * shape.log_bytes / 1e9 * prices.logs_per_gb,
    }
}

fn figure(value: &Option<Value>, path: &[&str]) -> Option<f64> {
    let mut v = value.as_ref()?;
    for key in path {
        v = v.get(*key)?;
    }
    v.as_f64()
}

/// Bytes a function logged per invocation in the cold start runs (init logs included).
fn log_bytes_per_invocation(function: &str) -> Option<f64> {
    let dir = doc::workspace_root().join("target/bench/logs");
    let mut total = 0u64;
    let mut files = 0u64;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{function}-")) {
            total += entry.metadata().ok()?.len();
            files += 1;
        }
    }
    // Two invocations per cold start run.
    (files > 0).then(|| total as f64 / (files as f64 * 2.0))
}

pub fn run() -> anyhow::Result<()> {
    let cold = doc::load_figures("cold_start");
    let throughput = doc::load_figures("throughput");
    let mut assumed: Vec<String> = Vec::new();
    let mut take = |what: &str, value: Option<f64>, fallback: f64| -> f64 {
        value.unwrap_or_else(|| {
            assumed.push(format!("{what} = {fallback} (not measured in this run)"));
            fallback
        })
    };

    // The filter's warm invocation handled the 5 records of events/dynamodb-batch.json.
    let filter_ms_per_record = take(
        "filter ms/record",
        figure(&cold, &["stream-filter", "warm_invocation_ms"]).map(|ms| ms / 5.0),
        5.0,
    );
    let filter_init_ms = take(
        "filter init ms",
        figure(&cold, &["stream-filter", "init_ms_median"]),
        20.0,
    );
    let exporter_init_ms = take(
        "exporter init ms",
        figure(&cold, &["exporter", "init_ms_median"]),
        20.0,
    );
    // The fullest case: one wave per batch, so per-customer time = (latency + overhead) / 10.
    let best = throughput.as_ref().and_then(|t| {
        t.as_array()?
            .iter()
            .filter(|c| {
                c["latency_ms"].as_f64() == Some(200.0) && c["aws"].as_str() != Some("moto")
            })
            .max_by(|a, b| {
                a["concurrency"]
                    .as_f64()
                    .unwrap_or(0.0)
                    .total_cmp(&b["concurrency"].as_f64().unwrap_or(0.0))
            })
            .cloned()
    });
    let latency_ms = 200.0;
    let batched_ms_per_customer = take(
        "exporter ms/customer (batch 10)",
        best.as_ref()
            .and_then(|c| c["invocation_ms_per_customer"].as_f64()),
        25.0,
    );
    let concurrency = best
        .as_ref()
        .and_then(|c| c["concurrency"].as_f64())
        .unwrap_or(10.0);
    let waves = (10.0 / concurrency).ceil();
    let overhead_ms = (batched_ms_per_customer * 10.0 / waves - latency_ms).max(0.0);
    let emf_bytes = best
        .as_ref()
        .and_then(|c| c["emf_bytes_per_customer"].as_f64());
    let filter_log = take(
        "filter log bytes/invocation",
        log_bytes_per_invocation("stream-filter"),
        1500.0,
    );
    let exporter_log = take(
        "exporter log bytes/invocation",
        log_bytes_per_invocation("exporter"),
        4000.0,
    );

    let base = Shape {
        filter_records: 3.0,
        filter_batch: 100.0,
        filter_ms_per_record,
        filter_memory_mb: 256.0,
        exporter_batch: 10.0,
        exporter_ms_per_customer: batched_ms_per_customer,
        exporter_memory_mb: 256.0,
        invocations_per_cold_start: 1000.0,
        filter_init_ms,
        exporter_init_ms,
        // Flag write and write-back (rows ≤ 1 KB), the sync log row; one consistent read.
        users_wru: 2.0,
        sync_log_wru: 1.0,
        rru: 1.0,
        log_bytes: 3.0 * filter_log / 100.0 + exporter_log / 10.0,
    };
    let trickle = Shape {
        filter_batch: 1.0,
        exporter_batch: 1.0,
        exporter_ms_per_customer: latency_ms + overhead_ms,
        // The exporter logs per customer; the filter per invocation.
        log_bytes: 3.0 * filter_log + exporter_log / 10.0,
        ..base
    };
    // Story AC 2: the platform itself sets `needs_1c_export` when it writes a registration, so
    // the filter has no flag to write (and no stream record of its own write to ignore).
    let platform_flags = Shape {
        filter_records: 2.0,
        users_wru: 1.0,
        log_bytes: 2.0 * filter_log / 100.0 + exporter_log / 10.0,
        ..base
    };
    let full_sync = Shape {
        // No registration flag: the write-back's record is the only one the filter sees.
        filter_records: 1.0,
        users_wru: 1.0,
        ..base
    };

    let million = 1e6;
    // Auto scaling's usual target; reserved capacity is bought for the steady base.
    let provisioned = Capacity::Provisioned { utilisation: 0.7 };
    let reserved = Capacity::Reserved { utilisation: 0.7 };
    let on_demand = Tables::all(Capacity::OnDemand);
    // The template's option: the platform's users table as it is, the sync log provisioned.
    let sync_log_provisioned = Tables {
        users: Capacity::OnDemand,
        sync_log: provisioned,
    };
    let rows = [
        (
            "Batched, the filter sets the flag",
            on_demand,
            cost(&base, &PRICES, on_demand, million),
        ),
        (
            "Batched, the platform sets the flag (story AC 2)",
            on_demand,
            cost(&platform_flags, &PRICES, on_demand, million),
        ),
        (
            "Batched, the platform sets the flag; `SyncLogCapacity=provisioned`",
            sync_log_provisioned,
            cost(&platform_flags, &PRICES, sync_log_provisioned, million),
        ),
        (
            "Batched, the platform sets the flag",
            Tables::all(provisioned),
            cost(&platform_flags, &PRICES, Tables::all(provisioned), million),
        ),
        (
            "Batched, the platform sets the flag",
            Tables::all(reserved),
            cost(&platform_flags, &PRICES, Tables::all(reserved), million),
        ),
        (
            "Trickle (every record and message alone), the filter sets the flag",
            on_demand,
            cost(&trickle, &PRICES, on_demand, million),
        ),
    ];
    let mut table = String::from(
        "| Traffic shape | DynamoDB capacity | Lambda requests | Lambda GB-s (arm64) | SQS | DynamoDB | Logs | **Total per 1M exports** |\n|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, tables, b) in &rows {
        table.push_str(&format!(
            "| {name} | {} | ${:.3} | ${:.3} | ${:.3} | ${:.3} | ${:.3} | **${:.2}** {} |\n",
            tables.describe(),
            b.lambda_requests,
            b.lambda_duration,
            b.sqs,
            b.dynamodb,
            b.logs,
            b.total(),
            if b.total() <= TARGET { "✅" } else { "❌" }
        ));
    }
    let (provisioned_wru, provisioned_rru) = provisioned.unit_prices(&PRICES);
    let (reserved_wru, reserved_rru) = reserved.unit_prices(&PRICES);
    let meeting: Vec<String> = rows
        .iter()
        .filter(|(_, _, b)| b.total() <= TARGET)
        .map(|(name, tables, b)| format!("{name}, {} (${:.2})", tables.describe(), b.total()))
        .collect();
    let verdict = if meeting.is_empty() {
        format!("**The ≤ ${TARGET:.2} target is not met by any row.**")
    } else {
        format!(
            "**The ≤ ${TARGET:.2} target is met only by: {}.**",
            meeting.join("; ")
        )
    };
    let sync = cost(&full_sync, &PRICES, on_demand, million);
    // Scan of 1M rows of ~0.6 KB, eventually consistent: 0.5 RRU per 4 KB.
    let scan_rru = million * 0.6 / 4.0 * 0.5;
    let scan_cost = scan_rru * PRICES.dynamodb_rru;
    // The full-sync function itself: its largest measured run scaled linearly to 1M users at
    // 512 MB (moto-bound, so an upper bound), one invocation per ~14 minutes.
    let sync_seconds = doc::load_figures("full_sync").and_then(|f| {
        let largest = f.as_array()?.last()?.clone();
        Some(largest["seconds"].as_f64()? * 1e6 / largest["users"].as_f64()?)
    });
    let sync_seconds = take("full-sync seconds per 1M users", sync_seconds, 1200.0);
    let sync_fn_cost = sync_seconds * 0.5 * PRICES.lambda_gb_s_arm64
        + (sync_seconds / 840.0).ceil() * PRICES.lambda_request;
    let sync_total = sync.total() + scan_cost + sync_fn_cost;

    doc::save_figures(
        "cost",
        &json!({
            "batched_per_million": rows[0].2.total(),
            "batched_platform_flag_per_million": rows[1].2.total(),
            "batched_platform_flag_sync_log_provisioned_per_million": rows[2].2.total(),
            "batched_platform_flag_reserved_per_million": rows[4].2.total(),
            "trickle_per_million": rows[5].2.total(),
            "full_sync_1m": sync_total,
        }),
    )?;
    let body = format!(
        "### Cost model (us-east-1 list prices, free tiers ignored)\n\n\
         Computed by `onec-bench cost` from this run's figures. Per export of a registration:\n\n\
         ```text\n\
         Lambda requests  = (R·N/Bf + N/Be) × $0.20/1M\n\
         Lambda GB-s      = (N·R/Bf × ⌈tf·Bf⌉ ms × Mf + N/Be × ⌈te·Be⌉ ms × Me + init ms × invocations / {:.0}) × $0.0000133334 per GB-s (arm64)\n\
         SQS              = N/Be × 3 (SendMessageBatch, ReceiveMessage, DeleteMessageBatch) × $0.40/1M\n\
         DynamoDB         = N × (Wu WRU × p_w,users + 1 WRU × p_w,log + 1 RRU × p_r,users); on demand p_w = $0.625/1M, p_r = $0.125/1M; provisioned p = price per unit-hour ÷ (3600 × utilisation)\n\
         Stream reads     = free (GetRecords by a Lambda trigger, DynamoDB dev guide)\n\
         Logs             = N × log bytes per export × $0.50/GB\n\
         ```\n\n\
         Inputs: R = 3 stream records per registration reach the filter when the filter sets \
         the flag (the INSERT, its own flag write, the exporter's write-back: all pass the ESM \
         FilterCriteria and are ignored by the function), 2 when the platform writes the \
         registration already flagged, as story AC 2 has it; tf = {filter_ms_per_record:.2} ms per record (the filter's warm \
         invocation over the 5-record sample ÷ 5, flag writes and SQS sends to moto included); \
         te = {batched_ms_per_customer:.1} ms per customer in a batch of 10 at 1C latency \
         {latency_ms:.0} ms (throughput bench, one wave per batch), {:.0} ms alone (latency + \
         {overhead_ms:.0} ms of AWS calls); Mf = Me = 256 MB (template); init {filter_init_ms:.1} / \
         {exporter_init_ms:.1} ms, one cold start per {:.0} invocations; Wu = 2 WRU on the users table \
         (the filter's flag write and the write-back, each ≤ 1 KB) or 1 when the platform sets \
         the flag, plus 1 WRU for the sync log row; RRU: the exporter's consistent read; log bytes: {filter_log:.0} B per filter invocation, {exporter_log:.0} B per \
         exporter invocation (everything the functions printed in the cold start runs, JSON \
         logs and EMF; EMF alone {} B per customer).\n\n{table}\n\
         Prices: Lambda $0.20/1M requests and $0.0000133334/GB-s arm64, SQS $0.40/1M, DynamoDB \
         on-demand WRU $0.625/1M and RRU $0.125/1M, stream reads by Lambda free — \
         /work/shared/docs/aws-lambda-notes.md §7.3, compiled 2026-11-28 (AWS renders its \
         pricing pages client-side; the figures are from the secondary sources named there). \
         CloudWatch Logs ingestion $0.50/GB is not in those notes (standard class, AWS pricing \
         page). Not per export: the ESM's idle long polls (≈ 5 pollers × 3/min per queue, \
         ≈ $0.26 per queue-month), Secrets Manager reads (one per cold start), and custom metrics \
         per unique dimension set.\n\n\
         Provisioned capacity $0.00065 per WCU-hour and $0.00013 per RCU-hour; 1-year reserved \
         capacity $150 upfront + $0.0128/hour per 100 WCU and $30 + $0.0025/hour per 100 RCU \
         (us-east-1; not in the notes: AWS's provisioned pricing page, via secondary sources). \
         Per write consumed that is ${:.3}/1M provisioned and ${:.3}/1M reserved at 70 % \
         utilisation (reads ${:.3} and ${:.3}/1M), against $0.625/1M on demand.\n\n\
         {verdict} Every export writes the user row back (the story's `onec_id`) and appends \
         its sync log row (the story's `CustomerSyncLog`); on on-demand DynamoDB those two \
         writes alone are ${:.2} per million, and the write-back with the read before it \
         ${:.2} — above the target whatever the rest costs, so on-demand capacity for the \
         `users` table cannot meet it. The `users` table's capacity mode is the \
         platform's choice; of the template's tables only the sync log is written per export, \
         on demand by default or provisioned with auto scaling (`SyncLogCapacity`, \
         docs/operations.md), which is the third row. The reserved row is what a steady, \
         high-volume platform could reach with both tables on reserved capacity, not what the \
         template deploys. Lambda is small once batched: 1C's latency sets the exporter's bill \
         (Lambda bills the wait), and batches of 10 at a concurrency that divides 10 share one \
         wait among ten customers; alone, each customer pays a whole round trip and every \
         stream record and message a request.\n\n\
         **Full sync of 1M users** (all exported through the bulk queue in batches of 10; the \
         write-back's stream record is the filter's only one; Scan of 1M rows of ~0.6 KB at \
         0.5 RRU per 4 KB = {scan_rru:.0} RRU; the full-sync function {sync_seconds:.0} s at \
         512 MB, its largest measured run scaled linearly — moto-bound, an upper bound): **${sync_total:.2}** (exports ${:.2} \
         + scan ${scan_cost:.3} + full-sync function ${sync_fn_cost:.3}).\n{}",
        base.invocations_per_cold_start,
        trickle.exporter_ms_per_customer,
        base.invocations_per_cold_start,
        emf_bytes.map_or_else(|| "not measured".to_owned(), |b| format!("{b:.0}")),
        million * provisioned_wru,
        million * reserved_wru,
        million * provisioned_rru,
        million * reserved_rru,
        2.0 * million * PRICES.dynamodb_wru,
        million * (PRICES.dynamodb_wru + PRICES.dynamodb_rru),
        sync.total(),
        if assumed.is_empty() {
            String::new()
        } else {
            format!("\nAssumed (run the benchmarks to measure): {}.\n", assumed.join("; "))
        }
    );
    doc::write_section("cost", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            filter_records: 1.0,
            filter_batch: 1.0,
            filter_ms_per_record: 0.0,
            filter_memory_mb: 1024.0,
            exporter_batch: 1.0,
            exporter_ms_per_customer: 1000.0,
            exporter_memory_mb: 1024.0,
            invocations_per_cold_start: f64::INFINITY,
            filter_init_ms: 0.0,
            exporter_init_ms: 0.0,
            users_wru: 0.0,
            sync_log_wru: 0.0,
            rru: 0.0,
            log_bytes: 0.0,
        }
    }

    #[test]
    fn one_second_at_one_gigabyte_costs_one_gb_second_plus_a_millisecond_of_filter() {
        // Given one export whose exporter runs 1 s at 1 GB and whose filter runs under 1 ms
        let b = cost(&shape(), &PRICES, Tables::all(Capacity::OnDemand), 1.0);
        // Then the filter is billed its minimum of 1 ms, the exporter 1 GB-s
        let expected = (1.0 + 0.001) * PRICES.lambda_gb_s_arm64;
        assert!((b.lambda_duration - expected).abs() < 1e-15);
        assert!((b.lambda_requests - 2.0 * PRICES.lambda_request).abs() < 1e-15);
        // And the SQS calls are send, receive and delete
        assert!((b.sqs - 3.0 * PRICES.sqs_request).abs() < 1e-15);
    }

    #[test]
    fn batching_divides_requests_but_not_the_per_export_table_writes() {
        // Given the same exports alone and in batches of ten
        let alone = Shape {
            users_wru: 2.0,
            sync_log_wru: 1.0,
            rru: 1.0,
            ..shape()
        };
        let batched = Shape {
            exporter_batch: 10.0,
            filter_batch: 10.0,
            ..alone
        };
        let (a, b) = (
            cost(&alone, &PRICES, Tables::all(Capacity::OnDemand), 1e6),
            cost(&batched, &PRICES, Tables::all(Capacity::OnDemand), 1e6),
        );
        // Then requests drop tenfold and DynamoDB stays
        assert!((a.lambda_requests / b.lambda_requests - 10.0).abs() < 1e-9);
        assert!((a.sqs / b.sqs - 10.0).abs() < 1e-9);
        assert_eq!(a.dynamodb, b.dynamodb);
    }

    #[test]
    fn capacity_used_in_full_costs_its_hourly_price_spread_over_the_hours_requests() {
        // Given provisioned capacity used in full and at 70 %
        let (full_wru, full_rru) = Capacity::Provisioned { utilisation: 1.0 }.unit_prices(&PRICES);
        let (wru, _) = Capacity::Provisioned { utilisation: 0.7 }.unit_prices(&PRICES);
        // Then a write unit consumed costs the WCU-hour over 3,600 writes, more when idle part
        // of the time
        assert!((full_wru - 0.00065 / 3600.0).abs() < 1e-15);
        assert!((full_rru - 0.00013 / 3600.0).abs() < 1e-15);
        assert!((wru - full_wru / 0.7).abs() < 1e-15);
        // And reserved capacity is cheaper than provisioned, which is cheaper than on-demand
        let (reserved_wru, _) = Capacity::Reserved { utilisation: 0.7 }.unit_prices(&PRICES);
        assert!(reserved_wru < wru && wru < PRICES.dynamodb_wru);
    }

    #[test]
    fn each_tables_writes_are_priced_at_that_tables_capacity() {
        // Given one export writing the users row once, the sync log once, and reading once
        let export = Shape {
            users_wru: 1.0,
            sync_log_wru: 1.0,
            rru: 1.0,
            ..shape()
        };
        let provisioned = Capacity::Provisioned { utilisation: 0.7 };
        let (log_wru, _) = provisioned.unit_prices(&PRICES);
        // When only the sync log is provisioned
        let split = Tables {
            users: Capacity::OnDemand,
            sync_log: provisioned,
        };
        let b = cost(&export, &PRICES, split, 1.0);
        // Then the users table is billed on demand and the sync log row at provisioned prices
        let expected = PRICES.dynamodb_wru + PRICES.dynamodb_rru + log_wru;
        assert!((b.dynamodb - expected).abs() < 1e-15);
        // And the split lies between all on-demand and all provisioned
        let all_on_demand = cost(&export, &PRICES, Tables::all(Capacity::OnDemand), 1.0);
        let all_provisioned = cost(&export, &PRICES, Tables::all(provisioned), 1.0);
        assert!(all_provisioned.dynamodb < b.dynamodb && b.dynamodb < all_on_demand.dynamodb);
        assert_eq!(
            split.describe(),
            "users on-demand, sync log provisioned, auto scaling at 70 %"
        );
    }
}
