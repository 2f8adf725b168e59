//! Invariants of the infrastructure, checked on the CloudFormation the SAM template expands to
//! (`infra/transform.py`, offline): that is what CloudFormation receives, including the event
//! source mappings and schedules SAM generates.
//!
//! Resources are found through their relations (the queue an event source mapping reads, the
//! queue a schedule dead-letters to), not by logical id, so a rename cannot hide a missing alarm.

use aws_lambda_events::event::dynamodb::EventRecord;
use local_stack::spec;
use serde_json::{json, Map, Value};
use shared::filter::{decide, Decision, FilterPolicy, RemovePolicy};
use shared::metrics as emitted;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

// ---------------------------------------------------------------- loading

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package sits inside the repository")
        .to_path_buf()
}

/// The venv `make setup` creates; `VENV` overrides it (relative paths are from the repo root).
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("VENV").map_or_else(|| PathBuf::from(".venv"), PathBuf::from);
    let venv = if venv.is_absolute() {
        venv
    } else {
        repo_root().join(venv)
    };
    venv.join("bin").join("python")
}

fn template() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let root = repo_root();
        let python = venv_python();
        let output = Command::new(&python)
            .arg(root.join("infra/transform.py"))
            .arg(root.join("infra/template.yaml"))
            .arg("-")
            .current_dir(&root)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} ({e}); run `make setup`", python.display()));
        assert!(
            output.status.success(),
            "the SAM transform failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("the transform prints one JSON document")
    })
}

fn resources() -> &'static Map<String, Value> {
    template()["Resources"]
        .as_object()
        .expect("the template has Resources")
}

fn resource(id: &str) -> &'static Value {
    resources()
        .get(id)
        .unwrap_or_else(|| panic!("no resource {id}"))
}

fn props(id: &str) -> &'static Value {
    &resource(id)["Properties"]
}

fn of_type(kind: &str) -> Vec<(&'static str, &'static Value)> {
    resources()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.as_str(), &r["Properties"]))
        .collect()
}

// ---------------------------------------------------------------- intrinsics

/// Values standing in for the pseudo parameters when resolving names and ARNs.
const STACK: &str = "test-stack";
const REGION: &str = "eu-central-1";
const ACCOUNT: &str = "123456789012";

fn pseudo(name: &str) -> Option<Value> {
    Some(json!(match name {
        "AWS::StackName" => STACK,
        "AWS::Region" => REGION,
        "AWS::AccountId" => ACCOUNT,
        "AWS::Partition" => "aws",
        "AWS::URLSuffix" => "amazonaws.com",
        _ => return None,
    }))
}

fn parameter_default(name: &str) -> Option<Value> {
    template()["Parameters"].get(name)?.get("Default").cloned()
}

/// Resolves literals, parameter and pseudo-parameter references and `Fn::Sub` over them;
/// `None` when the value depends on a resource.
fn resolve(value: &Value) -> Option<Value> {
    match value {
        Value::Object(map) if map.len() == 1 => {
            let (function, argument) = map.iter().next()?;
            match function.as_str() {
                "Ref" => {
                    let name = argument.as_str()?;
                    pseudo(name).or_else(|| parameter_default(name))
                }
                "Fn::Sub" => {
                    let (text, vars) = match argument {
                        Value::String(text) => (text.as_str(), None),
                        Value::Array(parts) => (parts.first()?.as_str()?, parts.get(1)),
                        _ => return None,
                    };
                    substitute(text, |name| match vars.and_then(|v| v.get(name)) {
                        Some(bound) => resolve(bound).map(|v| text_of(&v)),
                        None => resolve(&json!({ "Ref": name })).map(|v| text_of(&v)),
                    })
                    .map(Value::String)
                }
                _ => None,
            }
        }
        Value::Object(_) => None,
        other => Some(other.clone()),
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces every `${name}` in `text` by `lookup(name)`; `None` if any lookup fails.
fn substitute(text: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}')?;
        out.push_str(&lookup(&after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn number(value: &Value) -> u64 {
    match resolve(value) {
        Some(Value::Number(n)) => n.as_u64().expect("a non-negative integer"),
        Some(Value::String(s)) => s.parse().unwrap_or_else(|_| panic!("{s} is not a number")),
        other => panic!("{value} does not resolve to a number: {other:?}"),
    }
}

/// The logical id a `Ref` or `Fn::GetAtt` points at.
fn target_of(value: &Value) -> Option<&str> {
    if let Some(id) = value.get("Ref").and_then(Value::as_str) {
        return resources().contains_key(id).then_some(id);
    }
    match value.get("Fn::GetAtt")? {
        Value::Array(parts) => parts.first()?.as_str(),
        Value::String(dotted) => dotted.split('.').next(),
        _ => None,
    }
}

// ---------------------------------------------------------------- the pipeline's resources

fn mappings() -> Vec<(&'static str, &'static Value)> {
    of_type("AWS::Lambda::EventSourceMapping")
}

fn is_queue(id: &str) -> bool {
    resources()
        .get(id)
        .is_some_and(|r| r["Type"] == "AWS::SQS::Queue")
}

/// Mappings reading an SQS queue: (queue id, mapping properties).
fn queue_mappings() -> Vec<(&'static str, &'static Value)> {
    mappings()
        .into_iter()
        .filter_map(|(_, p)| {
            let source = target_of(&p["EventSourceArn"])?;
            is_queue(source).then_some((source, p))
        })
        .collect()
}

/// The one mapping that reads the users-table stream.
fn stream_mapping() -> &'static Value {
    let streams: Vec<_> = mappings()
        .into_iter()
        .filter(|(_, p)| !target_of(&p["EventSourceArn"]).is_some_and(is_queue))
        .collect();
    assert_eq!(streams.len(), 1, "exactly one stream mapping: {streams:?}");
    streams[0].1
}

fn function_of(mapping: &'static Value) -> &'static str {
    target_of(&mapping["FunctionName"]).expect("a mapping names a function of this stack")
}

fn exporter() -> &'static str {
    let functions: BTreeSet<_> = queue_mappings()
        .into_iter()
        .map(|(_, p)| function_of(p))
        .collect();
    assert_eq!(functions.len(), 1, "one exporter reads every export queue");
    functions.into_iter().next().expect("checked above")
}

fn env_var(function: &str, name: &str) -> &'static Value {
    props(function)["Environment"]["Variables"]
        .get(name)
        .unwrap_or_else(|| panic!("{function} has no {name}"))
}

fn export_dlq() -> &'static str {
    let dlqs: BTreeSet<_> = queue_mappings()
        .into_iter()
        .map(|(queue, _)| {
            target_of(&props(queue)["RedrivePolicy"]["deadLetterTargetArn"])
                .unwrap_or_else(|| panic!("{queue} has no redrive policy to a queue of this stack"))
        })
        .collect();
    assert_eq!(dlqs.len(), 1, "both export queues share one DLQ");
    dlqs.into_iter().next().expect("checked above")
}

fn queue_arn(queue: &str) -> String {
    let name = resolve(&props(queue)["QueueName"])
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("{queue} needs a name known before it exists"));
    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
}

