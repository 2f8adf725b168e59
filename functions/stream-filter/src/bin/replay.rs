//! `replay`: runs the stream filter offline over captured DynamoDB stream events and prints what
//! it would do with each record — no AWS calls, no row data in the output.
//!
//! Input: a file (or `-` for stdin) holding one Lambda DynamoDB event (`{"Records":[…]}`, the
//! `events/*.json` format) or JSON lines of such events. Output, one tab-separated line per
//! record: sequence number, event name, user id (the table key, not PII), decision, and the
//! lane/reason or the ignore/invalid reason. Then a `#` summary: the handler's own outcome over
//! the same events (messages per reason, flag writes, ignored and invalid records) and the rate.
//!
//! The policy is the function's: `--significant-fields`, else the mapping's significant fields
//! (`--mapping`, else the built-in mapping), and `--remove-policy`.

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use clap::Parser;
use serde_dynamo::AttributeValue;
use shared::filter::{decide, parse_field_list, Decision, FilterPolicy, RemovePolicy};
use shared::mapping::MappingConfig;
use shared::message::{ExportMessage, Lane};
use shared::metrics::Metrics;
use shared::ports::{ExportQueue, PendingMarker, QueueError, StoreError, WriteOutcome};
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use stream_filter::{process, Deps, FilterOutcome};

#[derive(Debug, Parser)]
#[command(
    name = "replay",
    about = "Run the stream filter offline over captured stream events"
)]
struct Args {
    /// Event file (`{"Records":[…]}` or JSON lines of such events); `-` reads stdin.
    events: PathBuf,
    /// Comma-separated significant fields (default: the mapping's).
    #[arg(long, env = "SIGNIFICANT_FIELDS")]
    significant_fields: Option<String>,
    /// Mapping file whose significant fields apply (default: the built-in mapping).
    #[arg(long, env = "ONEC_MAPPING_FILE")]
    mapping: Option<PathBuf>,
    /// `deactivate` or `ignore`.
    #[arg(long, env = "REMOVE_POLICY", default_value = "deactivate")]
    remove_policy: RemovePolicy,
    /// Print only the summary.
    #[arg(long)]
    quiet: bool,
    /// Replay the events this many times (for a steadier rate on small files).
    #[arg(long, default_value_t = 1)]
    repeat: u32,
}

