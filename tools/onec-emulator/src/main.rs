//! `onec-emulator`: the 1C stand-in, run by hand or by a demo script.

use anyhow::Context as _;
use clap::Parser;
use onec_emulator::{EmulatorConfig, FaultPlan};
use std::net::{IpAddr, SocketAddr};

/// A 1C:Enterprise stand-in on 127.0.0.1 (HTTP-service JSON, OData, CommerceML) with faults.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Loopback only: anything else is refused.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    #[arg(long, env = "ONEC_EMULATOR_USERNAME", default_value = "Обмен")]
    username: String,
    #[arg(long, env = "ONEC_EMULATOR_PASSWORD", default_value = "пароль-1С")]
    password: String,
    /// Infobase publication path.
    #[arg(long, default_value = "/base")]
    base_path: String,
    /// Root URL of the HTTP services.
    #[arg(long, default_value = "site")]
    hs_root: String,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    #[arg(long, default_value_t = 0.0)]
    error_5xx_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    rate_429: f64,
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
    #[arg(long, default_value_t = 0.0)]
    timeout_rate: f64,
    #[arg(long, default_value_t = 30_000)]
    hang_ms: u64,
    #[arg(long, default_value_t = 0.0)]
    lost_response_rate: f64,
    /// Start answering 503 to everything (clear with `PUT /admin/faults`).
    #[arg(long)]
    down: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    anyhow::ensure!(
        args.host.is_loopback(),
        "--host must be a loopback address, not {}",
        args.host
    );
    for (name, rate) in [
        ("--error-5xx-rate", args.error_5xx_rate),
        ("--rate-429", args.rate_429),
        ("--timeout-rate", args.timeout_rate),
        ("--lost-response-rate", args.lost_response_rate),
    ] {
        anyhow::ensure!((0.0..=1.0).contains(&rate), "{name} must be within 0..=1");
    }
    let config = EmulatorConfig {
        username: args.username,
        password: args.password,
        base_path: args.base_path,
        hs_root: args.hs_root,
        bind: SocketAddr::new(args.host, args.port),
        faults: FaultPlan {
            seed: args.seed,
            latency_ms: args.latency_ms,
            error_5xx_rate: args.error_5xx_rate,
            rate_429: args.rate_429,
            retry_after_secs: args.retry_after_secs,
            timeout_rate: args.timeout_rate,
            hang_ms: args.hang_ms,
            lost_response_rate: args.lost_response_rate,
            outages: Vec::new(),
            down: args.down,
        },
        ..EmulatorConfig::default()
    };
    let emulator = onec_emulator::spawn(config).await?;
    // The first stdout line is the contract with scripts that start us on port 0.
    println!("listening on {}", emulator.base_url());
    println!("admin on {}", emulator.admin_url());

    shutdown_signal().await?;
    tracing::info!("shutting down");
    emulator.stop().await
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT"),
        _ = terminate.recv() => Ok(()),
    }
}
