//! CloudWatch metrics as Embedded Metric Format (EMF) lines on stdout.
//!
//! Lambda ships stdout to CloudWatch Logs, which turns each EMF line into metrics; no API call,
//! no extra latency. The lines are written directly (not through `tracing`), because the JSON
//! log formatter would wrap them and CloudWatch would no longer see EMF.
//!
//! Metrics are collected during an invocation and [`Metrics::flush`]ed once at its end. Points
//! with the same dimension values share a line; the EMF limits (100 metrics per directive, 100
//! values per metric) are respected by splitting lines.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

// Metric names: a contract with the dashboard and the alarms.
pub const EXPORT_SUCCEEDED: &str = "ExportSucceeded";
/// Dimension `ErrorClass`.
pub const EXPORT_FAILED: &str = "ExportFailed";
pub const EXPORT_SKIPPED: &str = "ExportSkipped";
pub const EXPORT_DEAD_LETTERED: &str = "ExportDeadLettered";
/// Milliseconds from the platform change (`changed_at`) to the successful write-back.
pub const SYNC_LATENCY: &str = "SyncLatency";
/// Milliseconds; dimension `Transport`.
pub const ONEC_CALL_LATENCY: &str = "OneCCallLatency";
pub const FILTER_ENQUEUED: &str = "FilterEnqueued";
pub const FILTER_IGNORED: &str = "FilterIgnored";
pub const FILTER_INVALID: &str = "FilterInvalid";
pub const FULL_SYNC_SCANNED: &str = "FullSyncScanned";
pub const FULL_SYNC_ENQUEUED: &str = "FullSyncEnqueued";
pub const IMPORT_APPLIED: &str = "ImportApplied";
pub const IMPORT_CONFLICTS: &str = "ImportConflicts";

/// Default namespace (`METRICS_NAMESPACE`).
pub const DEFAULT_NAMESPACE: &str = "OnecSync";

/// The dimension every metric carries.
pub const FUNCTION_DIMENSION: &str = "Function";

/// EMF limits (CloudWatch EMF specification).
const MAX_METRICS_PER_DIRECTIVE: usize = 100;
const MAX_VALUES_PER_METRIC: usize = 100;

/// The dimensions a metric may have besides `Function`. A closed set, because each distinct
/// combination of dimension values is a separately billed custom metric: ids never go here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    ErrorClass,
    Transport,
    Reason,
    Decision,
    Lane,
}

impl Dimension {
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::ErrorClass => "ErrorClass",
            Dimension::Transport => "Transport",
            Dimension::Reason => "Reason",
            Dimension::Decision => "Decision",
            Dimension::Lane => "Lane",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

type DimensionValues = BTreeMap<Dimension, String>;

#[derive(Debug, Default)]
struct Pending {
    /// dimension values → metric name → (unit, values), in a stable order.
    groups: BTreeMap<DimensionValues, BTreeMap<&'static str, (Unit, Vec<f64>)>>,
}

/// Collects metrics for one function and writes them as EMF.
#[derive(Debug)]
pub struct Metrics {
    namespace: String,
    function_name: String,
    pending: Mutex<Pending>,
}

impl Metrics {
    pub fn new(namespace: impl Into<String>, function_name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            function_name: function_name.into(),
            pending: Mutex::new(Pending::default()),
        }
    }

    /// Adds `n` to a count metric.
    pub fn count(&self, name: &'static str, n: u64, dims: &[(Dimension, &str)]) {
        // Precision loss only above 2^53 events in one invocation.
        self.record(name, Unit::Count, n as f64, dims);
    }

    /// Records one duration in milliseconds.
    pub fn duration_ms(&self, name: &'static str, ms: f64, dims: &[(Dimension, &str)]) {
        self.record(name, Unit::Milliseconds, ms.max(0.0), dims);
    }

    fn record(&self, name: &'static str, unit: Unit, value: f64, dims: &[(Dimension, &str)]) {
        let key: DimensionValues = dims.iter().map(|(d, v)| (*d, (*v).to_owned())).collect();
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (_, values) = pending
            .groups
            .entry(key)
            .or_default()
            .entry(name)
            .or_insert((unit, Vec::new()));
        // Counts are summed (CloudWatch only needs the sum); durations keep every value so
        // percentiles work.
        match (unit, values.first_mut()) {
            (Unit::Count, Some(total)) => *total += value,
            _ => values.push(value),
        }
    }

