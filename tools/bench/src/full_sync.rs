//! Full sync: the release `full-sync` bootstrap against the local Runtime API (15-minute
//! deadline as in the template), moto holding the users, one `export` run per table size.
//!
//! moto is slow where DynamoDB and SQS are not, so the stack is shaped to measure it as little as
//! possible:
//! - DynamoDB and SQS run on two moto processes (moto is one GIL-bound Python process; two use
//!   both cores), the function finding SQS through `AWS_ENDPOINT_URL_SQS`;
//! - drainers empty the bulk queue while the run fills it, as the exporter would: moto's
//!   `SendMessage`, `ReceiveMessage` and `DeleteMessage` walk every message in the queue, so a
//!   queue left to grow makes each call slower than the last. What they drain is checked
//!   against the seeded ids (every user exactly once);
//! - a run that hands over to a fresh invocation (`continue_run`, through Lambda's `Invoke`)
//!   is served: a small Invoke endpoint queues the continuation on the same Runtime API.
//!
//! Knobs for other experiments are command-line options (`onec-bench full-sync --help`); the
//! defaults are the documented run.

use crate::doc;
use crate::runtime_api::{Observed, RuntimeApi};
use crate::stack::{row, LocalStack};
use anyhow::{bail, Context as _};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The chunk the bench asks for unless told otherwise: the
/// template's maximum, not the schedule's 500, because moto sorts and walks the whole table for
/// every Scan page (see [`SEPARATELY_MEASURED`]); fewer pages, same rows.
pub const DEFAULT_CHUNK_SIZE: u32 = 10_000;
/// Enough that draining outpaces the function's four concurrent sends: moto's SendMessage and
/// ReceiveMessage cost a pass over every queued message, so a queue that grows slows both and
/// grows further (6 drainers fell behind at 5,000 users, 16 held at 10,000 and 30,000 once and
/// fell behind at 10,000 another time, 48 held).
pub const DEFAULT_DRAINERS: usize = 48;
const IDLE_MIN: Duration = Duration::from_millis(25);
const IDLE_MAX: Duration = Duration::from_millis(400);
const MEMORY_MB: u32 = 512;
const TIMEOUT: Duration = Duration::from_secs(900);
/// BatchWriteItem calls in flight while seeding.
const SEED_CONCURRENCY: usize = 8;
/// How long the drainers may take to empty the queue once the run has answered.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// Why the stack has this shape; measured with profiles, not by this command.
const SEPARATELY_MEASURED: &str = "Measured separately (2026-11-29, moto 5.2.5 under cProfile \
and per-operation timing, not by this command): moto's SQS computes the queue's attributes, \
which evaluate the visibility and delay of every queued and in-flight message, once per sent \
message and three times per received one (its retention check reads one attribute three \
times), so every call slows as the queue grows; with 6 drainers the queue outgrew them at \
5,000 users (a ReceiveMessage took 150 ms of CPU), with 48 it stayed empty. moto's Scan sorts \
the whole table and walks it to the start key on every page, then copies and projects each row \
it returns; at 100,000 rows a page of 500 took 0.6 s of moto's CPU at the table's start, \
0.8 s at its middle and 2.6 s at its end, a page of 10,000 (cut at 1 MB: 4,170 of these rows) \
2.1–2.3 s, so the template's largest chunk (10,000; the schedule uses 500) needs 25 pages \
instead of 200.";

pub struct Knobs {
    pub chunk_size: u32,
    /// 0 disables draining.
    pub drainers: usize,
    /// DynamoDB and SQS on two moto processes.
    pub split: bool,
    /// Write the markdown here instead of docs/benchmarks.md (experiments).
    pub section_to: Option<std::path::PathBuf>,
}

struct Measured {
    users: usize,
    seed_seconds: f64,
    seconds: f64,
    report: Value,
    peak_rss_mb: f64,
    function_cpu_s: f64,
    /// CPU seconds of each moto process during the run (DynamoDB's first).
    moto_cpu_s: Vec<f64>,
    invocations: u64,
    chunks: u64,
    drain: Option<DrainCheck>,
    load: (String, String),
}

/// What the drainers took off the bulk queue, against the seeded ids.
struct DrainCheck {
    messages: u64,
    /// Distinct SQS message ids: fewer than `messages` means a message was delivered twice;
    /// more than `distinct` means a user was sent twice.
    message_ids: usize,
    distinct: usize,
    duplicates: usize,
    missing: usize,
    unexpected: usize,
    /// Messages still queued when the function answered (drained afterwards).
    after_answer: u64,
    /// From the answer to an empty queue.
    tail_seconds: f64,
}

