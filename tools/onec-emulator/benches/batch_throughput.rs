//! Batch calls to 1C: customers per second through `OneCClient`, one request per customer
//! (`upsert_customer`) versus batches (`upsert_customers`), against the emulator with a fixed
//! latency and a fixed number of concurrent sessions. A measurement, not a test:
//!
//! `cargo bench -p onec-emulator --bench batch_throughput` prints a markdown table (figures go
//! to `docs/benchmarks.md`, "Batch calls to 1C"). Under `cargo test --all-targets` it runs once
//! in a tiny setup, checking only that every customer arrived exactly once.

use futures::future::try_join_all;
use onec_emulator::{spawn, EmulatorConfig, FaultPlan};
use shared::onec::{
    build_client, Counterparty, CounterpartyKind, Credentials, OneCClient, OneCConfig, Transport,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Setup {
    latency_ms: u64,
    sessions: usize,
    /// Customers for the one-request-per-customer run (it is the slow one).
    per_request_customers: usize,
    batched_customers: usize,
    batch_size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    PerRequest,
    Batched,
}

struct Figure {
    customers: usize,
    elapsed: Duration,
    requests: u64,
}

impl Figure {
    fn per_second(&self) -> f64 {
        self.customers as f64 / self.elapsed.as_secs_f64()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|arg| arg == "--bench");
    let setup = if full {
        Setup {
            latency_ms: 50,
            sessions: 8,
            per_request_customers: 400,
            batched_customers: 4000,
            batch_size: 50,
        }
    } else {
        Setup {
            latency_ms: 5,
            sessions: 2,
            per_request_customers: 8,
            batched_customers: 16,
            batch_size: 4,
        }
    };
    println!(
        "1C latency {} ms per request, {} concurrent sessions, batches of {} customers\n",
        setup.latency_ms, setup.sessions, setup.batch_size
    );
    println!("| transport | mode | customers | requests | time, s | customers/s | limit (sessions ÷ latency × customers per round trip) | speed-up |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for transport in [Transport::Json, Transport::OData] {
        // OData needs a lookup and a write per customer (or per batch): two round trips.
        let round_trips = if transport == Transport::OData {
            2.0
        } else {
            1.0
        };
        let per_request_limit =
            setup.sessions as f64 / (setup.latency_ms as f64 / 1000.0) / round_trips;
        let single = run(setup, transport, Mode::PerRequest).await?;
        let batched = run(setup, transport, Mode::Batched).await?;
        let speed_up = batched.per_second() / single.per_second();
        for (mode, figure, limit) in [
            ("one request per customer", &single, per_request_limit),
            (
                "batched",
                &batched,
                per_request_limit * setup.batch_size as f64,
            ),
        ] {
            println!(
                "| {} | {mode} | {} | {} | {:.2} | {:.0} | {:.0} | {} |",
                transport.as_str(),
                figure.customers,
                figure.requests,
                figure.elapsed.as_secs_f64(),
                figure.per_second(),
                limit,
                if mode == "batched" {
                    format!("{speed_up:.1}×")
                } else {
                    "1×".to_owned()
                },
            );
        }
    }
    Ok(())
}

/// Sends `customers` new customers through `sessions` concurrent sessions and times it.
async fn run(setup: Setup, transport: Transport, mode: Mode) -> anyhow::Result<Figure> {
    let emulator = spawn(EmulatorConfig {
        faults: FaultPlan {
            latency_ms: setup.latency_ms,
            ..FaultPlan::default()
        },
        ..EmulatorConfig::default()
    })
    .await?;
    let emulated = emulator.config();
    let mut config = OneCConfig::new(
        emulator.base_url().parse()?,
        transport,
        Credentials::new(emulated.username.clone(), emulated.password.clone()),
        true,
    )?;
    config.request_timeout = Duration::from_secs(60);
    let client = build_client(config)?;
    let n = match mode {
        Mode::PerRequest => setup.per_request_customers,
        Mode::Batched => setup.batched_customers,
    };
    let customers: Vec<Counterparty> = (0..n).map(customer).collect();
    let share = n.div_ceil(setup.sessions);
    let started = Instant::now();
    try_join_all(
        customers
            .chunks(share)
            .map(|share| session(client.clone(), share, mode, setup.batch_size)),
    )
    .await?;
    let elapsed = started.elapsed();
    let stored = emulator.counterparties().len();
    anyhow::ensure!(stored == n, "{stored} counterparties for {n} customers");
    let requests = emulator.stats().requests_total();
    emulator.stop().await?;
    Ok(Figure {
        customers: n,
        elapsed,
        requests,
    })
}

async fn session(
    client: Arc<dyn OneCClient>,
    customers: &[Counterparty],
    mode: Mode,
    batch_size: usize,
) -> anyhow::Result<()> {
    match mode {
        Mode::PerRequest => {
            for cp in customers {
                client.upsert_customer(cp).await?;
            }
        }
        Mode::Batched => {
            for batch in customers.chunks(batch_size) {
                for result in client.upsert_customers(batch).await {
                    result?;
                }
            }
        }
    }
    Ok(())
}

fn customer(i: usize) -> Counterparty {
    Counterparty {
        platform_id: format!("bench-{i:06}"),
        onec_id: None,
        data_version: None,
        kind: CounterpartyKind::Individual,
        name: format!("Покупатель {i}"),
        full_name: format!("Покупатель {i}"),
        first_name: Some("Иван".into()),
        last_name: Some("Иванов".into()),
        contact_person: None,
        inn: None,
        kpp: None,
        email: Some(format!("buyer{i}@example.ru")),
        phone: Some("+79123456789".into()),
        role: Some("Розница".into()),
        status: Some("Активен".into()),
        deletion_mark: false,
        extra: BTreeMap::new(),
    }
}