    /// Whether anything is waiting to be flushed.
    pub fn is_empty(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .groups
            .is_empty()
    }

    /// Writes everything collected so far as EMF lines (one JSON document per line) and forgets
    /// it. Nothing is written when nothing was collected.
    pub fn flush(&self, out: &mut impl Write) -> std::io::Result<()> {
        let pending = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let timestamp = chrono::Utc::now().timestamp_millis();
        for (dims, metrics) in &pending.groups {
            for line in self.lines(timestamp, dims, metrics) {
                serde_json::to_writer(&mut *out, &line)?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()
    }

    /// Flushes to stdout, the only place Lambda's EMF extraction looks.
    pub fn flush_to_stdout(&self) -> std::io::Result<()> {
        self.flush(&mut std::io::stdout().lock())
    }

    fn lines(
        &self,
        timestamp: i64,
        dims: &DimensionValues,
        metrics: &BTreeMap<&'static str, (Unit, Vec<f64>)>,
    ) -> Vec<Value> {
        let dimension_sets = dimension_sets(dims);
        // Slice every metric's values into chunks of at most 100 and put each chunk on the first
        // line that has room and does not carry that metric yet.
        let mut chunks: Vec<Vec<(&'static str, Unit, &[f64])>> = Vec::new();
        for (name, (unit, values)) in metrics {
            for chunk in values.chunks(MAX_VALUES_PER_METRIC) {
                let free = chunks.iter().position(|line| {
                    line.len() < MAX_METRICS_PER_DIRECTIVE && !line.iter().any(|m| m.0 == *name)
                });
                let index = free.unwrap_or_else(|| {
                    chunks.push(Vec::new());
                    chunks.len() - 1
                });
                chunks[index].push((name, *unit, chunk));
            }
        }
        chunks
            .into_iter()
            .map(|line| {
                let mut root = Map::new();
                root.insert(
                    FUNCTION_DIMENSION.into(),
                    Value::from(self.function_name.as_str()),
                );
                for (dim, value) in dims {
                    root.insert(dim.as_str().into(), Value::from(value.as_str()));
                }
                let definitions: Vec<Value> = line
                    .iter()
                    .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
                    .collect();
                for (name, _, values) in &line {
                    let value = match values {
                        [single] => json!(single),
                        many => json!(many),
                    };
                    root.insert((*name).into(), value);
                }
                root.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": timestamp,
                        "CloudWatchMetrics": [{
                            "Namespace": self.namespace,
                            "Dimensions": dimension_sets,
                            "Metrics": definitions,
                        }],
                    }),
                );
                Value::Object(root)
            })
            .collect()
    }
}