#[derive(Debug, thiserror::Error)]
enum ReplayError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// serde_json's message names a position, never a value.
    #[error("line {line} is not a DynamoDB stream event")]
    Parse {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot load the mapping")]
    Mapping(#[from] shared::mapping::MappingConfigError),
    #[error("--significant-fields names no field")]
    NoSignificantFields,
    #[error("cannot write the output")]
    Write(#[from] std::io::Error),
    #[error(transparent)]
    Filter(#[from] stream_filter::FilterError),
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let mut message = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("replay: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), ReplayError> {
    let policy = policy(args)?;
    let text = read_text(&args.events)?;
    // The handler's own processing over the same events, against a queue and marker that accept
    // everything: the summary is what the function would have sent and flagged.
    let deps = Deps {
        queue: DryRun,
        marker: DryRun,
        policy,
        metrics: Metrics::new("OnecSyncReplay", "replay"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(ReplayError::Write)?;

    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut records = 0u64;
    let mut parsing = Duration::ZERO;
    let mut deciding = Duration::ZERO;
    let mut total = FilterOutcome::default();
    let repeat = args.repeat.max(1);
    for pass in 0..repeat {
        // One event at a time: memory stays flat however long the capture is.
        let mut events = events(&text);
        loop {
            let started = Instant::now();
            let Some(event) = events.next() else {
                break;
            };
            let event = event?;
            parsing += started.elapsed();
            let started = Instant::now();
            for record in &event.records {
                records += 1;
                let line = describe(record, &deps.policy);
                if !args.quiet {
                    writeln!(out, "{line}")?;
                }
            }
            deciding += started.elapsed();
            if pass == 0 {
                let outcome = runtime.block_on(process(&deps, &event))?;
                add(&mut total, outcome);
            }
        }
    }

    let per_record_ns = deciding.as_nanos() as f64 / records.max(1) as f64;
    writeln!(out, "# records\t{}", records / u64::from(repeat))?;
    for (reason, n) in &total.enqueued {
        writeln!(out, "# enqueue\t{reason}\t{n}")?;
    }
    writeln!(out, "# flag_writes\t{}", total.marked)?;
    for (reason, n) in &total.ignored {
        writeln!(out, "# ignore\t{}\t{n}", reason.as_str())?;
    }
    for (kind, n) in &total.invalid {
        writeln!(out, "# invalid\t{kind}\t{n}")?;
    }
    writeln!(
        out,
        "# rate\t{:.0} records/s\t{per_record_ns:.0} ns/record\tparse {:.1} ms",
        1e9 / per_record_ns.max(1.0),
        parsing.as_secs_f64() * 1e3 / f64::from(repeat)
    )?;
    out.flush()?;
    Ok(())
}

fn policy(args: &Args) -> Result<FilterPolicy, ReplayError> {
    let fields = match &args.significant_fields {
        Some(raw) => {
            let fields = parse_field_list(raw);
            if fields.is_empty() {
                return Err(ReplayError::NoSignificantFields);
            }
            fields
        }
        None => {
            let mapping = match &args.mapping {
                Some(path) => MappingConfig::from_file(path)?,
                None => MappingConfig::default(),
            };
            mapping
                .significant_fields()
                .into_iter()
                .map(str::to_owned)
                .collect()
        }
    };
    Ok(FilterPolicy {
        significant_fields: fields,
        remove_policy: args.remove_policy,
    })
}

fn read_text(path: &PathBuf) -> Result<String, ReplayError> {
    let read_error = |source| ReplayError::Read {
        path: path.clone(),
        source,
    };
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(read_error)?;
    } else {
        text = std::fs::read_to_string(path).map_err(read_error)?;
    }
    Ok(text)
}

/// The events of `text`, parsed one at a time: a single (possibly pretty-printed) event when
/// the text starts like one spanning lines, else one event per non-empty line.
fn events(text: &str) -> Box<dyn Iterator<Item = Result<Event, ReplayError>> + '_> {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let one_line_event = serde_json::from_str::<serde_json::Value>(first).is_ok();
    if !one_line_event {
        return Box::new(std::iter::once(
            serde_json::from_str(text).map_err(|source| ReplayError::Parse { line: 1, source }),
        ));
    }
    Box::new(
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(at, line)| {
                serde_json::from_str(line).map_err(|source| ReplayError::Parse {
                    line: at + 1,
                    source,
                })
            }),
    )
}

/// One output line; never quotes attribute values other than the key.
fn describe(record: &EventRecord, policy: &FilterPolicy) -> String {
    let seq = record.change.sequence_number.as_deref().unwrap_or("-");
    let id = match record.change.keys.get("id") {
        Some(AttributeValue::S(id)) => id.as_str(),
        _ => "-",
    };
    let (decision, detail) = match decide(record, policy) {
        Ok(Decision::Enqueue(message)) => ("enqueue", lane_reason(&message)),
        Ok(Decision::MarkPendingAndEnqueue { message }) => {
            ("flag_and_enqueue", lane_reason(&message))
        }
        Ok(Decision::Ignore(reason)) => ("ignore", reason.as_str().to_owned()),
        Err(invalid) => ("invalid", invalid.kind().to_owned()),
    };
    format!("{seq}\t{}\t{id}\t{decision}\t{detail}", record.event_name)
}

fn lane_reason(message: &ExportMessage) -> String {
    let lane = match message.reason.lane() {
        Lane::Priority => "priority",
        Lane::Bulk => "bulk",
    };
    format!("{lane}/{}", message.reason.as_str())
}

fn add(total: &mut FilterOutcome, outcome: FilterOutcome) {
    for (k, n) in outcome.enqueued {
        *total.enqueued.entry(k).or_default() += n;
    }
    for (k, n) in outcome.ignored {
        *total.ignored.entry(k).or_default() += n;
    }
    for (k, n) in outcome.invalid {
        *total.invalid.entry(k).or_default() += n;
    }
    total.marked += outcome.marked;
    total.marks_stale += outcome.marks_stale;
}

/// Accepts every message and every flag write, touching nothing.
struct DryRun;

#[async_trait]
impl ExportQueue for DryRun {
    async fn enqueue(
        &self,
        _lane: Lane,
        batch: &[ExportMessage],
    ) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        Ok(batch.iter().map(|_| Ok(())).collect())
    }
}

#[async_trait]
impl PendingMarker for DryRun {
    async fn mark_pending(&self, _id: &str, _version: u64) -> Result<WriteOutcome, StoreError> {
        Ok(WriteOutcome::Applied)
    }
}
