//! `sync_customers_with_1c`: the operator's command for full syncs and the DLQ.
//!
//! Works against whatever the standard AWS environment points at: a profile and region, or the
//! local stack with `AWS_ENDPOINT_URL`. Table and queue names come from the same variables the
//! functions read (or the flags).

use anyhow::{bail, Context as _};
use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use full_sync::adapters::DynamoDbUserScanner;
use full_sync::config::FullSyncConfig;
use full_sync::ports::Unlimited;
use full_sync::status::progress;
use full_sync::wiring::{build_deps, runs};
use full_sync::{FullSyncInput, RunReport, DEFAULT_CHUNK_SIZE};
use indicatif::{ProgressBar, ProgressStyle};
use shared::redrive::{redrive, RedriveOptions, RedriveStrategy};
use shared::sync_run::{SyncDirection, SyncRun, SyncRuns};
use std::time::Duration;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

#[derive(Debug, Parser)]
#[command(
    name = "sync_customers_with_1c",
    about = "Full sync of platform customers with 1C: run, follow, cancel, resume; redrive the export DLQ"
)]
struct Cli {
    /// The sync-runs table.
    #[arg(long, env = "SYNC_RUNS_TABLE", global = true)]
    runs_table: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a full sync.
    Run {
        #[arg(long, value_parser = parse_direction)]
        direction: SyncDirection,
        #[arg(long, default_value_t = DEFAULT_CHUNK_SIZE)]
        chunk_size: u32,
        /// Parallel scan segments.
        #[arg(long, default_value_t = 1)]
        segments: u32,
        #[command(flatten)]
        place: Place,
    },
    /// Progress of a run (default: the active one, else the last one).
    Status {
        run: Option<String>,
        /// The users table, for the percentage (its approximate item count).
        #[arg(long, env = "USERS_TABLE")]
        users_table: Option<String>,
    },
    /// Stop a run at its next chunk boundary.
    Cancel { run: String },
    /// Continue a failed or cancelled run from its cursor.
    Resume {
        run: String,
        #[command(flatten)]
        place: Place,
    },
    /// Move the export DLQ's messages back to their source queues.
    Redrive {
        #[arg(long, env = "DLQ_URL")]
        dlq_url: String,
        /// List what would move; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Move at most this many messages.
        #[arg(long)]
        limit: Option<u64>,
    },
}

/// In this process (default) or in the deployed function.
#[derive(Debug, Args)]
struct Place {
    /// Run in this process with a progress line (needs the function's variables: USERS_TABLE,
    /// SYNC_LOG_TABLE, BULK_QUEUE_URL, ONEC_*).
    #[arg(long, conflicts_with = "invoke")]
    local: bool,
    /// Start the deployed function asynchronously and return.
    #[arg(long)]
    invoke: bool,
    /// The deployed function (`<stack>-full-sync`).
    #[arg(
        long,
        env = "FULL_SYNC_FUNCTION",
        default_value = "onec-sync-full-sync"
    )]
    function_name: String,
}

fn parse_direction(raw: &str) -> Result<SyncDirection, String> {
    raw.parse()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let directives = std::env::var("RUST_LOG").ok();
    let filter = shared::logging::log_filter(directives.as_deref(), LevelFilter::WARN);
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .finish()
        .with(filter)
        .init();
    let cli = Cli::parse();
    let aws = shared::https::aws_config_loader().load().await;
    let runs_table = || {
        cli.runs_table
            .clone()
            .context("the sync-runs table is required: --runs-table or SYNC_RUNS_TABLE")
    };
    match &cli.command {
        Command::Run {
            direction,
            chunk_size,
            segments,
            place,
        } => {
            let input = FullSyncInput {
                direction: Some(*direction),
                chunk_size: Some(*chunk_size),
                segments: Some(*segments),
                run_id: Some(uuid::Uuid::new_v4().to_string()),
                ..FullSyncInput::default()
            };
            // Refuses a bad input before anything starts.
            input.command()?;
            execute(&aws, &runs_table()?, place, input).await
        }
        Command::Resume { run, place } => {
            execute(&aws, &runs_table()?, place, FullSyncInput::resume(run)).await
        }
        Command::Status { run, users_table } => {
            let runs = runs(&runs_table()?, &aws);
            let run = find(&runs, run.as_deref()).await?;
            let total = match users_table {
                Some(table) => approximate_count(&aws, table).await,
                None => None,
            };
            print_status(&run, total);
            Ok(())
        }
        Command::Cancel { run } => {
            let runs = runs(&runs_table()?, &aws);
            let run = runs.cancel(run, Utc::now()).await?;
            println!(
                "run {} is {}; it stops at its next chunk boundary",
                run.run_id, run.status
            );
            Ok(())
        }
        Command::Redrive {
            dlq_url,
            dry_run,
            limit,
        } => {
            let sqs = aws_sdk_sqs::Client::new(&aws);
            let options = RedriveOptions {
                dry_run: *dry_run,
                limit: *limit,
            };
            let report = redrive(&sqs, dlq_url, &options).await?;
            match &report.strategy {
                RedriveStrategy::MoveTask { task_handle } => println!(
                    "SQS is moving about {} messages back to their queues (task {task_handle})",
                    report.approximate_messages
                ),
                RedriveStrategy::DryRun => {
                    for entry in &report.entries {
                        println!(
                            "would move {} (customer {}, {}) to {}",
                            entry.message_id,
                            entry.customer_id.as_deref().unwrap_or("-"),
                            entry.reason,
                            entry.destination.as_deref().unwrap_or("(unroutable)")
                        );
                    }
                    println!(
                        "dry run: {} messages seen, nothing moved",
                        report.entries.len()
                    );
                }
                RedriveStrategy::Manual => {
                    println!("moved {}, left in the DLQ {}", report.moved, report.left)
                }
            }
            Ok(())
        }
    }
}