// ---------------------------------------------------------------- event source mappings

#[test]
fn every_event_source_mapping_reports_partial_batch_failures() {
    // Given every mapping CloudFormation would create
    let all = mappings();
    assert_eq!(all.len(), 3, "stream + priority + bulk: {all:?}");

    // Then each one lets the function fail single records instead of the whole batch
    for (id, p) in all {
        assert_eq!(
            p["FunctionResponseTypes"],
            json!(["ReportBatchItemFailures"]),
            "{id}"
        );
    }
}

#[test]
fn the_stream_mapping_isolates_failing_records_and_sets_them_aside_after_bounded_retries() {
    // Given the users-table stream mapping
    let p = stream_mapping();

    // Then a failing record is bisected out, retried a bounded number of times for a bounded
    // time, and then reported to a queue of this stack instead of blocking the shard
    assert_eq!(p["BisectBatchOnFunctionError"], json!(true));
    let retries = number(&p["MaximumRetryAttempts"]);
    assert!((1..=10_000).contains(&retries), "retries {retries}");
    let max_age = number(&p["MaximumRecordAgeInSeconds"]);
    assert!((60..=86_400).contains(&max_age), "max record age {max_age}");
    let destination = target_of(&p["DestinationConfig"]["OnFailure"]["Destination"]);
    assert!(
        destination.is_some_and(is_queue),
        "on-failure {destination:?}"
    );
    assert_eq!(p["MetricsConfig"]["Metrics"], json!(["EventCount"]));
    let filters = p["FilterCriteria"]["Filters"].as_array().expect("filters");
    assert!(!filters.is_empty() && filters.len() <= 5, "{filters:?}");
}

/// The subset of Lambda's event-filter syntax the template uses: nested objects, literal values
/// and `exists`. Anything else fails loudly so the test is extended rather than fooled.
fn pattern_matches(pattern: &Value, event: &Value) -> bool {
    let Value::Object(fields) = pattern else {
        panic!("a pattern level must be an object: {pattern}");
    };
    fields.iter().all(|(key, rule)| {
        let value = event.get(key);
        match rule {
            Value::Object(_) => pattern_matches(rule, value.unwrap_or(&json!({}))),
            Value::Array(alternatives) => alternatives.iter().any(|alt| match alt {
                Value::Object(op) => match op.get("exists") {
                    Some(Value::Bool(expected)) if op.len() == 1 => value.is_some() == *expected,
                    _ => panic!("filter operator not understood by this test: {alt}"),
                },
                literal => value == Some(literal),
            }),
            _ => panic!("a pattern leaf must be an array: {rule}"),
        }
    })
}

fn passes_stream_filter(record: &Value) -> bool {
    stream_mapping()["FilterCriteria"]["Filters"]
        .as_array()
        .expect("filters")
        .iter()
        .any(|f| {
            let pattern: Value = serde_json::from_str(f["Pattern"].as_str().expect("a string"))
                .expect("a filter pattern is JSON");
            pattern_matches(&pattern, record)
        })
}

fn stream_record(event_name: &str, old: Option<Value>, new: Option<Value>) -> Value {
    let mut dynamodb =
        json!({"Keys": {"id": {"S": "u-1"}}, "StreamViewType": "NEW_AND_OLD_IMAGES"});
    if let Some(old) = old {
        dynamodb["OldImage"] = old;
    }
    if let Some(new) = new {
        dynamodb["NewImage"] = new;
    }
    json!({"eventName": event_name, "eventSource": "aws:dynamodb", "dynamodb": dynamodb})
}

#[test]
fn the_stream_filter_keeps_platform_changes_and_removals_and_drops_users_created_in_1c() {
    // Given stream records as Lambda's filter sees them
    let platform_user = json!({"id": {"S": "u-1"}, "email": {"S": "a@b.ru"}});
    let flagged_platform_user = json!({"id": {"S": "u-1"}, "created_in_1c": {"BOOL": false}});
    let from_1c = json!({"id": {"S": "u-1"}, "created_in_1c": {"BOOL": true}});

    // Then platform inserts and updates reach the filter function, with or without the flag
    assert!(passes_stream_filter(&stream_record(
        "INSERT",
        None,
        Some(platform_user.clone())
    )));
    assert!(passes_stream_filter(&stream_record(
        "MODIFY",
        Some(platform_user.clone()),
        Some(flagged_platform_user.clone())
    )));
    // And users the 1C import created never cost an invocation
    assert!(!passes_stream_filter(&stream_record(
        "INSERT",
        None,
        Some(from_1c.clone())
    )));
    assert!(!passes_stream_filter(&stream_record(
        "MODIFY",
        Some(from_1c.clone()),
        Some(from_1c.clone())
    )));
    // And every removal is kept for REMOVE_POLICY to judge, whoever created the user
    assert!(passes_stream_filter(&stream_record(
        "REMOVE",
        Some(platform_user),
        None
    )));
    assert!(passes_stream_filter(&stream_record(
        "REMOVE",
        Some(from_1c),
        None
    )));
}

/// Every record of the example stream events in events/dynamodb-*.json.
fn example_stream_records() -> Vec<Value> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo_root().join("events"))
        .expect("events/")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("dynamodb-") && n.ends_with(".json"))
        })
        .collect();
    paths.sort();
    paths
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).expect("readable example");
            let event: Value = serde_json::from_str(&text).expect("example events are JSON");
            event["Records"].as_array().cloned().unwrap_or_default()
        })
        .collect()
}

