//! Cold start of every function: its release bootstrap started against the local Runtime API,
//! with the stack's real configuration (moto clients, the 1C secret read from moto's Secrets
//! Manager, the 1C emulator), so init does what it does on Lambda.
//!
//! Init = process start → the first `GET /invocation/next` (what Lambda reports as Init
//! Duration). Then two invocations (the first pays the connections' set-up) and the peak RSS
//! (`VmHWM` of /proc/<pid>/status). Sizes are those of the arm64 bootstraps that
//! `cargo lambda build --release --arm64` left in target/lambda/<fn>/.

use crate::doc;
use crate::runtime_api::{Observed, RuntimeApi};
use crate::stack::{sqs_event, LocalStack};
use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const INIT_TARGET_MS: f64 = 20.0;
const RSS_TARGET_MB: f64 = 25.0;
const SIZE_TARGET_MB: f64 = 8.0;
const ELF_MACHINE_AARCH64: u16 = 183;
/// Memory the template gives each function (infra/template.yaml).
fn memory_mb(function: &str) -> u32 {
    match function {
        "full-sync" => 512,
        _ => 256,
    }
}

#[derive(Debug, Default, Clone)]
struct Run {
    init_ms: f64,
    first_ms: Option<f64>,
    warm_ms: Option<f64>,
    rss_after_init_kb: u64,
    peak_rss_kb: u64,
}