async fn find(runs: &SyncRuns, run: Option<&str>) -> anyhow::Result<SyncRun> {
    match run {
        Some(id) => Ok(runs.require(id).await?),
        None => runs.current().await?.context("no full-sync run yet"),
    }
}

async fn approximate_count(aws: &aws_config::SdkConfig, table: &str) -> Option<u64> {
    let scanner = DynamoDbUserScanner::new(aws_sdk_dynamodb::Client::new(aws), table);
    match scanner.approximate_count().await {
        Ok(count) => count,
        Err(err) => {
            tracing::warn!(error = %err, "no item count for the percentage");
            None
        }
    }
}

/// Runs here with a progress line, or starts the deployed function.
async fn execute(
    aws: &aws_config::SdkConfig,
    runs_table: &str,
    place: &Place,
    input: FullSyncInput,
) -> anyhow::Result<()> {
    if place.invoke {
        let payload = serde_json::to_vec(&input)?;
        aws_sdk_lambda::Client::new(aws)
            .invoke()
            .function_name(&place.function_name)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .with_context(|| format!("cannot invoke {}", place.function_name))?;
        let run = input.run_id.or(input.resume).unwrap_or_default();
        println!(
            "started run {run} in {}; follow it with `sync_customers_with_1c status {run}`",
            place.function_name
        );
        return Ok(());
    }
    let config = FullSyncConfig::from_env()
        .context("a local run needs the function's variables (see --help)")?;
    if config.sync_runs_table != runs_table {
        bail!("SYNC_RUNS_TABLE and --runs-table differ");
    }
    let deps = build_deps(&config, aws).await?;
    let total = approximate_count(aws, &config.users_table).await;
    let run_id = input.run_id.clone().or(input.resume.clone());
    let bar = ProgressBar::new(total.unwrap_or(0));
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} scanned ({per_sec}, ETA {eta}) {msg}",
    )?);
    let follower = run_id.map(|id| {
        let runs = deps.runs.clone();
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(Some(run)) = runs.get(&id).await {
                    bar.set_position(run.counters.scanned);
                    let c = run.counters;
                    bar.set_message(format!(
                        "{} {:?}: enqueued {} imported {} updated {} conflicts {} errors {}",
                        run.status,
                        run.phase,
                        c.enqueued,
                        c.imported,
                        c.updated,
                        c.conflicts,
                        c.errors
                    ));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    });
    let run = full_sync::handle(&deps, &input, &Unlimited);
    tokio::pin!(run);
    let result = tokio::select! {
        result = &mut run => result,
        _ = tokio::signal::ctrl_c() => {
            // Leaving the record `running` would block new runs until it goes stale; cancel it
            // and let the chunk in flight finish, so its progress is kept for a resume.
            if let Some(id) = input.run_id.as_deref().or(input.resume.as_deref()) {
                bar.println(format!("interrupted: cancelling run {id} at the end of this chunk"));
                if let Err(err) = deps.runs.cancel(id, Utc::now()).await {
                    bar.println(format!("cannot cancel run {id}: {err}"));
                }
            }
            run.await
        }
    };
    if let Some(follower) = follower {
        follower.abort();
    }
    bar.finish_and_clear();
    let report: RunReport = result?;
    println!(
        "run {}: {} ({:?})\n{}",
        report.run_id,
        report.status,
        report.phase,
        counters_line(&report.counters)
    );
    Ok(())
}

fn counters_line(c: &shared::sync_run::RunCounters) -> String {
    format!(
        "scanned {}  enqueued {}  imported {}  updated {}  conflicts {}  unchanged {}  errors {}",
        c.scanned, c.enqueued, c.imported, c.updated, c.conflicts, c.unchanged, c.errors
    )
}

fn print_status(run: &SyncRun, total: Option<u64>) {
    let p = progress(run, total, Utc::now());
    println!(
        "run {}  direction {}  status {}  phase {:?}  chunk {}  invocations {}",
        run.run_id, run.direction, run.status, run.phase, run.chunk_size, run.invocations
    );
    println!(
        "started {}  updated {}{}",
        run.started_at.to_rfc3339(),
        run.updated_at.to_rfc3339(),
        run.finished_at
            .map(|f| format!("  finished {}", f.to_rfc3339()))
            .unwrap_or_default()
    );
    let percent = p
        .percent
        .map_or_else(|| "?".to_owned(), |v| format!("{v:.1}%"));
    let rate = p
        .rate_per_sec
        .map_or_else(|| "?".to_owned(), |v| format!("{v:.0}/s"));
    let eta = p
        .eta
        .map_or_else(|| "-".to_owned(), |d| format!("{} s", d.as_secs()));
    let of = total.map_or_else(String::new, |t| format!(" of ~{t}"));
    println!(
        "progress {percent} ({} scanned{of})  rate {rate}  ETA {eta}",
        run.counters.scanned
    );
    println!("{}", counters_line(&run.counters));
    if let Some(error) = &run.error {
        println!("error: {error}");
    }
}