#[test]
fn the_stream_filter_never_drops_a_record_the_function_would_export() {
    // Given the example stream records and the function's own decision rules
    let records = example_stream_records();
    let fields = [
        "email",
        "phone",
        "first_name",
        "last_name",
        "company_name",
        "tax_id",
        "kpp",
        "role",
        "status",
    ];
    let mut dropped = 0;

    for remove_policy in [RemovePolicy::Deactivate, RemovePolicy::Ignore] {
        let policy = FilterPolicy::new(fields, remove_policy);
        for record in &records {
            // When the mapping's filter drops a record
            if passes_stream_filter(record) {
                continue;
            }
            dropped += 1;
            // Then the function would have ignored it anyway
            let typed: EventRecord =
                serde_json::from_value(record.clone()).expect("a Lambda stream record");
            let decision = decide(&typed, &policy);
            assert!(
                matches!(decision, Ok(Decision::Ignore(_))),
                "{} dropped, but the function decides {decision:?}",
                record["eventID"]
            );
        }
    }
    assert!(
        dropped > 0,
        "the examples include a record the filter drops"
    );
}

// ---------------------------------------------------------------- queues

#[test]
fn export_queues_dead_letter_after_exactly_the_exporters_attempt_budget() {
    // Given the queues the exporter reads and its attempt budget
    let queues = queue_mappings();
    assert_eq!(queues.len(), 2, "priority and bulk");
    let attempts = env_var(exporter(), "MAX_EXPORT_ATTEMPTS");

    for (queue, _) in queues {
        let redrive = &props(queue)["RedrivePolicy"];
        // Then SQS gives up after the same number of receives the exporter counts with: the
        // very same expression, so overriding the parameter moves both
        assert_eq!(&redrive["maxReceiveCount"], attempts, "{queue}");
        // And AWS's advice of at least 5 receives (throttling can use some up) holds by default
        assert!(number(&redrive["maxReceiveCount"]) >= 5, "{queue}");
    }
}

#[test]
fn a_message_retried_as_often_and_as_late_as_the_parameters_allow_reaches_the_dlq_before_it_expires(
) {
    // Given the largest attempt budget and backoff the template accepts
    let parameters = &template()["Parameters"];
    let attempts = number(&parameters["MaxExportAttempts"]["MaxValue"]);
    let cap = number(&parameters["BackoffCapSecs"]["MaxValue"]);
    for (queue, _) in queue_mappings() {
        let p = props(queue);
        // Then every delivery's visibility and every backoff between them fit in the queue's
        // retention (an expired message is gone, never dead-lettered)
        let longest = attempts * number(&p["VisibilityTimeout"]) + (attempts - 1) * cap;
        let retention = number(&p["MessageRetentionPeriod"]);
        assert!(
            longest < retention,
            "{queue}: {longest} s against {retention} s"
        );
    }
}

#[test]
fn the_dlq_accepts_redrives_only_from_its_sources_and_outlives_them() {
    // Given the export DLQ and the queues that feed it
    let dlq = props(export_dlq());
    let sources: BTreeSet<String> = queue_mappings()
        .into_iter()
        .map(|(q, _)| queue_arn(q))
        .collect();

    // Then only those queues may redrive into it
    let allow = &dlq["RedriveAllowPolicy"];
    assert_eq!(allow["redrivePermission"], "byQueue");
    let allowed: BTreeSet<String> = allow["sourceQueueArns"]
        .as_array()
        .expect("sourceQueueArns")
        .iter()
        .map(|arn| text_of(&resolve(arn).expect("a source ARN resolves")))
        .collect();
    assert_eq!(allowed, sources);

    // And a dead letter is kept longer than any message could live in its source (SQS counts
    // retention from the original enqueue time)
    let dlq_retention = number(&dlq["MessageRetentionPeriod"]);
    for (queue, _) in queue_mappings() {
        assert!(
            dlq_retention > number(&props(queue)["MessageRetentionPeriod"]),
            "{queue}"
        );
    }
}

#[test]
fn queue_visibility_is_at_least_six_times_the_exporter_timeout() {
    for (queue, mapping) in queue_mappings() {
        // Given a queue and the function reading it
        let timeout = number(&props(function_of(mapping))["Timeout"]);
        // Then a slow invocation's messages do not reappear while it still works on them
        let visibility = number(&props(queue)["VisibilityTimeout"]);
        assert!(
            visibility >= 6 * timeout,
            "{queue}: {visibility} < 6 x {timeout}"
        );
    }
}

#[test]
fn export_queues_are_encrypted_and_capped_with_priority_above_bulk() {
    // Given the exporter's queue mappings, keyed by the queue URL variable naming them
    let exporter = exporter();
    let concurrency_of = |url_var: &str| {
        let queue = target_of(env_var(exporter, url_var)).expect("a queue of this stack");
        let (_, mapping) = queue_mappings()
            .into_iter()
            .find(|(q, _)| *q == queue)
            .unwrap_or_else(|| panic!("the exporter does not read {queue}"));
        assert_eq!(number(&mapping["BatchSize"]), 10, "{queue}");
        assert_eq!(props(queue)["SqsManagedSseEnabled"], json!(true), "{queue}");
        number(&mapping["ScalingConfig"]["MaximumConcurrency"])
    };

    // Then new registrations get more of 1C than the full sync's backlog
    assert!(concurrency_of("PRIORITY_QUEUE_URL") > concurrency_of("BULK_QUEUE_URL"));
}

// ---------------------------------------------------------------- alarms

fn alarms() -> Vec<(&'static str, &'static Value)> {
    of_type("AWS::CloudWatch::Alarm")
}

/// Alarms on `metric` whose dimension `dimension` points at resource `target`.
fn alarms_on(metric: &str, dimension: &str, target: &str) -> Vec<&'static Value> {
    alarms()
        .into_iter()
        .filter(|(_, p)| p["MetricName"] == metric)
        .filter(|(_, p)| {
            p["Dimensions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["Name"] == dimension && target_of(&d["Value"]) == Some(target))
        })
        .map(|(_, p)| p)
        .collect()
}

fn assert_fires_above(alarm: &Value, statistic: &str, threshold: u64) {
    assert_eq!(alarm["Statistic"], statistic, "{alarm}");
    assert_eq!(
        alarm["ComparisonOperator"], "GreaterThanThreshold",
        "{alarm}"
    );
    assert_eq!(number(&alarm["Threshold"]), threshold, "{alarm}");
    assert_eq!(alarm["TreatMissingData"], "notBreaching", "{alarm}");
}

fn queue_not_empty_alarm(queue: &str) -> &'static Value {
    let found = alarms_on("ApproximateNumberOfMessagesVisible", "QueueName", queue);
    assert_eq!(found.len(), 1, "one not-empty alarm on {queue}");
    assert_fires_above(found[0], "Maximum", 0);
    found[0]
}

