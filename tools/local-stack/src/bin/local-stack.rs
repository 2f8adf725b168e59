//! `local-stack demo`: the whole sync on this machine (moto, the 1C emulator, the real
//! handlers), a realistic set of platform users, live progress and a checked report.

use clap::{Parser, Subcommand, ValueEnum};
use local_stack::demo::{example_put_item, run_scenario, DemoOptions};
use local_stack::runner::{FullSyncSchedule, LocalStack, LocalStackOptions, MetricsOutput};
use onec_emulator::FaultPlan;
use shared::onec::Transport;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "local-stack",
    about = "Run onec-sync locally: moto, the 1C emulator and the real handlers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Register users on the platform, watch them reach 1C, print a checked report.
    Demo(DemoArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum TransportArg {
    Json,
    Odata,
    Commerceml,
}

impl From<TransportArg> for Transport {
    fn from(value: TransportArg) -> Self {
        match value {
            TransportArg::Json => Transport::Json,
            TransportArg::Odata => Transport::OData,
            TransportArg::Commerceml => Transport::CommerceMl,
        }
    }
}

#[derive(clap::Args, Debug)]
struct DemoArgs {
    /// Platform users to register.
    #[arg(long, default_value_t = 300)]
    users: usize,
    /// The 1C transport the exporter speaks.
    #[arg(long, value_enum, default_value = "json")]
    transport: TransportArg,
    /// Share of 1C requests answered 503.
    #[arg(long, default_value_t = 0.05)]
    error_5xx_rate: f64,
    /// Share of 1C requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.02)]
    rate_429: f64,
    /// Share of 1C requests that hang (`--hang-ms`), then answer 504.
    #[arg(long, default_value_t = 0.0)]
    timeout_rate: f64,
    /// Share of 1C requests committed whose answer comes only after `--hang-ms` (lost when
    /// that exceeds the client's 20 s request timeout).
    #[arg(long, default_value_t = 0.0)]
    lost_response_rate: f64,
    /// How long a timeout or lost response hangs.
    #[arg(long, default_value_t = 2000)]
    hang_ms: u64,
    /// Latency added to every 1C request.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Customers per 1C request when the exporter has several messages (`ONEC_BATCH_SIZE`;
    /// 1 = one request per customer). The exporter's default when not given.
    #[arg(long)]
    batch_size: Option<u32>,
    /// The full sync's schedule, in seconds (nightly in AWS); it imports the role/status
    /// changes made in 1C. 0: no schedule, the demo invokes one import itself.
    #[arg(long, default_value_t = 5)]
    full_sync_every: u64,
    /// Seed of the fault draws and of the generated users.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Share of users written with an invalid INN or e-mail.
    #[arg(long, default_value_t = 0.05)]
    invalid_share: f64,
    /// Leave the stack running after the report (stop with Ctrl-C).
    #[arg(long)]
    keep: bool,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
    /// Print the handlers' CloudWatch EMF metric lines on stdout, as Lambda would log them.
    #[arg(long)]
    emf: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // The report says what went wrong; RUST_LOG=warn shows the handlers' own logs.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo(args).await,
    }
}