pub async fn run(sizes: &[usize], knobs: Knobs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=10_000).contains(&knobs.chunk_size),
        "the function takes chunk sizes 1..=10000"
    );
    anyhow::ensure!(sizes.len() >= 2, "give at least two table sizes");
    let root = doc::workspace_root();
    let binary = root.join("target/release/full-sync");
    if !binary.exists() {
        bail!(
            "{} is missing: cargo build --release -p full-sync",
            binary.display()
        );
    }
    let stack = if knobs.split {
        LocalStack::start_split("fullsync", 0).await?
    } else {
        LocalStack::start("fullsync", 0).await?
    };
    let mut seeded = 0;
    let mut results = Vec::new();
    for (n, &users) in sizes.iter().enumerate() {
        anyhow::ensure!(users >= seeded, "give the table sizes in growing order");
        let started = Instant::now();
        seed(&stack, seeded, users).await?;
        let seed_seconds = started.elapsed().as_secs_f64();
        println!("seeded {} users in {seed_seconds:.0} s", users - seeded);
        seeded = users;
        let mut m = measure(&stack, &binary, &knobs, users, n).await?;
        m.seed_seconds = seed_seconds;
        results.push(m);
    }
    write_doc(&knobs, sizes, &results)
}

fn write_doc(knobs: &Knobs, sizes: &[usize], results: &[Measured]) -> anyhow::Result<()> {
    let chunk = knobs.chunk_size;
    let mut table = String::from(
        "| Users | Run time | Users/s | Chunks (invocations) | Scanned | Enqueued | Drained: distinct / duplicates / missing | Errors | Peak RSS | Function CPU | moto CPU |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut figures = Vec::new();
    for m in results {
        let counter = |k: &str| m.report["counters"][k].as_u64().unwrap_or(0);
        let drained = m.drain.as_ref().map_or_else(
            || "not drained".to_owned(),
            |d| format!("{} / {} / {}", d.distinct, d.duplicates, d.missing),
        );
        let moto = m
            .moto_cpu_s
            .iter()
            .map(|s| format!("{s:.0} s"))
            .collect::<Vec<_>>()
            .join(" + ");
        table.push_str(&format!(
            "| {} | {:.1} s | {:.0} | {} ({}) | {} | {} | {drained} | {} | {:.1} MB | {:.1} s | {moto} |\n",
            m.users,
            m.seconds,
            m.users as f64 / m.seconds,
            m.chunks,
            m.invocations,
            counter("scanned"),
            counter("enqueued"),
            counter("errors"),
            m.peak_rss_mb,
            m.function_cpu_s,
        ));
        figures.push(json!({
            "users": m.users, "seconds": m.seconds, "peak_rss_mb": m.peak_rss_mb,
            "chunk_size": chunk, "chunks": m.chunks, "invocations": m.invocations,
            "function_cpu_s": m.function_cpu_s, "moto_cpu_s": m.moto_cpu_s,
            "seed_seconds": m.seed_seconds, "load": [m.load.0, m.load.1],
            "drain": m.drain.as_ref().map(|d| json!({
                "messages": d.messages, "message_ids": d.message_ids, "distinct": d.distinct, "duplicates": d.duplicates,
                "missing": d.missing, "unexpected": d.unexpected,
                "after_answer": d.after_answer, "tail_seconds": d.tail_seconds})),
            "report": m.report,
        }));
    }
    doc::save_figures("full_sync", &Value::Array(figures))?;
    let (first, last) = (&results[0], &results[results.len() - 1]);
    let growth = last.peak_rss_mb - first.peak_rss_mb;
    let reached = sizes.iter().any(|&s| s >= 100_000);
    let title = if reached {
        "### Full sync (issue target: 100,000 users)"
    } else {
        "### Full sync (issue target: 100,000 users — not run here; `--users 10000,100000`)"
    };
    let stack = if knobs.split {
        "two moto processes (DynamoDB and Secrets Manager on one, SQS on the other, so each \
         has a core)"
    } else {
        "one moto process as DynamoDB and SQS"
    };
    let drain = if knobs.drainers > 0 {
        format!(
            "{} drainers short-poll the bulk queue (ReceiveMessage of 10, DeleteMessageBatch) \
             during the run, as the exporter would; the ids they drained are compared with the \
             seeded ones (every user exactly once: distinct = users, no duplicates, none \
             missing)",
            knobs.drainers
        )
    } else {
        "nothing drains the bulk queue".to_owned()
    };
    let tails = results
        .iter()
        .filter_map(|m| {
            m.drain.as_ref().map(|d| {
                format!(
                    "{}: {} messages left at the answer, drained in {:.1} s",
                    m.users, d.after_answer, d.tail_seconds
                )
            })
        })
        .collect::<Vec<_>>()
        .join("; ");
    let twice = results
        .iter()
        .filter_map(|m| {
            m.drain.as_ref().map(|d| {
                let redelivered = d.messages.saturating_sub(d.message_ids as u64);
                let resent = d.message_ids.saturating_sub(d.distinct);
                format!(
                    "{}: {} users received twice — {redelivered} second deliveries of one \
                     message id, {resent} users sent twice",
                    m.users, d.duplicates
                )
            })
        })
        .collect::<Vec<_>>()
        .join("; ");
    let seeding = results
        .iter()
        .zip(std::iter::once(0).chain(results.iter().map(|m| m.users)))
        .map(|(m, from)| format!("{} rows in {:.0} s", m.users - from, m.seed_seconds))
        .collect::<Vec<_>>()
        .join(", ");
    let loads = results
        .iter()
        .map(|m| format!("{} → {}", m.load.0, m.load.1))
        .collect::<Vec<_>>()
        .join("; ");
    let body = format!(
        "{title}\n\n\
         The release `full-sync` bootstrap against the local Runtime API (512 MB, 15-minute \
         deadline as in the template; were the run to hand over to a fresh invocation, the \
         bench would serve it on the same process), {stack}, one \
         `{{\"direction\":\"export\",\"chunk_size\":{chunk}}}` run per table size over \
         rows that all need exporting, so every row is enqueued on the bulk queue. {drain}. Run \
         time is from the invocation to the final answer. Chunks are the run's progress \
         writes, one per scan page (a page also ends at 1 MB of items, in moto as in \
         DynamoDB, so it may hold fewer rows than the chunk size). Peak RSS is the function \
         process's VmHWM; CPU is user + system time during the run, of the function and of \
         each moto process (DynamoDB's first, then SQS's), on 2 cores shared with other work \
         (load average before → after: {loads}).\n\n\
         {table}\n\
         Memory from {} to {} users: {growth:+.1} MB. Bulk queue at the answer: {tails}. \
         Drained twice: {twice}. Seeding before each run (BatchWriteItem of 25, \
         {SEED_CONCURRENCY} in flight): {seeding}.\n\n{SEPARATELY_MEASURED}\n",
        first.users, last.users
    );
    match &knobs.section_to {
        // Experiments keep docs/benchmarks.md as it is.
        Some(path) => {
            std::fs::write(path, &body)?;
            println!("section written to {}", path.display());
            Ok(())
        }
        None => doc::write_section("full-sync", &body),
    }
}

/// Writes rows `from..to`, [`SEED_CONCURRENCY`] BatchWriteItem calls at a time.
async fn seed(stack: &LocalStack, from: usize, to: usize) -> anyhow::Result<()> {
    use futures::stream::{self, StreamExt as _, TryStreamExt as _};
    let dynamodb = stack.dynamodb();
    let table = stack.outputs.users_table.clone();
    let chunks: Vec<Vec<usize>> = (from..to)
        .collect::<Vec<_>>()
        .chunks(25)
        .map(<[usize]>::to_vec)
        .collect();
    stream::iter(chunks)
        .map(|chunk| {
            let dynamodb = dynamodb.clone();
            let table = table.clone();
            async move {
                let mut requests = Vec::new();
                for i in chunk {
                    let item: HashMap<String, AttributeValue> =
                        serde_dynamo::to_item(row(&user_id(i)))?;
                    requests.push(
                        WriteRequest::builder()
                            .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                            .build(),
                    );
                }
                let mut pending = Some(HashMap::from([(table, requests)]));
                while let Some(items) = pending.filter(|p| !p.is_empty()) {
                    pending = dynamodb
                        .batch_write_item()
                        .set_request_items(Some(items))
                        .send()
                        .await
                        .context("BatchWriteItem")?
                        .unprocessed_items;
                }
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

fn user_id(i: usize) -> String {
    format!("fs-{i}")
}

fn proc_status_kb(pid: u32, field: &str) -> u64 {
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

/// User + system CPU seconds of a process (clock ticks of 1/100 s, Linux's USER_HZ).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) as f64 / 100.0,
        _ => 0.0,
    }
}

/// moto's pid: the only child of its watchdog shell.
fn moto_pid(watchdog: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{watchdog}/task/{watchdog}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Lambda's `Invoke` as far as the function's continuation uses it: the payload goes to the
/// bench, which queues it on the Runtime API.
async fn start_invoke_endpoint(
) -> anyhow::Result<(String, mpsc::UnboundedReceiver<String>, watch::Sender<()>)> {
    use axum::extract::State;
    use axum::routing::post;
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    let app = axum::Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(
                |State(tx): State<mpsc::UnboundedSender<String>>, body: String| async move {
                    let _ = tx.send(body);
                    axum::http::StatusCode::ACCEPTED
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.changed().await;
            })
            .await;
    });
    Ok((format!("http://{addr}"), rx, stop))
}

type Counts = HashMap<String, u32>;

/// One drainer's take: deliveries per customer id, and the SQS message ids seen.
struct Part {
    counts: Counts,
    message_ids: std::collections::HashSet<String>,
    messages: u64,
}

/// Receives and deletes bulk messages until `done` is set and the queue answers empty twice.
async fn drainer(
    sqs: aws_sdk_sqs::Client,
    url: String,
    mut done: watch::Receiver<bool>,
    after_answer: Arc<std::sync::atomic::AtomicU64>,
) -> anyhow::Result<Part> {
    let mut part = Part {
        counts: Counts::new(),
        message_ids: std::collections::HashSet::new(),
        messages: 0,
    };
    let mut empty_after_done = 0;
    let mut idle = Duration::ZERO;
    loop {
        let finished = *done.borrow_and_update();
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .context("ReceiveMessage")?;
        let received = out.messages.unwrap_or_default();
        if received.is_empty() {
            if finished {
                empty_after_done += 1;
                if empty_after_done >= 2 {
                    return Ok(part);
                }
            } else {
                // Ahead of the run: back off (an empty ReceiveMessage still costs moto a pass
                // over the in-flight messages), or stop waiting when the run answers.
                idle = (idle * 2).clamp(IDLE_MIN, IDLE_MAX);
                let _ = tokio::time::timeout(idle, done.changed()).await;
            }
            continue;
        }
        idle = Duration::ZERO;
        empty_after_done = 0;
        let mut entries = Vec::new();
        for (i, m) in received.iter().enumerate() {
            part.messages += 1;
            if let Some(id) = m.message_id() {
                part.message_ids.insert(id.to_owned());
            }
            if finished {
                after_answer.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let id = m
                .body()
                .and_then(|b| serde_json::from_str::<Value>(b).ok())
                .and_then(|v| v["customer_id"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "<unreadable>".to_owned());
            *part.counts.entry(id).or_default() += 1;
            entries.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                    .build()?,
            );
        }
        let deleted = sqs
            .delete_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .context("DeleteMessageBatch")?;
        anyhow::ensure!(
            deleted.failed.is_empty(),
            "DeleteMessageBatch refused {} entries",
            deleted.failed.len()
        );
    }
}

fn check(users: usize, parts: Vec<Part>, after_answer: u64, tail: f64) -> DrainCheck {
    let mut counts = Counts::new();
    let mut message_ids = std::collections::HashSet::new();
    let mut messages = 0;
    for part in parts {
        messages += part.messages;
        message_ids.extend(part.message_ids);
        for (id, c) in part.counts {
            *counts.entry(id).or_default() += c;
        }
    }
    let expected: std::collections::HashSet<String> = (0..users).map(user_id).collect();
    DrainCheck {
        messages,
        message_ids: message_ids.len(),
        distinct: counts.len(),
        duplicates: counts.values().filter(|&&c| c > 1).count(),
        missing: expected
            .iter()
            .filter(|id| !counts.contains_key(*id))
            .count(),
        unexpected: counts.keys().filter(|id| !expected.contains(*id)).count(),
        after_answer,
        tail_seconds: tail,
    }
}

/// `seq` (one per progress write: a chunk, or a continuation's start) and `invocations` of the
/// run record.
async fn run_record(stack: &LocalStack, run_id: &str) -> anyhow::Result<(u64, u64)> {
    let item = stack
        .dynamodb()
        .get_item()
        .table_name(&stack.outputs.sync_runs_table)
        .key("run_id", AttributeValue::S(run_id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .context("GetItem on the sync-runs table")?
        .item
        .context("the run record")?;
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .with_context(|| format!("the run record's {name}"))
    };
    Ok((number("seq")?, number("invocations")?))
}

async fn measure(
    stack: &LocalStack,
    binary: &std::path::Path,
    knobs: &Knobs,
    users: usize,
    n: usize,
) -> anyhow::Result<Measured> {
    let mut api = RuntimeApi::start().await?;
    let (invoke_url, mut continuations, stop_invoke) = start_invoke_endpoint().await?;
    let logs = doc::workspace_root().join("target/bench/logs");
    std::fs::create_dir_all(&logs)?;
    let log = std::fs::File::create(logs.join(format!("full-sync-run-{n}.log")))?;
    let mut child = tokio::process::Command::new(binary)
        .envs(stack.function_env())
        .env("AWS_ENDPOINT_URL_LAMBDA", &invoke_url)
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "full-sync")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", MEMORY_MB.to_string())
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/full-sync")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .context("starting full-sync")?;
    let pid = child.id().context("full-sync has a pid")?;
    match api.observe(Duration::from_secs(30)).await? {
        Observed::Next(_) => {}
        other => bail!("full-sync did not start: {other:?}"),
    }

    let (done_tx, done_rx) = watch::channel(false);
    let after_answer = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let drainers: Vec<_> = (0..knobs.drainers)
        .map(|_| {
            tokio::spawn(drainer(
                stack.sqs(),
                stack.outputs.bulk_queue_url.clone(),
                done_rx.clone(),
                after_answer.clone(),
            ))
        })
        .collect();

    let motos: Vec<u32> = stack
        .motos()
        .filter_map(|m| m.pid().and_then(moto_pid))
        .collect();
    let moto_before: Vec<f64> = motos.iter().map(|&p| cpu_seconds(p)).collect();
    let load_before = loadavg();
    let run_id = format!("bench-{n}");
    let payload = json!({"direction": "export", "chunk_size": knobs.chunk_size, "run_id": run_id});
    let started = Instant::now();
    let mut current = format!("full-sync-{n}-0");
    let mut invoked = 1;
    api.invoke_with_timeout(&current, payload.to_string(), TIMEOUT)
        .await;
    let report = loop {
        let observed = tokio::select! {
            observed = api.observe(TIMEOUT) => observed?,
            Some(body) = continuations.recv() => {
                current = format!("full-sync-{n}-{invoked}");
                invoked += 1;
                println!("continuation {invoked} after {:.0} s", started.elapsed().as_secs_f64());
                api.invoke_with_timeout(&current, body, TIMEOUT).await;
                continue;
            }
        };
        match observed {
            Observed::Answer { id, ok, body, .. } => {
                if !ok {
                    bail!("the full sync failed: {body}");
                }
                let report = serde_json::from_str::<Value>(&body).context("the run report")?;
                if id == current && report["continued"] != Value::Bool(true) {
                    break report;
                }
            }
            Observed::Next(_) => continue,
            other => bail!("unexpected {other:?}"),
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let answered = Instant::now();
    let moto_cpu_s: Vec<f64> = motos
        .iter()
        .zip(&moto_before)
        .map(|(&p, before)| cpu_seconds(p) - before)
        .collect();
    let load_after = loadavg();
    let peak_rss_mb = proc_status_kb(pid, "VmHWM:") as f64 / 1024.0;
    let function_cpu_s = cpu_seconds(pid);
    child.start_kill()?;
    let _ = child.wait().await;
    let _ = stop_invoke.send(());

    let _ = done_tx.send(true);
    let drain = if drainers.is_empty() {
        None
    } else {
        let parts = tokio::time::timeout(DRAIN_LIMIT, futures::future::try_join_all(drainers))
            .await
            .context("the drainers did not empty the bulk queue in time")??
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()?;
        let tail = answered.elapsed().as_secs_f64();
        Some(check(
            users,
            parts,
            after_answer.load(std::sync::atomic::Ordering::Relaxed),
            tail,
        ))
    };
    let (seq, invocations) = run_record(stack, &run_id).await?;
    // Every progress write is a chunk, except the one each continuation makes on starting.
    let chunks = seq.saturating_sub(invocations.saturating_sub(1));
    println!(
        "full sync of {users}: {seconds:.1} s, {chunks} chunks, {invocations} invocations, \
         {peak_rss_mb:.1} MB, function CPU {function_cpu_s:.1} s, moto CPU {moto_cpu_s:?}, {report}"
    );
    if let Some(d) = &drain {
        println!(
            "drained {} messages ({} message ids), {} distinct users, {} duplicates, {} missing, \
             {} unexpected; {} left at the answer, drained in {:.1} s",
            d.messages,
            d.message_ids,
            d.distinct,
            d.duplicates,
            d.missing,
            d.unexpected,
            d.after_answer,
            d.tail_seconds
        );
    }
    Ok(Measured {
        users,
        seed_seconds: 0.0,
        seconds,
        report,
        peak_rss_mb,
        function_cpu_s,
        moto_cpu_s,
        invocations,
        chunks,
        drain,
        load: (load_before, load_after),
    })
}