#[test]
fn every_dead_letter_destination_alarms_on_its_first_message() {
    // Given the three places failures are parked
    let export_dlq = export_dlq();
    let stream_failures =
        target_of(&stream_mapping()["DestinationConfig"]["OnFailure"]["Destination"])
            .expect("the stream's on-failure queue");
    let schedules = of_type("AWS::Scheduler::Schedule");
    assert_eq!(schedules.len(), 1, "one full-sync schedule");
    let schedule = schedules[0].1;
    let schedule_dlq = target_of(&schedule["Target"]["DeadLetterConfig"]["Arn"])
        .expect("the schedule dead-letters to a queue of this stack");

    // Then each of them raises an alarm as soon as something lands there
    for queue in [export_dlq, stream_failures, schedule_dlq] {
        queue_not_empty_alarm(queue);
    }
    // And the schedule retries on its own before dead-lettering
    assert!(number(&schedule["Target"]["RetryPolicy"]["MaximumRetryAttempts"]) >= 1);
}

#[test]
fn a_priority_export_waiting_over_ten_minutes_raises_an_alarm() {
    let priority = target_of(env_var(exporter(), "PRIORITY_QUEUE_URL")).expect("priority queue");
    let found = alarms_on("ApproximateAgeOfOldestMessage", "QueueName", priority);
    assert_eq!(found.len(), 1);
    assert_fires_above(found[0], "Maximum", 600);
}

#[test]
fn the_stream_filter_falling_behind_raises_an_alarm() {
    let filter = function_of(stream_mapping());
    let found = alarms_on("IteratorAge", "FunctionName", filter);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["Statistic"], "Maximum");
    assert_eq!(found[0]["ComparisonOperator"], "GreaterThanThreshold");
}

#[test]
fn every_function_alarms_on_errors_and_throttles() {
    let functions = of_type("AWS::Lambda::Function");
    assert_eq!(functions.len(), 3, "filter, exporter, full sync");
    for (function, _) in functions {
        for metric in ["Errors", "Throttles"] {
            let found = alarms_on(metric, "FunctionName", function);
            assert_eq!(found.len(), 1, "{metric} alarm for {function}");
            assert_fires_above(found[0], "Sum", 0);
        }
    }
}

#[test]
fn the_success_rate_alarm_weighs_successes_against_failures_and_ignores_silence() {
    // Given the metric-math alarm over the export outcomes
    let found: Vec<_> = alarms()
        .into_iter()
        .filter(|(_, p)| p["Metrics"].is_array())
        .map(|(_, p)| p)
        .collect();
    assert_eq!(found.len(), 1, "one metric-math alarm");
    let alarm = found[0];
    let queries = alarm["Metrics"].as_array().expect("metric queries");
    let metric_id = |name: &str| {
        queries
            .iter()
            .find(|q| q["MetricStat"]["Metric"]["MetricName"] == name)
            .and_then(|q| q["Id"].as_str())
            .unwrap_or_else(|| panic!("{name} is queried"))
    };
    let (ok, failed) = (
        metric_id(emitted::EXPORT_SUCCEEDED),
        metric_id(emitted::EXPORT_FAILED),
    );

    // Then the returned series divides successes by all outcomes, only when there were any
    let returned: Vec<_> = queries.iter().filter(|q| q["ReturnData"] == true).collect();
    assert_eq!(returned.len(), 1);
    let expression = returned[0]["Expression"].as_str().expect("an expression");
    assert!(expression.starts_with("IF("), "{expression}");
    assert!(
        expression.contains(ok) && expression.contains(failed),
        "{expression}"
    );
    assert_eq!(alarm["ComparisonOperator"], "LessThanThreshold");
    assert_eq!(number(&alarm["Threshold"]), 95);
    assert_eq!(alarm["TreatMissingData"], "notBreaching");
}

#[test]
fn every_alarm_notifies_the_alarm_topic() {
    let topics = of_type("AWS::SNS::Topic");
    assert_eq!(topics.len(), 1);
    let topic = topics[0].0;
    for (id, p) in alarms() {
        let actions = p["AlarmActions"].as_array().expect("AlarmActions");
        assert!(
            actions.iter().any(|a| target_of(a) == Some(topic)),
            "{id} notifies nobody"
        );
    }
}

// ---------------------------------------------------------------- metrics contract

/// Every metric name the code emits, through the shared crate's constants.
fn emitted_metrics() -> BTreeSet<&'static str> {
    BTreeSet::from([
        emitted::EXPORT_SUCCEEDED,
        emitted::EXPORT_FAILED,
        emitted::EXPORT_SKIPPED,
        emitted::EXPORT_DEAD_LETTERED,
        emitted::SYNC_LATENCY,
        emitted::ONEC_CALL_LATENCY,
        emitted::FILTER_ENQUEUED,
        emitted::FILTER_IGNORED,
        emitted::FILTER_INVALID,
        emitted::FULL_SYNC_SCANNED,
        emitted::FULL_SYNC_ENQUEUED,
        emitted::IMPORT_APPLIED,
        emitted::IMPORT_CONFLICTS,
    ])
}

fn emitted_dimensions() -> BTreeSet<&'static str> {
    use emitted::Dimension;
    // A new dimension breaks this match, so the list below cannot silently fall behind.
    let _every_variant_listed = |d: Dimension| match d {
        Dimension::ErrorClass
        | Dimension::Transport
        | Dimension::Reason
        | Dimension::Decision
        | Dimension::Lane => (),
    };
    [
        Dimension::ErrorClass,
        Dimension::Transport,
        Dimension::Reason,
        Dimension::Decision,
        Dimension::Lane,
    ]
    .into_iter()
    .map(Dimension::as_str)
    .chain([emitted::FUNCTION_DIMENSION])
    .collect()
}

