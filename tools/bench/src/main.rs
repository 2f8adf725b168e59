//! `onec-bench`: the process-level benchmarks of `make bench`. Each command measures one stage
//! against its limit and rewrites its own section of docs/benchmarks.md (between
//! `<!-- BEGIN generated:NAME -->` markers; other sections, hand-written ones included, are
//! left alone). The criterion benches live in shared/benches.

mod cold_start;
mod cost;
mod doc;
mod e2e;
mod full_sync;
mod micro;
mod replay;
mod runtime_api;
mod stack;
mod throughput;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "onec-bench",
    about = "onec-sync benchmarks → docs/benchmarks.md"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Criterion results (run `cargo bench -p shared` first) → the micro section.
    Micro,
    /// The release `replay` binary over a generated capture.
    Replay,
    /// Init, RSS and bootstrap size of every function against a local Runtime API.
    ColdStart {
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Exporter customers/s against the 1C emulator with fixed latency.
    Throughput,
    /// Registration write → onec_id on the row, p50/p95/p99.
    E2e,
    /// Full sync runs of growing tables (release full-sync bootstrap).
    FullSync {
        /// Table sizes, comma-separated (the 100,000 takes about 10 minutes).
        #[arg(long, value_delimiter = ',', default_values_t = [10_000, 100_000])]
        users: Vec<usize>,
        /// The run's chunk size (1–10000).
        #[arg(long, default_value_t = full_sync::DEFAULT_CHUNK_SIZE)]
        chunk_size: u32,
        /// Concurrent drainers of the bulk queue; 0 leaves it to fill.
        #[arg(long, default_value_t = full_sync::DEFAULT_DRAINERS)]
        drainers: usize,
        /// DynamoDB and SQS on one moto process instead of two.
        #[arg(long)]
        one_moto: bool,
        /// Write the section to this file, not to docs/benchmarks.md.
        #[arg(long)]
        section_to: Option<std::path::PathBuf>,
    },
    /// Cost per million exports and per full sync, from the figures above.
    Cost,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Micro => micro::run(),
        Command::Replay => replay::run(),
        Command::ColdStart { runs } => cold_start::run(runs.max(1)).await,
        Command::Throughput => throughput::run().await,
        Command::E2e => e2e::run().await,
        Command::FullSync {
            users,
            chunk_size,
            drainers,
            one_moto,
            section_to,
        } => {
            let knobs = full_sync::Knobs {
                chunk_size,
                drainers,
                split: !one_moto,
                section_to,
            };
            full_sync::run(&users, knobs).await
        }
        Command::Cost => cost::run(),
    }
}
