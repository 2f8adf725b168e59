//! Full sync: the release `full-sync` bootstrap against the local Runtime API (15-minute
//! deadline as in the template), moto holding the users, one `export` run per table size. The
//! issue asks for 100,000 users; moto's scan does not get there on this machine (a 10,000-user
//! run had not finished after 8 minutes with moto's Python process at 85 % CPU), so the default
//! sizes are small and `--users` takes others for a faster endpoint.

use crate::doc;
use crate::runtime_api::{Observed, RuntimeApi};
use crate::stack::{row, LocalStack};
use anyhow::{bail, Context as _};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

const CHUNK_SIZE: u32 = 500;
const MEMORY_MB: u32 = 512;
const TIMEOUT: Duration = Duration::from_secs(900);

struct Measured {
    users: usize,
    seconds: f64,
    report: Value,
    peak_rss_mb: f64,
}

pub async fn run(sizes: &[usize]) -> anyhow::Result<()> {
    anyhow::ensure!(sizes.len() >= 2, "give at least two table sizes");
    let root = doc::workspace_root();
    let binary = root.join("target/release/full-sync");
    if !binary.exists() {
        bail!(
            "{} is missing: cargo build --release -p full-sync",
            binary.display()
        );
    }
    let stack = LocalStack::start("fullsync", 0).await?;
    let mut seeded = 0;
    let mut results = Vec::new();
    for (n, &users) in sizes.iter().enumerate() {
        let started = Instant::now();
        seed(&stack, seeded, users).await?;
        println!(
            "seeded {users} users in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        seeded = users;
        results.push(measure(&stack, &binary, users, n).await?);
    }
    let mut table = String::from(
        "| Users | Run time | Users/s | Chunks of 500 (invocations) | Scanned | Enqueued | Errors | Peak RSS |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let mut figures = Vec::new();
    for m in &results {
        let counter = |k: &str| m.report["counters"][k].as_u64().unwrap_or(0);
        let scanned = counter("scanned");
        table.push_str(&format!(
            "| {} | {:.1} s | {:.0} | {} (1) | {scanned} | {} | {} | {:.1} MB |\n",
            m.users,
            m.seconds,
            m.users as f64 / m.seconds,
            scanned.div_ceil(u64::from(CHUNK_SIZE)),
            counter("enqueued"),
            counter("errors"),
            m.peak_rss_mb,
        ));
        figures.push(
            json!({"users": m.users, "seconds": m.seconds, "peak_rss_mb": m.peak_rss_mb,
                            "report": m.report}),
        );
    }
    doc::save_figures("full_sync", &Value::Array(figures))?;
    let (first, last) = (&results[0], &results[results.len() - 1]);
    let growth = last.peak_rss_mb - first.peak_rss_mb;
    let body = format!(
        "### Full sync (issue target: 100,000 users — not reached on moto, see below)\n\n\
         The release `full-sync` bootstrap against the local Runtime API (512 MB, 15-minute \
         deadline as in the template), moto as DynamoDB and SQS, one \
         `{{\"direction\":\"export\",\"chunk_size\":{CHUNK_SIZE}}}` run over rows that all need \
         exporting (every one is enqueued on the bulk queue; no exporter drains it here). Run \
         time is the invocation's; moto, a Python process on the same 2 cores, is far slower \
         than DynamoDB and SQS, so these are upper bounds. Peak RSS is the process's VmHWM.\n\n\
         {table}\n\
         Memory from {} to {} users: {growth:+.1} MB, consistent with a run that holds one \
         chunk at a time. \
         **Not measured: 100,000 users.** moto is the bottleneck, and it grows quadratically: \
         its scan reads the whole table for every page (0.16 s per page of 500 at 5,000 rows, \
         0.4 s at 20,000) and its `SendMessageBatch` takes time proportional to the queue's \
         length (21 ms per call with 200 messages queued, 144 ms with 1,000; measured with boto3 \
         against moto alone). A 10,000-user run with drainers emptying the bulk queue as the \
         exporter would reached 4,500 users after 6 minutes (about 12 users/s) with moto's \
         single Python process at 100 % CPU and the function idle, so 100,000 would take hours \
         and measure moto. `onec-bench full-sync --users 10000,100000` runs the issue's sizes \
         against any endpoint.\n",
        first.users, last.users
    );
    doc::write_section("full-sync", &body)
}

/// Writes rows `from..to`, eight BatchWriteItem calls at a time.
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
                        serde_dynamo::to_item(row(&format!("fs-{i}")))?;
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
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

fn rss_kb(pid: u32, field: &str) -> u64 {
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

async fn measure(
    stack: &LocalStack,
    binary: &std::path::Path,
    users: usize,
    n: usize,
) -> anyhow::Result<Measured> {
    let mut api = RuntimeApi::start().await?;
    let logs = doc::workspace_root().join("target/bench/logs");
    std::fs::create_dir_all(&logs)?;
    let log = std::fs::File::create(logs.join(format!("full-sync-run-{n}.log")))?;
    let mut child = tokio::process::Command::new(binary)
        .envs(stack.function_env())
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
    let id = format!("full-sync-{n}");
    let payload =
        json!({"direction": "export", "chunk_size": CHUNK_SIZE, "run_id": format!("bench-{n}")});
    let started = Instant::now();
    api.invoke_with_timeout(&id, payload.to_string(), TIMEOUT)
        .await;
    let report = loop {
        match api.observe(TIMEOUT).await? {
            Observed::Answer {
                id: got, ok, body, ..
            } if got == id => {
                if !ok {
                    bail!("the full sync failed: {body}");
                }
                break serde_json::from_str::<Value>(&body).context("the run report")?;
            }
            Observed::Next(_) => continue,
            other => bail!("unexpected {other:?}"),
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let peak_rss_mb = rss_kb(pid, "VmHWM:") as f64 / 1024.0;
    child.start_kill()?;
    let _ = child.wait().await;
    println!("full sync of {users}: {seconds:.1} s, {peak_rss_mb:.1} MB, {report}");
    Ok(Measured {
        users,
        seconds,
        report,
        peak_rss_mb,
    })
}