#[test]
fn the_metric_list_here_is_every_metric_constant_in_shared_metrics() {
    // Given the metric-name constants declared in shared/src/metrics.rs
    let source = std::fs::read_to_string(repo_root().join("shared/src/metrics.rs"))
        .expect("shared/src/metrics.rs");
    let declared: BTreeSet<String> = source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub const "))
        .filter(|l| l.contains(": &str = \""))
        .filter(|l| !l.starts_with("DEFAULT_NAMESPACE") && !l.starts_with("FUNCTION_DIMENSION"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
        .collect();

    // Then this test's list (which the dashboard and alarms are checked against) has them all
    let listed: BTreeSet<String> = emitted_metrics().into_iter().map(str::to_owned).collect();
    assert_eq!(declared, listed);
}

fn namespace() -> String {
    let default = parameter_default("MetricsNamespace").expect("MetricsNamespace has a default");
    assert_eq!(default, emitted::DEFAULT_NAMESPACE);
    text_of(&default)
}

/// The dashboard body with every `${...}` replaced: the namespace and region by their values,
/// resource references by placeholders.
fn dashboard() -> Value {
    let dashboards = of_type("AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1);
    let body = dashboards[0].1["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody is a !Sub string");
    let text = substitute(body, |name| {
        Some(
            resolve(&json!({ "Ref": name }))
                .map(|v| text_of(&v))
                .unwrap_or_else(|| format!("placeholder-{name}")),
        )
    })
    .expect("every ${ in the body is closed");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("dashboard body is not JSON: {e}"))
}

/// (namespace, metric name, dimension names) of every metric line in the dashboard.
fn dashboard_metrics(body: &Value) -> Vec<(String, String, Vec<String>)> {
    let widgets = body["widgets"].as_array().expect("widgets");
    widgets
        .iter()
        .filter_map(|w| w["properties"]["metrics"].as_array())
        .flatten()
        .filter_map(|line| {
            let parts = line.as_array().expect("a metric line is an array");
            let strings: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
            if strings.is_empty() {
                return None; // a metric-math expression
            }
            assert!(
                !strings[0].starts_with('.'),
                "write metric lines out in full, not with '...': {line}"
            );
            assert!(
                strings.len().is_multiple_of(2),
                "dimension without value: {line}"
            );
            let dims = strings[2..].chunks(2).map(|kv| kv[0].to_owned()).collect();
            Some((strings[0].to_owned(), strings[1].to_owned(), dims))
        })
        .collect()
}

#[test]
fn the_dashboard_is_valid_json_and_names_only_metrics_the_code_emits() {
    // Given the dashboard as CloudWatch would receive it
    let body = dashboard();
    let ns = namespace();
    let lines = dashboard_metrics(&body);
    let ours: Vec<_> = lines.iter().filter(|(n, _, _)| *n == ns).collect();

    // Then every custom metric and dimension it names is emitted by the code
    for (_, name, dims) in &ours {
        assert!(
            emitted_metrics().contains(name.as_str()),
            "{name} is not emitted"
        );
        for dim in dims {
            assert!(emitted_dimensions().contains(dim.as_str()), "{name}: {dim}");
        }
        assert_eq!(
            dims.first().map(String::as_str),
            Some(emitted::FUNCTION_DIMENSION)
        );
    }
    // And every metric the code emits is shown somewhere
    let shown: BTreeSet<&str> = ours.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(shown, emitted_metrics());
    // And the alarms name only emitted metrics too
    for (id, p) in alarms() {
        for query in p["Metrics"].as_array().into_iter().flatten() {
            let metric = &query["MetricStat"]["Metric"];
            if metric.is_object() {
                assert_eq!(resolve(&metric["Namespace"]), Some(json!(ns)), "{id}");
                let name = metric["MetricName"].as_str().expect("a name");
                assert!(emitted_metrics().contains(name), "{id}: {name}");
            }
        }
    }
}

#[test]
fn the_dashboard_shows_queue_depths_dead_letters_and_stream_lag() {
    // Given the dashboard's AWS metrics
    let lines = dashboard_metrics(&dashboard());
    let shows = |ns: &str, metric: &str| lines.iter().any(|(n, m, _)| n == ns && m == metric);

    // Then pending exports (waiting and in flight), DLQ depth and iterator age are on it
    assert!(shows("AWS/SQS", "ApproximateNumberOfMessagesVisible"));
    assert!(shows("AWS/SQS", "ApproximateNumberOfMessagesNotVisible"));
    assert!(shows("AWS/Lambda", "IteratorAge"));
    let body = serde_json::to_string(&dashboard()).expect("serializable");
    for queue in queue_mappings()
        .into_iter()
        .map(|(q, _)| q)
        .chain([export_dlq()])
    {
        assert!(
            body.contains(&format!("placeholder-{queue}.QueueName")),
            "{queue} is not on the dashboard"
        );
    }
}

// ---------------------------------------------------------------- IAM

/// Reasons for every `Resource: "*"` the template may contain (none today).
const WILDCARD_RESOURCE_ALLOWLIST: &[(&str, &str)] = &[];

/// Policy statements of every role, with both branches of conditional statements.
fn statements() -> Vec<(&'static str, &'static Value)> {
    let mut out = Vec::new();
    for (role, p) in of_type("AWS::IAM::Role") {
        for policy in p["Policies"].as_array().into_iter().flatten() {
            for statement in policy["PolicyDocument"]["Statement"]
                .as_array()
                .expect("statements")
            {
                match statement.get("Fn::If").and_then(Value::as_array) {
                    Some(branches) => out.extend(
                        branches[1..]
                            .iter()
                            .filter(|b| b.get("Ref") != Some(&json!("AWS::NoValue")))
                            .map(|b| (role, b)),
                    ),
                    None => out.push((role, statement)),
                }
            }
        }
    }
    assert!(!out.is_empty());
    out
}

fn list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    }
}

#[test]
fn no_policy_grants_a_wildcard_action_or_an_unexplained_wildcard_resource() {
    for (role, statement) in statements() {
        // Then no statement allows every action of a service
        assert!(statement.get("NotAction").is_none() && statement.get("NotResource").is_none());
        for action in list(&statement["Action"]) {
            let action = action.as_str().expect("actions are literal");
            assert!(!action.contains('*'), "{role}: {action}");
        }
        // And "*" resources appear only with a written reason
        for resource in list(&statement["Resource"]) {
            if resource == "*" {
                let sid = statement["Sid"].as_str().unwrap_or_default();
                assert!(
                    WILDCARD_RESOURCE_ALLOWLIST.iter().any(|(s, _)| *s == sid),
                    "{role}/{sid} grants on *"
                );
            }
        }
    }
}

#[test]
fn roles_carry_no_managed_policies_and_metrics_need_no_api_permission() {
    for (role, p) in of_type("AWS::IAM::Role") {
        // SAM's event-source managed policies grant on "*"; every grant is inline instead
        assert!(p.get("ManagedPolicyArns").is_none(), "{role}");
    }
    for (role, statement) in statements() {
        // EMF goes through the log stream: no cloudwatch:PutMetricData
        assert!(
            list(&statement["Action"])
                .iter()
                .all(|a| !a.as_str().unwrap_or_default().starts_with("cloudwatch:")),
            "{role}"
        );
    }
    for (function, p) in of_type("AWS::Lambda::Function") {
        let role = target_of(&p["Role"]).unwrap_or_else(|| panic!("{function} has no role"));
        assert_eq!(resource(role)["Type"], "AWS::IAM::Role");
    }
}