async fn demo(args: DemoArgs) -> ExitCode {
    let rates = [
        ("--error-5xx-rate", args.error_5xx_rate),
        ("--rate-429", args.rate_429),
        ("--timeout-rate", args.timeout_rate),
        ("--lost-response-rate", args.lost_response_rate),
        ("--invalid-share", args.invalid_share),
    ];
    if let Some((flag, _)) = rates.iter().find(|(_, r)| !(0.0..=1.0).contains(r)) {
        eprintln!("{flag} must be between 0 and 1");
        return ExitCode::from(2);
    }
    let faults = FaultPlan {
        seed: args.seed,
        latency_ms: args.latency_ms,
        error_5xx_rate: args.error_5xx_rate,
        rate_429: args.rate_429,
        timeout_rate: args.timeout_rate,
        lost_response_rate: args.lost_response_rate,
        hang_ms: args.hang_ms,
        ..FaultPlan::default()
    };
    let mut env_overrides = BTreeMap::new();
    if let Some(size) = args.batch_size {
        env_overrides.insert("ONEC_BATCH_SIZE".to_owned(), size.to_string());
    }
    let options = LocalStackOptions {
        transport: args.transport.into(),
        env_overrides,
        full_sync: (args.full_sync_every > 0)
            .then(|| FullSyncSchedule::template_input(Duration::from_secs(args.full_sync_every))),
        faults,
        prefix: Some(format!("demo-{}", std::process::id())),
        metrics: if args.emf {
            MetricsOutput::Stdout
        } else {
            MetricsOutput::Discard
        },
        ..LocalStackOptions::default()
    };
    eprintln!("starting moto, the 1C emulator and the handlers …");
    let stack = match LocalStack::start(options).await {
        Ok(stack) => stack,
        Err(err) => {
            eprintln!("cannot start the local stack: {}", chain(&err));
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "moto {}  1C emulator {}  transport {}",
        stack.endpoint(),
        stack.emulator().base_url(),
        stack.transport()
    );
    let scenario = DemoOptions {
        users: args.users,
        seed: args.seed,
        invalid_share: args.invalid_share,
        progress: !args.quiet,
        ..DemoOptions::default()
    };
    let outcome = tokio::select! {
        outcome = run_scenario(&stack, &scenario) => Some(outcome),
        _ = tokio::signal::ctrl_c() => None,
    };
    let code = match outcome {
        None => {
            eprintln!("\ninterrupted");
            stack.stop().await;
            return ExitCode::from(130);
        }
        Some(Err(err)) => {
            eprintln!("the demo failed: {}", chain(&err));
            ExitCode::from(2)
        }
        Some(Ok(report)) => {
            println!("{}", report.render());
            if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    };
    if args.keep {
        print_keep_instructions(&stack);
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("stopping …");
    }
    stack.stop().await;
    code
}

fn print_keep_instructions(stack: &LocalStack) {
    let outputs = stack.outputs();
    println!("The stack keeps running; Ctrl-C stops it.");
    println!("  moto endpoint   {}", stack.endpoint());
    println!("  users table     {}", outputs.users_table);
    println!("  sync log table  {}", outputs.sync_log_table);
    println!("  priority queue  {}", outputs.priority_queue_url);
    println!("  bulk queue      {}", outputs.bulk_queue_url);
    println!("  DLQ             {}", outputs.dlq_url);
    println!("  sync runs table {}", outputs.sync_runs_table);
    if let Some(schedule) = stack.full_sync_schedule() {
        println!(
            "  full sync       every {}s, input {}",
            schedule.every.as_secs(),
            serde_json::to_string(&schedule.input).unwrap_or_default()
        );
    }
    println!(
        "  1C emulator     {}   (admin: {}/counterparties)",
        stack.emulator().base_url(),
        stack.emulator().admin_url()
    );
    println!("\nRegister a user and watch it reach 1C:");
    println!(
        "{}",
        example_put_item(&outputs.users_table, stack.endpoint())
    );
    // The emulator's documented default login, not a secret.
    let login = stack.emulator().config();
    println!(
        "  curl -s -u '{}:{}' '{}/hs/{}/customers?platform_id=demo-user-1'",
        login.username,
        login.password,
        stack.emulator().base_url(),
        login.hs_root
    );
    if stack.full_sync_schedule().is_some() {
        println!("\nChange its role in 1C (REF = its onec_id above) and watch the next full sync bring it back:");
        println!(
            "  curl -s -X PATCH -H 'content-type: application/json' -d '{{\"role\":\"Опт\"}}' '{}/counterparties/REF'",
            stack.emulator().admin_url()
        );
        println!(
            "  aws dynamodb get-item --endpoint-url {} --table-name {} --key '{{\"id\":{{\"S\":\"demo-user-1\"}}}}'   # role: wholesale",
            stack.endpoint(),
            outputs.users_table
        );
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
