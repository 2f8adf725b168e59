//! The `replay` command as a process-level measure of the filter's cost: the release binary over
//! a generated capture of stream events (the sample batch's record kinds, each user distinct),
//! its own decision rate, and the process's wall time and peak RSS (`/usr/bin/time`).

use crate::doc;
use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use std::process::Command;

const EVENTS: usize = 400;
const RECORDS_PER_EVENT: usize = 100;

pub fn run() -> anyhow::Result<()> {
    let root = doc::workspace_root();
    let binary = root.join("target/release/replay");
    if !binary.exists() {
        bail!(
            "{} is missing: cargo build --release -p stream-filter --bin replay",
            binary.display()
        );
    }
    let sample: Value = serde_json::from_str(&std::fs::read_to_string(
        root.join("events/dynamodb-batch.json"),
    )?)?;
    let templates = sample["Records"]
        .as_array()
        .context("the sample has records")?
        .clone();
    let capture = root.join("target/bench/replay-capture.jsonl");
    if let Some(dir) = capture.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut lines = String::new();
    let mut seq: u128 = 200_000_000_000_000_000_000;
    for e in 0..EVENTS {
        let mut records = Vec::with_capacity(RECORDS_PER_EVENT);
        for r in 0..RECORDS_PER_EVENT {
            let mut record = templates[r % templates.len()].clone();
            let id = format!("u-{e}-{r}");
            seq += 1;
            record["eventID"] = json!(format!("e{seq}"));
            record["dynamodb"]["SequenceNumber"] = json!(seq.to_string());
            record["dynamodb"]["Keys"]["id"]["S"] = json!(id);
            for image in ["NewImage", "OldImage"] {
                if record["dynamodb"].get(image).is_some() {
                    record["dynamodb"][image]["id"]["S"] = json!(id);
                }
            }
            records.push(record);
        }
        lines.push_str(&json!({ "Records": records }).to_string());
        lines.push('\n');
    }
    std::fs::write(&capture, &lines)?;

    let output = Command::new("/usr/bin/time")
        .args(["-f", "time %e %M"])
        .arg(&binary)
        .arg("--quiet")
        .arg(&capture)
        .output()
        .context("running /usr/bin/time replay")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("replay failed: {stderr}");
    }
    let timing = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("time "))
        .context("/usr/bin/time printed its figures")?;
    let mut parts = timing.split_whitespace();
    let wall_s: f64 = parts.next().context("wall time")?.parse()?;
    let peak_kb: f64 = parts.next().context("max RSS")?.parse()?;
    let rate_line = stdout
        .lines()
        .find(|l| l.starts_with("# rate"))
        .context("replay printed its rate")?;
    let ns_per_record: f64 = rate_line
        .split('\t')
        .find_map(|f| f.strip_suffix(" ns/record"))
        .context("ns/record in the rate line")?
        .parse()?;
    let records = EVENTS * RECORDS_PER_EVENT;
    let summary: Vec<&str> = stdout.lines().filter(|l| l.starts_with("# ")).collect();
    doc::save_figures(
        "replay",
        &json!({"records": records, "wall_s": wall_s, "peak_rss_mb": peak_kb / 1024.0,
                "decide_ns_per_record": ns_per_record}),
    )?;
    let body = format!(
        "### `replay`: the filter over a capture, as a process\n\n\
         `target/release/replay --quiet` over {records} records ({EVENTS} events of \
         {RECORDS_PER_EVENT}, the kinds of events/dynamodb-batch.json, every user distinct; \
         {:.1} MB of JSON; the file is read whole, events are parsed one at a time):\n\n\
         | Records | Wall time (parse + decide + handler dry run) | Records/s overall | Decision and its output line | Peak RSS |\n|---:|---:|---:|---:|---:|\n\
         | {records} | {wall_s:.2} s | {:.0} | {ns_per_record:.0} ns/record | {:.1} MB |\n\n\
         Its summary:\n\n```text\n{}\n```\n\n\
         Operators: `cargo run --release -p stream-filter --bin replay -- <file|->` prints one \
         line per record (`sequence  event  user-id  decision  lane/reason`), never row data; \
         `--significant-fields`, `--mapping` and `--remove-policy` replay with another policy.\n",
        lines.len() as f64 / 1e6,
        records as f64 / wall_s.max(1e-3),
        peak_kb / 1024.0,
        summary.join("\n"),
    );
    doc::write_section("replay", &body)
}