fn role_of(function: &str) -> &'static str {
    target_of(&props(function)["Role"]).expect("a role of this stack")
}

fn grants(role: &str, action: &str) -> Vec<&'static Value> {
    statements()
        .into_iter()
        .filter(|(r, _)| *r == role)
        .filter(|(_, s)| list(&s["Action"]).iter().any(|a| *a == action))
        .flat_map(|(_, s)| list(&s["Resource"]))
        .collect()
}

#[test]
fn the_1c_secret_is_readable_at_its_arn_only_by_the_functions_that_call_1c() {
    let secret_ref = json!({"Ref": "OneCSecretArn"});
    for (function, p) in of_type("AWS::Lambda::Function") {
        let calls_1c = p["Environment"]["Variables"]
            .get("ONEC_SECRET_ARN")
            .is_some();
        let granted = grants(role_of(function), "secretsmanager:GetSecretValue");
        if calls_1c {
            assert_eq!(granted, vec![&secret_ref], "{function}");
            assert_eq!(env_var(function, "ONEC_SECRET_ARN"), &secret_ref);
        } else {
            assert!(granted.is_empty(), "{function} can read the 1C secret");
        }
    }
}

#[test]
fn the_exporter_sends_only_to_the_dlq_and_writes_only_its_tables() {
    let role = role_of(exporter());
    let dlq = export_dlq();
    let sends: Vec<_> = grants(role, "sqs:SendMessage")
        .into_iter()
        .map(|r| target_of(r))
        .collect();
    assert_eq!(sends, vec![Some(dlq)]);
    for action in [
        "dynamodb:Scan",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    ] {
        assert!(grants(role, action).is_empty(), "{action}");
    }
}

// ---------------------------------------------------------------- secrets and names

#[test]
fn no_secret_or_password_is_a_literal_environment_value() {
    for (function, p) in of_type("AWS::Lambda::Function") {
        let vars = p["Environment"]["Variables"]
            .as_object()
            .expect("variables");
        for (name, value) in vars {
            let upper = name.to_uppercase();
            if !(upper.contains("PASSWORD") || upper.contains("SECRET")) {
                continue;
            }
            // Then it comes from a parameter without a default, never from the template text
            let parameter = value
                .get("Ref")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{function}.{name} is not a parameter: {value}"));
            assert!(
                parameter_default(parameter).is_none(),
                "{function}.{name}: {parameter} has a default"
            );
        }
    }
}

#[test]
fn explicit_resource_names_derive_from_the_stack_name_so_it_can_be_deployed_twice() {
    let name_properties = [
        "QueueName",
        "FunctionName",
        "TableName",
        "RoleName",
        "TopicName",
        "LogGroupName",
        "DashboardName",
        "Name",
    ];
    let mut named = BTreeMap::new();
    for (id, r) in resources() {
        for property in name_properties {
            let Some(value) = r["Properties"].get(property) else {
                continue;
            };
            // Event source mappings, alarms' metrics etc. reference names; only the resource's
            // own name matters here.
            if property == "FunctionName" && r["Type"] != "AWS::Lambda::Function" {
                continue;
            }
            let resolved = resolve(value).map(|v| text_of(&v));
            assert!(
                resolved.as_deref().is_some_and(|n| n.contains(STACK)),
                "{id}.{property} = {value} does not contain the stack name"
            );
            named.insert(id.as_str(), (r["Type"].clone(), resolved));
        }
    }
    // And no two resources of one type share a name
    let distinct: BTreeSet<_> = named.values().map(|(t, n)| (t.to_string(), n)).collect();
    assert_eq!(distinct.len(), named.len(), "{named:?}");
}

// ---------------------------------------------------------------- the local stack

/// The template's value of `property`, or `default` where the template leaves it to AWS.
fn number_or(p: &Value, property: &str, default: u64) -> u64 {
    p.get(property).map_or(default, number)
}

#[test]
fn tables_match_the_local_stack_spec() {
    for table in spec::TABLES {
        // Given a table the local stack creates in moto
        let p = props(table.logical_id);
        // Then the template defines it with the same keys, stream and TTL
        let key = |kind: &str| {
            p["KeySchema"]
                .as_array()
                .expect("KeySchema")
                .iter()
                .find(|k| k["KeyType"] == kind)
                .map(|k| text_of(&k["AttributeName"]))
        };
        assert_eq!(
            key("HASH").as_deref(),
            Some(table.partition_key),
            "{}",
            table.logical_id
        );
        assert_eq!(
            key("RANGE").as_deref(),
            table.sort_key,
            "{}",
            table.logical_id
        );
        let stream = p["StreamSpecification"]["StreamViewType"].as_str();
        assert_eq!(
            stream,
            table.stream.then_some("NEW_AND_OLD_IMAGES"),
            "{}",
            table.logical_id
        );
        let ttl = &p["TimeToLiveSpecification"];
        match table.ttl_attribute {
            Some(attribute) => {
                assert_eq!(ttl["AttributeName"], attribute, "{}", table.logical_id);
                assert_eq!(ttl["Enabled"], json!(true), "{}", table.logical_id);
            }
            None => assert!(ttl.is_null(), "{}", table.logical_id),
        }
        let indexes = p["GlobalSecondaryIndexes"].as_array();
        match table.index {
            Some((name, key)) => {
                let index = indexes
                    .and_then(|all| all.iter().find(|i| i["IndexName"] == name))
                    .unwrap_or_else(|| panic!("{}: no index {name}", table.logical_id));
                assert_eq!(
                    index["KeySchema"],
                    json!([{"AttributeName": key, "KeyType": "HASH"}])
                );
                assert_eq!(index["Projection"]["ProjectionType"], "KEYS_ONLY");
            }
            None => assert!(indexes.is_none(), "{}", table.logical_id),
        }
    }
}