pub async fn run(runs: usize) -> anyhow::Result<()> {
    let root = doc::workspace_root();
    let mut functions: Vec<String> = std::fs::read_dir(root.join("functions"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("src/main.rs").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    functions.sort();

    let stack = LocalStack::start("coldstart", 0).await?;
    let mut table = String::from(
        "| Function | Memory | Init median (max) | 1st invocation | warm invocation | Peak RSS | arm64 bootstrap |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut figures = serde_json::Map::new();
    let mut notes = Vec::new();
    for function in &functions {
        let binary = root.join("target/release").join(function);
        let size = arm64_size(&root.join("target/lambda").join(function).join("bootstrap"));
        if !binary.exists() {
            notes.push(format!(
                "- `{function}`: not measured, {} is missing (`make bench` builds it).",
                binary.display()
            ));
            continue;
        }
        let mut results = Vec::new();
        for n in 0..runs {
            let run = measure(&stack, function, &binary, n)
                .await
                .with_context(|| format!("cold start {n} of {function}"))?;
            results.push(run);
        }
        let mut inits: Vec<f64> = results.iter().map(|r| r.init_ms).collect();
        inits.sort_by(f64::total_cmp);
        let init_median = inits[inits.len() / 2];
        let init_max = inits[inits.len() - 1];
        let first = median(results.iter().filter_map(|r| r.first_ms));
        let warm = median(results.iter().filter_map(|r| r.warm_ms));
        let peak_mb = results.iter().map(|r| r.peak_rss_kb).max().unwrap_or(0) as f64 / 1024.0;
        let init_rss_mb = results
            .iter()
            .map(|r| r.rss_after_init_kb)
            .max()
            .unwrap_or(0) as f64
            / 1024.0;
        table.push_str(&format!(
            "| {function} | {} MB | {init_median:.1} ms ({init_max:.1}) {} | {} | {} | {peak_mb:.1} MB {} | {} |\n",
            memory_mb(function),
            verdict(init_median <= INIT_TARGET_MS),
            ms(first),
            ms(warm),
            verdict(peak_mb <= RSS_TARGET_MB),
            match size {
                Some(bytes) => format!(
                    "{:.1} MB {}",
                    bytes as f64 / 1e6,
                    verdict(bytes as f64 / 1e6 <= SIZE_TARGET_MB)
                ),
                None => "not built (arm64)".to_owned(),
            },
        ));
        figures.insert(
            function.clone(),
            json!({
                "init_ms_median": init_median,
                "init_ms_max": init_max,
                "first_invocation_ms": first,
                "warm_invocation_ms": warm,
                "peak_rss_mb": peak_mb,
                "rss_after_init_mb": init_rss_mb,
                "memory_mb": memory_mb(function),
                "arm64_bytes": size,
            }),
        );
    }
    doc::save_figures("cold_start", &Value::Object(figures))?;
    let body = format!(
        "### Cold start (targets: init ≤ {INIT_TARGET_MS} ms, RSS ≤ {RSS_TARGET_MB} MB, bootstrap ≤ {SIZE_TARGET_MB} MB)\n\n\
         {runs} cold starts per function of the release build on this machine (x86_64; the arm64 \
         bootstrap is the deployed artefact, measured for size only — no arm64 CPU here), against \
         a Runtime API of our own on 127.0.0.1, with moto as AWS and the 1C emulator (no latency) \
         as 1C. Init includes reading the configuration, building the SDK clients, reading the 1C \
         secret from Secrets Manager and, for the exporter, the 1C warm-up request. The first \
         invocation of the stream filter is events/dynamodb-batch.json (SQS sends and flag writes \
         to moto); the exporter's are 10 registrations each (row read, 1C upsert, write-back, \
         sync log). Loopback has no TLS: on Lambda the first call to each endpoint also pays a \
         handshake (745 ms at 128 MB in the notes' secondary source, §7.2; less with 256 MB's \
         double CPU share). The exporter's init now opens its 1C connection (the warm-up) and \
         reads the secret over TLS; its DynamoDB and SQS connections still open on the first \
         invocation.\n\n{table}{}\n",
        if notes.is_empty() {
            String::new()
        } else {
            format!("\n{}\n", notes.join("\n"))
        }
    );
    doc::write_section("cold-start", &body)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "✅"
    } else {
        "❌"
    }
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{v:.1} ms"))
}

fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Size of an arm64 ELF bootstrap, if that is what the file is.
fn arm64_size(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let machine = u16::from_le_bytes([*bytes.get(18)?, *bytes.get(19)?]);
    (machine == ELF_MACHINE_AARCH64).then_some(bytes.len() as u64)
}

fn vm_hwm_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The invocations a function gets in a cold start run, if it has a sample.
async fn invocations(stack: &LocalStack, function: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let root = doc::workspace_root();
    Ok(match function {
        "stream-filter" => {
            let batch = std::fs::read_to_string(root.join("events/dynamodb-batch.json"))?;
            vec![batch.clone(), batch]
        }
        "exporter" => {
            let mut events = Vec::new();
            for k in 0..2 {
                let ids = stack.put_customers(&format!("cold-{n}-{k}"), 10).await?;
                events.push(sqs_event(&stack.outputs.priority_queue_arn, &ids).to_string());
            }
            events
        }
        // A function without a sample event is measured up to its first `next`.
        _ => Vec::new(),
    })
}

async fn measure(
    stack: &LocalStack,
    function: &str,
    binary: &PathBuf,
    n: usize,
) -> anyhow::Result<Run> {
    let events = invocations(stack, function, n).await?;
    let mut api = RuntimeApi::start().await?;
    let logs = doc::workspace_root().join("target/bench/logs");
    std::fs::create_dir_all(&logs)?;
    let log = std::fs::File::create(logs.join(format!("{function}-{n}.log")))?;
    let mut command = tokio::process::Command::new(binary);
    command
        .envs(stack.function_env())
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            memory_mb(function).to_string(),
        )
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let pid = child.id().context("the function has a pid")?;
    let limit = Duration::from_secs(30);

    let mut run = Run::default();
    let first_next = match api.observe(limit).await? {
        Observed::Next(at) => at,
        Observed::InitError { body, .. } => bail!("{function} failed to initialise: {body}"),
        other => bail!("unexpected {other:?} before the first next"),
    };
    run.init_ms = (first_next - started).as_secs_f64() * 1e3;
    run.rss_after_init_kb = vm_hwm_kb(pid, "VmHWM:");

    for (i, payload) in events.into_iter().enumerate() {
        let id = format!("bench-{n}-{i}");
        let sent = Instant::now();
        api.invoke(&id, payload).await;
        let answered = loop {
            match api.observe(limit).await? {
                Observed::Answer {
                    id: got,
                    at,
                    ok,
                    body,
                } if got == id => {
                    if !ok {
                        bail!("{function} failed invocation {i}: {body}");
                    }
                    if body.contains("batchItemFailures\":[{") {
                        bail!("{function} reported failed items in invocation {i}: {body}");
                    }
                    break at;
                }
                Observed::Next(_) => continue,
                other => bail!("unexpected {other:?} during invocation {i}"),
            }
        };
        let took = (answered - sent).as_secs_f64() * 1e3;
        if i == 0 {
            run.first_ms = Some(took);
        } else {
            run.warm_ms = Some(took);
        }
    }
    // Let the runtime reach its next `next` so the peak includes the whole invocation.
    tokio::time::sleep(Duration::from_millis(50)).await;
    run.peak_rss_kb = vm_hwm_kb(pid, "VmHWM:");
    child.start_kill()?;
    let _ = child.wait().await;
    Ok(run)
}