/// `[["Function"]]` for metrics without extra dimensions; otherwise also the full set, so alarms
/// can use the per-function total and dashboards the breakdown.
fn dimension_sets(dims: &DimensionValues) -> Vec<Vec<&'static str>> {
    let mut sets = vec![vec![FUNCTION_DIMENSION]];
    if !dims.is_empty() {
        let mut full = vec![FUNCTION_DIMENSION];
        full.extend(dims.keys().map(|d| d.as_str()));
        sets.push(full);
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flushed_lines(metrics: &Metrics) -> Vec<Value> {
        let mut buf = Vec::new();
        metrics.flush(&mut buf).expect("flush into a Vec");
        let text = String::from_utf8(buf).expect("EMF is UTF-8");
        assert!(text.is_empty() || text.ends_with('\n'));
        text.lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON document"))
            .collect()
    }

    /// Checks a line against the EMF specification: every metric in the directive is a root
    /// member holding a number or an array of at most 100 numbers, every dimension is a string
    /// root member, at most 100 metrics.
    fn assert_valid_emf(line: &Value) {
        let aws = &line["_aws"];
        assert!(aws["Timestamp"].as_i64().is_some_and(|t| t > 0));
        let directives = aws["CloudWatchMetrics"].as_array().expect("directives");
        for directive in directives {
            assert!(directive["Namespace"].is_string());
            for set in directive["Dimensions"].as_array().expect("dimension sets") {
                for key in set.as_array().expect("a dimension set") {
                    let key = key.as_str().expect("dimension key");
                    assert!(line[key].is_string(), "dimension {key} missing at the root");
                }
            }
            let defs = directive["Metrics"].as_array().expect("metric definitions");
            assert!(defs.len() <= MAX_METRICS_PER_DIRECTIVE);
            for def in defs {
                let name = def["Name"].as_str().expect("metric name");
                assert!(matches!(
                    def["Unit"].as_str(),
                    Some("Count" | "Milliseconds")
                ));
                match &line[name] {
                    Value::Number(_) => {}
                    Value::Array(values) => {
                        assert!(values.len() <= MAX_VALUES_PER_METRIC);
                        assert!(values.iter().all(Value::is_number));
                    }
                    other => panic!("metric {name} has no numeric value at the root: {other}"),
                }
            }
        }
    }

    #[test]
    fn a_flush_writes_one_emf_line_per_dimension_combination() {
        // Given successes, a latency and failures of two classes
        let metrics = Metrics::new("OnecSync", "exporter");
        metrics.count(EXPORT_SUCCEEDED, 1, &[]);
        metrics.count(EXPORT_SUCCEEDED, 1, &[]);
        metrics.duration_ms(SYNC_LATENCY, 1250.0, &[]);
        metrics.count(EXPORT_FAILED, 1, &[(Dimension::ErrorClass, "transient")]);
        metrics.count(EXPORT_FAILED, 1, &[(Dimension::ErrorClass, "permanent")]);

        // When flushed
        let lines = flushed_lines(&metrics);

        // Then there is one line without extra dimensions and one per error class
        assert_eq!(lines.len(), 3);
        lines.iter().for_each(assert_valid_emf);
        let plain = &lines[0];
        assert_eq!(plain["Function"], "exporter");
        assert_eq!(plain[EXPORT_SUCCEEDED], json!(2.0));
        assert_eq!(plain[SYNC_LATENCY], json!(1250.0));
        let directive = &plain["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "OnecSync");
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": EXPORT_SUCCEEDED, "Unit": "Count"},
                {"Name": SYNC_LATENCY, "Unit": "Milliseconds"}
            ])
        );
        let classes: Vec<&Value> = lines[1..].iter().map(|l| &l["ErrorClass"]).collect();
        assert_eq!(classes, vec!["permanent", "transient"]);
        assert_eq!(
            lines[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function"], ["Function", "ErrorClass"]])
        );
        assert_eq!(lines[1][EXPORT_FAILED], json!(1.0));
    }

    #[test]
    fn more_than_a_hundred_values_are_split_across_lines() {
        // Given 250 latency values
        let metrics = Metrics::new("OnecSync", "exporter");
        for i in 0..250 {
            metrics.duration_ms(
                ONEC_CALL_LATENCY,
                f64::from(i),
                &[(Dimension::Transport, "json")],
            );
        }

        // When flushed
        let lines = flushed_lines(&metrics);

        // Then three valid lines carry all 250 values
        assert_eq!(lines.len(), 3);
        lines.iter().for_each(assert_valid_emf);
        let total: usize = lines
            .iter()
            .map(|l| l[ONEC_CALL_LATENCY].as_array().map_or(1, Vec::len))
            .sum();
        assert_eq!(total, 250);
        assert!(lines.iter().all(|l| l["Transport"] == "json"));
    }

    #[test]
    fn more_than_a_hundred_metric_names_are_split_across_directives() {
        // Given 101 distinct metric names (leaked to get the &'static the API asks for)
        let metrics = Metrics::new("OnecSync", "exporter");
        for i in 0..101 {
            let name: &'static str = Box::leak(format!("Metric{i:03}").into_boxed_str());
            metrics.count(name, 1, &[]);
        }

        // When flushed
        let lines = flushed_lines(&metrics);

        // Then two valid lines define 101 metrics between them
        assert_eq!(lines.len(), 2);
        lines.iter().for_each(assert_valid_emf);
        let defined: usize = lines
            .iter()
            .map(|l| {
                l["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                    .as_array()
                    .map_or(0, Vec::len)
            })
            .sum();
        assert_eq!(defined, 101);
    }

    #[test]
    fn a_flush_forgets_what_it_wrote_and_an_empty_flush_writes_nothing() {
        let metrics = Metrics::new("OnecSync", "exporter");
        metrics.count(EXPORT_SKIPPED, 2, &[]);
        assert_eq!(flushed_lines(&metrics).len(), 1);
        assert!(metrics.is_empty());
        assert!(flushed_lines(&metrics).is_empty());
    }
}