#[test]
fn the_full_sync_finds_users_by_onec_id_through_the_index_it_may_query() {
    // Given the dev stack (no platform table named)
    let function = "FullSyncFunction";
    // Then the function is told the dev table's index, and its role may query exactly that
    let index = &env_var(function, "USERS_ONEC_ID_INDEX")["Fn::If"];
    assert_eq!(index[0], json!("CreateDevUsersTable"));
    assert_eq!(index[1], json!(spec::USERS_ONEC_ID_INDEX));
    assert_eq!(index[2], json!({"Ref": "UsersOnecIdIndex"}));
    let role = props("FullSyncRole");
    let statement = role["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .find(|s| s["Sid"] == "FindUsersByOnecId")
        .expect("a statement for the index");
    assert_eq!(statement["Action"], json!("dynamodb:Query"));
    let resource = text_of(&statement["Resource"]);
    assert!(
        resource.contains("index/onec_id-index"),
        "the dev table's index: {resource}"
    );
}

#[test]
fn queues_match_the_local_stack_spec() {
    // Every queue of the template is one the local stack creates, and the other way round
    let in_template: std::collections::BTreeSet<&str> = of_type("AWS::SQS::Queue")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let in_spec: std::collections::BTreeSet<&str> =
        spec::QUEUES.iter().map(|q| q.logical_id).collect();
    assert_eq!(in_template, in_spec);
    for queue in spec::QUEUES {
        // Given a queue the local stack creates in moto
        let p = props(queue.logical_id);
        // Then the template gives it the same visibility, retention and redrive
        let visibility = number_or(p, "VisibilityTimeout", 30);
        assert_eq!(
            visibility,
            u64::from(queue.visibility_timeout_secs.unwrap_or(30)),
            "{}",
            queue.logical_id
        );
        assert_eq!(
            number(&p["MessageRetentionPeriod"]),
            u64::from(queue.retention_secs),
            "{}",
            queue.logical_id
        );
        let redrive = &p["RedrivePolicy"];
        match queue.max_receive_count {
            Some(max) => {
                assert_eq!(number(&redrive["maxReceiveCount"]), u64::from(max));
                assert_eq!(
                    target_of(&redrive["deadLetterTargetArn"]),
                    Some(spec::EXPORT_DLQ.logical_id)
                );
            }
            None => assert!(redrive.is_null(), "{}", queue.logical_id),
        }
    }
    // And the numbers they derive from are the template's
    assert_eq!(
        parameter_default("MaxExportAttempts").map(|v| number(&v)),
        Some(u64::from(spec::MAX_EXPORT_ATTEMPTS))
    );
    assert_eq!(
        number(&props(exporter())["Timeout"]),
        u64::from(spec::EXPORTER_TIMEOUT_SECS)
    );
    assert_eq!(
        number(&props(function_of(stream_mapping()))["Timeout"]),
        u64::from(spec::STREAM_FILTER_TIMEOUT_SECS)
    );
}

#[test]
fn event_source_mappings_match_the_local_stack_pollers() {
    // Given the stream mapping the local poller imitates
    let s = spec::USERS_STREAM_MAPPING;
    let p = props(s.logical_id);
    assert!(
        std::ptr::eq(p, stream_mapping()),
        "{} is the stream mapping",
        s.logical_id
    );

    // Then the template configures it the same way
    assert_eq!(number(&p["BatchSize"]), u64::from(s.batch_size));
    assert_eq!(
        number_or(p, "MaximumBatchingWindowInSeconds", 0),
        u64::from(s.maximum_batching_window_secs)
    );
    assert_eq!(
        number(&p["MaximumRetryAttempts"]),
        u64::from(s.maximum_retry_attempts)
    );
    assert_eq!(
        number(&p["MaximumRecordAgeInSeconds"]),
        u64::from(s.maximum_record_age_secs)
    );
    assert_eq!(
        p["BisectBatchOnFunctionError"],
        json!(s.bisect_batch_on_function_error)
    );
    assert_eq!(p["StartingPosition"], s.starting_position);

    // And the SQS mappings as the local SQS poller does
    let q = spec::EXPORT_QUEUE_MAPPING;
    for (queue, p) in queue_mappings() {
        assert_eq!(number(&p["BatchSize"]), u64::from(q.batch_size), "{queue}");
        assert_eq!(
            number_or(p, "MaximumBatchingWindowInSeconds", 0),
            u64::from(q.maximum_batching_window_secs),
            "{queue}"
        );
    }
}

#[test]
fn the_local_full_sync_schedule_sends_what_the_template_schedule_sends() {
    // Given the template's full-sync function and its schedule (SAM's transform makes the
    // event an AWS::Scheduler::Schedule)
    let function = props("FullSyncFunction");
    let schedules = of_type("AWS::Scheduler::Schedule");
    assert_eq!(schedules.len(), 1, "one schedule");
    let target = &schedules[0].1["Target"];
    // When its input is resolved with the parameters' defaults
    let input = resolve(&target["Input"]).expect("the schedule's input resolves");
    let input: Value = serde_json::from_str(&text_of(&input)).expect("the input is JSON");
    // Then the local stack's schedule sends the same, with the same function timeout
    assert_eq!(input["direction"], spec::FULL_SYNC_DIRECTION);
    assert_eq!(
        input["chunk_size"].as_u64(),
        Some(u64::from(spec::FULL_SYNC_CHUNK_SIZE))
    );
    assert_eq!(
        number(&function["Timeout"]),
        u64::from(spec::FULL_SYNC_TIMEOUT_SECS)
    );
    // And a failed asynchronous invocation is retried as often and then lands in the same queue
    let invoke = of_type("AWS::Lambda::EventInvokeConfig")
        .into_iter()
        .find(|(_, p)| target_of(&p["FunctionName"]) == Some("FullSyncFunction"))
        .map(|(_, p)| p)
        .expect("the full sync has an invoke configuration");
    assert_eq!(
        number(&invoke["MaximumRetryAttempts"]),
        u64::from(spec::FULL_SYNC_ASYNC_RETRIES)
    );
    assert_eq!(
        target_of(&invoke["DestinationConfig"]["OnFailure"]["Destination"]),
        Some(spec::FULL_SYNC_FAILURE_QUEUE.logical_id)
    );
    let local =
        local_stack::runner::FullSyncSchedule::template_input(std::time::Duration::from_secs(1));
    assert_eq!(
        serde_json::to_value(&local.input).expect("serialises"),
        input
    );
}

#[test]
fn the_1c_batch_size_is_a_parameter_within_what_the_exporter_accepts() {
    // Given the template's batch-size parameter and the exporter's environment
    let parameter = &template()["Parameters"]["OneCBatchSize"];
    // Then the exporter reads it, with the code's default and limit
    assert_eq!(
        env_var(exporter(), "ONEC_BATCH_SIZE"),
        &json!({"Ref": "OneCBatchSize"})
    );
    assert_eq!(
        number(&parameter["Default"]),
        exporter::config::DEFAULT_BATCH_SIZE as u64
    );
    assert_eq!(number(&parameter["MinValue"]), 1);
    assert_eq!(
        number(&parameter["MaxValue"]),
        shared::onec::MAX_BATCH_ITEMS as u64
    );
}

// ---------------------------------------------------------------- sync log capacity

const PROVISIONED: &str = "SyncLogProvisioned";

/// `value` as CloudFormation sees it when the `SyncLogProvisioned` condition is `provisioned`:
/// its `Fn::If` branches chosen, `AWS::NoValue` as null.
fn with_sync_log_capacity(value: &Value, provisioned: bool) -> Value {
    match value {
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::If") => {
            let branches = map["Fn::If"].as_array().expect("Fn::If takes a list");
            assert_eq!(branches[0], PROVISIONED, "{value}");
            let chosen = &branches[if provisioned { 1 } else { 2 }];
            with_sync_log_capacity(chosen, provisioned)
        }
        Value::Object(map) if map.get("Ref") == Some(&json!("AWS::NoValue")) => Value::Null,
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), with_sync_log_capacity(v, provisioned)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| with_sync_log_capacity(v, provisioned))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn sync_log_table() -> &'static str {
    spec::SYNC_LOG_TABLE.logical_id
}

