//! `chaos`: the chaos run of `make chaos` (2,000 customers by default); prints the figures and
//! exits non-zero when a promise did not hold.

use clap::Parser;
use local_stack::chaos::{run_chaos, ChaosOptions};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "chaos",
    about = "Run the sync under 1C faults, an outage and out-of-order redelivery, then check it"
)]
struct Args {
    /// Customers to register.
    #[arg(long, default_value_t = ChaosOptions::full().customers)]
    customers: usize,
    /// Seed of the customers, edits, redeliveries and fault draws.
    #[arg(long, default_value_t = ChaosOptions::full().seed)]
    seed: u64,
    /// Seconds 1C is fully down, starting halfway through the registrations.
    #[arg(long, default_value_t = ChaosOptions::full().outage.as_secs())]
    outage_secs: u64,
    /// Seconds the pipeline may take to settle after the last write.
    #[arg(long, default_value_t = ChaosOptions::full().converge_timeout.as_secs())]
    timeout_secs: u64,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let options = ChaosOptions {
        customers: args.customers,
        seed: args.seed,
        outage: Duration::from_secs(args.outage_secs),
        converge_timeout: Duration::from_secs(args.timeout_secs),
        progress: !args.quiet,
        ..ChaosOptions::full()
    };
    eprintln!(
        "chaos run: {} customers, 1C faults 5xx {:.0}% / 429 {:.0}% / timeout {:.0}% / lost response {:.0}%, outage {}s",
        options.customers,
        options.error_5xx_rate * 100.0,
        options.rate_429 * 100.0,
        options.timeout_rate * 100.0,
        options.lost_response_rate * 100.0,
        options.outage.as_secs()
    );
    match run_chaos(&options).await {
        Ok(report) => {
            println!("{}", report.render());
            if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            eprintln!("the chaos run failed: {text}");
            ExitCode::from(2)
        }
    }
}