/// Resources that exist only with `SyncLogCapacity=provisioned`.
fn provisioned_only() -> Vec<(&'static str, &'static Value)> {
    resources()
        .iter()
        .filter(|(_, r)| r["Condition"] == PROVISIONED)
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

#[test]
fn the_sync_log_is_billed_on_demand_unless_the_operator_chooses_provisioned_capacity() {
    // Given the capacity parameter and the condition built on it
    let parameter = &template()["Parameters"]["SyncLogCapacity"];
    assert_eq!(parameter["Default"], "on-demand");
    assert_eq!(
        parameter["AllowedValues"],
        json!(["on-demand", "provisioned"])
    );
    assert_eq!(
        template()["Conditions"][PROVISIONED],
        json!({"Fn::Equals": [{"Ref": "SyncLogCapacity"}, "provisioned"]})
    );
    let table = props(sync_log_table());

    // When it is left at its default, the table is on-demand and nothing scales it
    let on_demand = with_sync_log_capacity(table, false);
    assert_eq!(on_demand["BillingMode"], "PAY_PER_REQUEST");
    assert!(on_demand["ProvisionedThroughput"].is_null());

    // When provisioned is chosen, it starts at the lowest write capacity allowed
    let provisioned = with_sync_log_capacity(table, true);
    assert_eq!(provisioned["BillingMode"], "PROVISIONED");
    assert_eq!(
        provisioned["ProvisionedThroughput"],
        json!({"ReadCapacityUnits": 1, "WriteCapacityUnits": {"Ref": "SyncLogMinWriteCapacity"}})
    );
    // And only its scaling and its throttle alarm depend on the choice
    for (id, r) in provisioned_only() {
        assert!(
            [
                "AWS::ApplicationAutoScaling::ScalableTarget",
                "AWS::ApplicationAutoScaling::ScalingPolicy",
                "AWS::CloudWatch::Alarm"
            ]
            .contains(&r["Type"].as_str().unwrap_or_default()),
            "{id} should not depend on the sync log's capacity"
        );
    }
}

#[test]
fn provisioned_sync_log_capacity_tracks_seventy_percent_use_within_the_operators_bounds() {
    let targets: Vec<(&str, &Value)> = provisioned_only()
        .into_iter()
        .filter(|(_, r)| r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget")
        .map(|(id, r)| (id, &r["Properties"]))
        .collect();
    // Given one scalable target per capacity dimension of the sync log table
    let dimensions: BTreeSet<&str> = targets
        .iter()
        .map(|(_, p)| p["ScalableDimension"].as_str().expect("a dimension"))
        .collect();
    assert_eq!(
        dimensions,
        BTreeSet::from([
            "dynamodb:table:ReadCapacityUnits",
            "dynamodb:table:WriteCapacityUnits"
        ])
    );
    for (id, p) in &targets {
        assert_eq!(p["ServiceNamespace"], "dynamodb", "{id}");
        assert_eq!(
            p["ResourceId"],
            json!({"Fn::Sub": format!("table/${{{}}}", sync_log_table())}),
            "{id}"
        );
        assert!(
            number(&p["MinCapacity"]) <= number(&p["MaxCapacity"]),
            "{id}"
        );
        // Then each has a target-tracking policy on its own utilisation metric at ≤ 70 %
        let metric = if p["ScalableDimension"] == "dynamodb:table:WriteCapacityUnits" {
            "DynamoDBWriteCapacityUtilization"
        } else {
            "DynamoDBReadCapacityUtilization"
        };
        let policies: Vec<&Value> = of_type("AWS::ApplicationAutoScaling::ScalingPolicy")
            .into_iter()
            .filter(|(_, policy)| target_of(&policy["ScalingTargetId"]) == Some(*id))
            .map(|(_, policy)| policy)
            .collect();
        assert_eq!(policies.len(), 1, "one policy scales {id}");
        let tracking = &policies[0]["TargetTrackingScalingPolicyConfiguration"];
        assert_eq!(policies[0]["PolicyType"], "TargetTrackingScaling");
        assert_eq!(
            tracking["PredefinedMetricSpecification"]["PredefinedMetricType"],
            metric
        );
        assert!(number(&tracking["TargetValue"]) <= 70, "{id}");
    }

    // And writes scale between the operator's two parameters
    let (_, writes) = targets
        .iter()
        .find(|(_, p)| p["ScalableDimension"] == "dynamodb:table:WriteCapacityUnits")
        .expect("write scaling");
    assert_eq!(
        writes["MinCapacity"],
        json!({"Ref": "SyncLogMinWriteCapacity"})
    );
    assert_eq!(
        writes["MaxCapacity"],
        json!({"Ref": "SyncLogMaxWriteCapacity"})
    );
    // Whose default ceiling covers every exporter session writing an entry per 200 ms 1C call
    let sessions = (number(&json!({"Ref": "PriorityMaxConcurrency"}))
        + number(&json!({"Ref": "BulkMaxConcurrency"})))
        * number(&json!({"Ref": "ExportConcurrency"}));
    assert!(number(&writes["MaxCapacity"]) >= sessions * 5);
}

#[test]
fn throttled_sync_log_writes_raise_an_alarm_when_its_capacity_is_provisioned() {
    let found = alarms_on("WriteThrottleEvents", "TableName", sync_log_table());
    assert_eq!(found.len(), 1);
    assert_fires_above(found[0], "Sum", 0);
    let (id, _) = alarms()
        .into_iter()
        .find(|(_, p)| std::ptr::eq(*p, found[0]))
        .expect("the alarm's id");
    assert_eq!(resource(id)["Condition"], PROVISIONED);
}
