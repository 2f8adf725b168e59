//! The bad-input table of `docs/bad-input.md`: every row is an input the pipeline must survive
//! with an exact, documented outcome — the error's kind and class, where it lands (stream
//! metrics, DLQ with reason attributes, the row's `sync_status`/`sync_error_message`, the client
//! error), nothing lost and no panic.
//!
//! Tables are table-driven tests whose failure messages name the row. Rows already covered by
//! `onec_errors.rs` (503, 502/404 HTML, 429, hangs, 400/500 bodies, malformed 2xx, 2xx without
//! an id, wrong content type, response size limit, billion laughs on a lookup, refused
//! connection) are referenced in the doc, not repeated here.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use exporter::{handle, Deps, HandlerSettings, Jitter, QueueRoutes};
use integration_tests::emulator::{
    individual, platform_id, respond, Emulator, SHORT_TIMEOUT, TRANSPORTS,
};
use integration_tests::onec_scenarios::assert_error;
use serde_json::{json, Value};
use shared::domain::Customer;
use shared::error::ErrorClass::{self, Permanent, Transient};
use shared::export::CustomerExportService;
use shared::filter::{FilterPolicy, RemovePolicy};
use shared::mapping::CustomerDataMapper;
use shared::message::ExportReason;
use shared::metrics::Metrics;
use shared::onec::{build_client, Credentials, OneCClient, OneCConfig, Transport};
use shared::ports::DeadLetterReason;
use shared::testing::{
    FakeCustomerStore, FakeExportQueue, FakeMessageControl, FakeOneCClient, FakeSyncLog,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ------------------------------------------------------------------------------------------
// Stream records → stream filter
// ------------------------------------------------------------------------------------------

const STREAM_ARN: &str =
    "arn:aws:dynamodb:eu-central-1:123456789012:table/users/stream/2026-11-01T00:00:00.000";

/// A DynamoDB-JSON image of a valid platform user, with `changes` applied (`Value::Null`
/// removes the attribute).
fn image(id: &str, changes: &[(&str, Value)]) -> Value {
    let mut image = json!({
        "id": {"S": id},
        "email": {"S": "row.user@example.com"},
        "phone": {"S": "+79001112233"},
        "first_name": {"S": "Анна"},
        "last_name": {"S": "Смирнова"},
        "role": {"S": "retail"},
        "status": {"S": "active"},
        "version": {"N": "1"},
    });
    for (name, value) in changes {
        if value.is_null() {
            image.as_object_mut().map(|m| m.remove(*name));
        } else {
            image[*name] = value.clone();
        }
    }
    image
}

fn stream_record(event_name: &str, seq: u64, new: Option<Value>, old: Option<Value>) -> Value {
    let mut change = json!({
        "ApproximateCreationDateTime": 1_764_324_930,
        "Keys": {"id": {"S": format!("u-{seq}")}},
        "SequenceNumber": seq.to_string(),
        "SizeBytes": 256,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(new) = new {
        change["NewImage"] = new;
    }
    if let Some(old) = old {
        change["OldImage"] = old;
    }
    json!({
        "awsRegion": "eu-central-1",
        "eventID": format!("e-{seq}"),
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.1",
        "eventSourceARN": STREAM_ARN,
        "dynamodb": change,
    })
}

struct StreamRow {
    name: &'static str,
    record: Value,
    /// `Some(kind)`: counted as `FilterInvalid` with this reason; `None`: a normal record.
    invalid: Option<&'static str>,
    /// Messages the bad record itself must produce.
    enqueued: usize,
}

fn stream_rows() -> Vec<StreamRow> {
    let huge_unicode_name = "👩‍💻\u{200F}שלום\u{200B}".repeat(1000);
    vec![
        StreamRow {
            name: "S1 INSERT without NewImage",
            record: stream_record("INSERT", 101, None, None),
            invalid: Some("missing_image"),
            enqueued: 0,
        },
        StreamRow {
            name: "S2 MODIFY without OldImage",
            record: stream_record("MODIFY", 102, Some(image("u-102", &[])), None),
            invalid: Some("missing_image"),
            enqueued: 0,
        },
        StreamRow {
            name: "S3 REMOVE without OldImage",
            record: stream_record("REMOVE", 103, None, None),
            invalid: Some("missing_image"),
            enqueued: 0,
        },
        StreamRow {
            name: "S4 version as S",
            record: stream_record(
                "INSERT",
                104,
                Some(image("u-104", &[("version", json!({"S": "one"}))])),
                None,
            ),
            invalid: Some("undecodable_image"),
            enqueued: 0,
        },
        StreamRow {
            name: "S5 NewImage without id",
            record: stream_record(
                "INSERT",
                105,
                Some(image("u-105", &[("id", Value::Null)])),
                None,
            ),
            invalid: Some("undecodable_image"),
            enqueued: 0,
        },
        StreamRow {
            name: "S6 unknown event name",
            record: stream_record("UPSERT", 106, Some(image("u-106", &[])), None),
            invalid: Some("unknown_event_name"),
            enqueued: 0,
        },
        StreamRow {
            name: "S7 email as a list",
            record: stream_record(
                "INSERT",
                107,
                Some(image(
                    "u-107",
                    &[("email", json!({"L": [{"S": "a@b.ru"}]}))],
                )),
                None,
            ),
            invalid: Some("undecodable_image"),
            enqueued: 0,
        },
        StreamRow {
            name: "S8 needs_1c_export as S",
            record: stream_record(
                "INSERT",
                108,
                Some(image("u-108", &[("needs_1c_export", json!({"S": "yes"}))])),
                None,
            ),
            invalid: Some("undecodable_image"),
            enqueued: 0,
        },
        StreamRow {
            name: "S9 10 kB of emoji, RTL and zero-width characters in a name",
            record: stream_record(
                "INSERT",
                109,
                Some(image(
                    "u-109",
                    &[("first_name", json!({"S": huge_unicode_name}))],
                )),
                None,
            ),
            invalid: None,
            enqueued: 1,
        },
    ]
}

#[tokio::test]
async fn malformed_stream_records_are_counted_invalid_without_blocking_their_neighbours() {
    for row in stream_rows() {
        // Given a batch of the bad record followed by a valid registration
        let good = stream_record("INSERT", 200, Some(image("u-200", &[])), None);
        let event: Event = serde_json::from_value(json!({"Records": [row.record, good]}))
            .unwrap_or_else(|e| panic!("{}: the event deserialises: {e}", row.name));
        let deps = stream_filter::Deps {
            queue: FakeExportQueue::new(),
            marker: FakeCustomerStore::new(),
            policy: FilterPolicy::new(
                ["email", "phone", "first_name", "last_name"],
                RemovePolicy::Deactivate,
            ),
            metrics: Metrics::new("OnecSync", "stream-filter"),
        };

        // When the filter processes it
        let outcome = stream_filter::process(&deps, &event)
            .await
            .unwrap_or_else(|e| panic!("{}: the batch fails as a whole: {e}", row.name));

        // Then the bad record is counted by kind, nothing is checkpointed, and the valid
        // neighbour is enqueued (nothing after the bad record is lost)
        let invalid: Vec<(&str, u64)> = outcome.invalid.iter().map(|(k, n)| (*k, *n)).collect();
        let expected_invalid: Vec<(&str, u64)> = row.invalid.map(|k| (k, 1)).into_iter().collect();
        assert_eq!(invalid, expected_invalid, "{}", row.name);
        assert_eq!(outcome.checkpoint, None, "{}", row.name);
        assert!(
            outcome.response().batch_item_failures.is_empty(),
            "{}",
            row.name
        );
        let sent = deps.queue.sent();
        let ids: Vec<&str> = sent.iter().map(|(_, m)| m.customer_id.as_str()).collect();
        assert_eq!(ids.len(), 1 + row.enqueued, "{}: sent {ids:?}", row.name);
        assert_eq!(ids.last(), Some(&"u-200"), "{}", row.name);
        assert!(
            sent.iter()
                .all(|(_, m)| m.reason == ExportReason::Registration),
            "{}",
            row.name
        );
    }
}

#[test]
fn s10_an_attribute_with_an_unknown_type_tag_fails_the_whole_event_before_the_handler() {
    // Given a record whose attribute uses a type tag DynamoDB does not have
    let record = stream_record(
        "INSERT",
        110,
        Some(image("u-110", &[("email", json!({"X": "?"}))])),
        None,
    );

    // When Lambda's event type reads it
    let parsed = serde_json::from_value::<Event>(json!({"Records": [record]}));

    // Then the invocation fails before our code runs: Lambda retries the batch and, after the
    // mapping's retries, sends it to the on-failure destination (the template's SQS queue)
    assert!(parsed.is_err());
}

// ------------------------------------------------------------------------------------------
// SQS bodies and the rows the exporter reads → exporter handler
// ------------------------------------------------------------------------------------------

const PRIORITY_URL: &str =
    "https://sqs.eu-central-1.amazonaws.com/123456789012/onec-sync-export-priority";
const BULK_URL: &str = "https://sqs.eu-central-1.amazonaws.com/123456789012/onec-sync-export-bulk";
const PRIORITY_ARN: &str = "arn:aws:sqs:eu-central-1:123456789012:onec-sync-export-priority";

struct World {
    store: Arc<FakeCustomerStore>,
    log: Arc<FakeSyncLog>,
    onec: Arc<FakeOneCClient>,
    control: Arc<FakeMessageControl>,
    deps: Deps,
}

fn world() -> World {
    let store = Arc::new(FakeCustomerStore::new());
    let log = Arc::new(FakeSyncLog::new());
    let onec = Arc::new(FakeOneCClient::new());
    let control = Arc::new(FakeMessageControl::new());
    let metrics = Arc::new(Metrics::new("OnecSync", "exporter"));
    let service = CustomerExportService::new(
        store.clone(),
        log.clone(),
        onec.clone(),
        CustomerDataMapper::default(),
        metrics.clone(),
        "json",
    );
    let deps = Deps {
        service,
        control: control.clone(),
        metrics,
        settings: HandlerSettings {
            max_attempts: 5,
            concurrency: 2,
            backoff_base: Duration::from_secs(30),
            backoff_cap: Duration::from_secs(900),
            breaker_threshold: 3,
            jitter: Jitter::Fixed(0.0),
            routes: QueueRoutes::new(PRIORITY_URL, BULK_URL),
        },
    };
    World {
        store,
        log,
        onec,
        control,
        deps,
    }
}

fn sqs_event(body: &str) -> SqsEvent {
    let mut record = SqsMessage::default();
    record.message_id = Some("m-1".into());
    record.receipt_handle = Some("r-1".into());
    record.body = Some(body.to_owned());
    record.event_source_arn = Some(PRIORITY_ARN.into());
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), "1".into());
    let mut event = SqsEvent::default();
    event.records = vec![record];
    event
}

fn export_body(customer_id: &str) -> String {
    json!({"customer_id": customer_id, "reason": "registration", "version": 1,
           "changed_at": "2026-11-28T10:15:30Z"})
    .to_string()
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// A valid individual with known contact data, as a raw row.
fn valid_row(id: &str) -> Value {
    let customer = Customer {
        id: id.into(),
        email: Some("olga.ivanova@example.org".into()),
        phone: Some("+79261234567".into()),
        first_name: Some("Ольга".into()),
        last_name: Some("Иванова".into()),
        tax_id: Some("500100732259".into()),
        role: Some("retail".into()),
        status: Some("active".into()),
        needs_1c_export: true,
        version: 1,
        ..Customer::default()
    };
    serde_json::to_value(customer).expect("a customer serialises")
}

fn with(mut row: Value, changes: &[(&str, Value)]) -> Value {
    for (name, value) in changes {
        row[*name] = value.clone();
    }
    row
}

/// Where a bad message must end up.
#[derive(Debug)]
enum Lands {
    /// Sent to the DLQ by the exporter with these attributes; deleted from the source queue.
    DeadLetter {
        reason: DeadLetterReason,
        kind: &'static str,
        customer_id: Option<String>,
        /// Text `sync_error_message` and the DLQ's `error_message` must contain (the row, when
        /// there is one, shows `sync_status=error`).
        mentions: &'static str,
    },
    /// Done without a 1C call or an error (a skip).
    Skipped,
}

struct SqsRow {
    name: &'static str,
    body: String,
    row: Option<Value>,
    lands: Lands,
}

fn malformed(name: &'static str, body: String) -> SqsRow {
    SqsRow {
        name,
        body,
        row: None,
        lands: Lands::DeadLetter {
            reason: DeadLetterReason::MalformedMessage,
            kind: "malformed_message",
            customer_id: None,
            mentions: "body is not an export message",
        },
    }
}

fn permanent(name: &'static str, row: Value, kind: &'static str, mentions: &'static str) -> SqsRow {
    let id = row["id"].as_str().unwrap_or_default().to_owned();
    SqsRow {
        name,
        body: export_body(&id),
        row: Some(row),
        lands: Lands::DeadLetter {
            reason: DeadLetterReason::PermanentFailure,
            kind,
            customer_id: Some(id),
            mentions,
        },
    }
}

fn sqs_rows() -> Vec<SqsRow> {
    let huge = format!("[{}1]", "1,".repeat(150_000));
    vec![
        malformed("Q1 body is not JSON", "hello, 1C".into()),
        malformed(
            "Q2 JSON of the wrong schema",
            json!({"customer": "u-1", "action": "sync"}).to_string(),
        ),
        malformed("Q3 empty body", String::new()),
        malformed("Q4 300 kB body", huge),
        malformed(
            "Q5 unknown reason that echoes an e-mail",
            json!({"customer_id": "u-1", "reason": "ivan.petrov@example.ru", "version": 1,
                   "changed_at": "2026-11-28T10:15:30Z"})
            .to_string(),
        ),
        malformed(
            "Q6 unknown extra field",
            json!({"customer_id": "u-1", "reason": "registration", "version": 1,
                   "changed_at": "2026-11-28T10:15:30Z", "priority": "urgent"})
            .to_string(),
        ),
        malformed(
            "Q7 version as a string",
            json!({"customer_id": "u-1", "reason": "registration", "version": "1",
                   "changed_at": "2026-11-28T10:15:30Z"})
            .to_string(),
        ),
        malformed(
            "Q8 negative version",
            json!({"customer_id": "u-1", "reason": "registration", "version": -1,
                   "changed_at": "2026-11-28T10:15:30Z"})
            .to_string(),
        ),
        malformed("Q9 JSON null", "null".into()),
        malformed(
            "Q10 customer_id missing",
            json!({"reason": "registration", "version": 1, "changed_at": "2026-11-28T10:15:30Z"})
                .to_string(),
        ),
        SqsRow {
            name: "Q11 customer id with no row",
            body: export_body("u-gone"),
            row: None,
            lands: Lands::Skipped,
        },
        SqsRow {
            name: "Q12 empty customer id",
            body: export_body(""),
            row: None,
            lands: Lands::Skipped,
        },
        permanent(
            "R1 row with version as S",
            with(valid_row("u-r1"), &[("version", json!("one"))]),
            "undecodable_row",
            "row u-r1 cannot be read as a customer",
        ),
        permanent(
            "R2 row with email as a number",
            with(valid_row("u-r2"), &[("email", json!(79_261_234_567_u64))]),
            "undecodable_row",
            "row u-r2 cannot be read as a customer",
        ),
        permanent(
            "R3 row with needs_1c_export as S",
            with(valid_row("u-r3"), &[("needs_1c_export", json!("yes"))]),
            "undecodable_row",
            "row u-r3 cannot be read as a customer",
        ),
        permanent(
            "V1 INN with a wrong check digit",
            with(valid_row("u-v1"), &[("tax_id", json!("500100732258"))]),
            "validation",
            "tax_id",
        ),
        permanent(
            "V2 INN of 5 digits",
            with(valid_row("u-v2"), &[("tax_id", json!("12345"))]),
            "validation",
            "tax_id",
        ),
        permanent(
            "V3 KPP of letters for a legal entity",
            with(
                valid_row("u-v3"),
                &[
                    ("company_name", json!("ООО \"Ромашка\"")),
                    ("tax_id", json!("7707083893")),
                    ("kpp", json!("ABCDEFGHI")),
                ],
            ),
            "validation",
            "kpp",
        ),
        permanent(
            "V4 phone that is not a number",
            with(valid_row("u-v4"), &[("phone", json!("позвоните мне"))]),
            "validation",
            "phone",
        ),
        permanent(
            "V5 e-mail with two @",
            with(valid_row("u-v5"), &[("email", json!("olga@@example.org"))]),
            "validation",
            "email",
        ),
        permanent(
            "V6 10 kB last name",
            with(
                valid_row("u-v6"),
                &[("last_name", json!("Я".repeat(10_000)))],
            ),
            "validation",
            "last_name",
        ),
        permanent(
            "V7 control character in a first name",
            with(valid_row("u-v7"), &[("first_name", json!("Оль\u{7}га"))]),
            "validation",
            "first_name",
        ),
    ]
}

#[tokio::test]
async fn bad_export_messages_and_rows_land_where_the_table_says_with_nothing_lost() {
    for row in sqs_rows() {
        // Given the row (if any) and the message
        let w = world();
        if let Some(stored) = &row.row {
            w.store.insert_row(stored.clone());
        }

        // When the exporter handles the message
        let response = handle(&w.deps, sqs_event(&row.body))
            .await
            .unwrap_or_else(|e| panic!("{}: the invocation fails: {e}", row.name));

        // Then it is not retried and 1C is not called
        assert!(failed_ids(&response).is_empty(), "{}", row.name);
        assert_eq!(w.onec.call_count(), 0, "{}", row.name);
        let letters = w.control.dead_letters();
        match &row.lands {
            Lands::Skipped => {
                assert!(letters.is_empty(), "{}: {letters:?}", row.name);
                assert!(w.control.delays().is_empty(), "{}", row.name);
            }
            Lands::DeadLetter {
                reason,
                kind,
                customer_id,
                mentions,
            } => {
                // And the DLQ holds the original body with the reason attributes
                assert_eq!(letters.len(), 1, "{}", row.name);
                let letter = &letters[0];
                assert_eq!(letter.body, row.body, "{}: body not kept as is", row.name);
                assert_eq!(letter.reason, *reason, "{}", row.name);
                assert_eq!(letter.error_class, Permanent, "{}", row.name);
                assert_eq!(letter.error_kind, *kind, "{}", row.name);
                assert_eq!(&letter.customer_id, customer_id, "{}", row.name);
                assert_eq!(letter.original_message_id, "m-1", "{}", row.name);
                assert!(
                    letter.error_message.contains(mentions),
                    "{}: {:?}",
                    row.name,
                    letter.error_message
                );
                assert!(
                    letter.error_message.len() < 400,
                    "{}: error quotes the input",
                    row.name
                );
                for secret in ["ivan.petrov", "olga", "7926123", "500100732", "ABCDEFGHI"] {
                    assert!(
                        !letter.error_message.to_lowercase().contains(secret),
                        "{}: {:?} leaks {secret}",
                        row.name,
                        letter.error_message
                    );
                }
                // And the row, when there is one, shows the error with the same message
                if let Some(id) = customer_id.as_deref().filter(|_| row.row.is_some()) {
                    let stored = w.store.row(id).expect("the row is still there");
                    assert_eq!(stored["sync_status"], json!("error"), "{}", row.name);
                    assert_eq!(
                        stored["sync_error_message"],
                        json!(letter.error_message),
                        "{}",
                        row.name
                    );
                    let entries = w.log.entries_for(id);
                    assert_eq!(entries.len(), 1, "{}", row.name);
                    assert_eq!(
                        entries[0].details.error_class,
                        Some(Permanent),
                        "{}",
                        row.name
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn q13_a_malformed_message_is_retried_when_the_dlq_is_unreachable_so_nothing_is_lost() {
    // Given a DLQ that refuses sends
    let w = world();
    w.control.set_dead_letter_failing(true);

    // When a malformed body is handled
    let response = handle(&w.deps, sqs_event("{not json"))
        .await
        .expect("handled");

    // Then it is reported for redelivery (SQS redrive is the safety net), with a backoff
    assert_eq!(failed_ids(&response), vec!["m-1".to_owned()]);
    assert_eq!(w.control.delays().len(), 1);
    assert!(w.control.dead_letters().is_empty());
}

#[tokio::test]
async fn v8_emoji_rtl_and_zero_width_names_within_the_limits_reach_1c_unchanged() {
    // Given a customer whose names carry emoji, right-to-left text and zero-width characters
    let w = world();
    let first = "Zoë👩‍💻";
    let last = "\u{200F}כהן\u{200B}Коэн";
    w.store.insert_row(with(
        valid_row("u-v8"),
        &[("first_name", json!(first)), ("last_name", json!(last))],
    ));

    // When it is exported
    let response = handle(&w.deps, sqs_event(&export_body("u-v8")))
        .await
        .expect("handled");

    // Then 1C receives the names exactly and the row is synced
    assert!(failed_ids(&response).is_empty());
    let cp = w.onec.counterparty("u-v8").expect("exported");
    assert_eq!(cp.first_name.as_deref(), Some(first));
    assert_eq!(cp.last_name.as_deref(), Some(last));
    assert_eq!(
        w.store.row("u-v8").expect("row")["sync_status"],
        json!("synced")
    );
}

// ------------------------------------------------------------------------------------------
// Names and ids that try to break out of their field → real transports against the emulator
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn c1_xml_and_json_breakout_attempts_in_names_round_trip_as_plain_text() {
    for transport in TRANSPORTS {
        // Given names that try to close elements, CDATA sections and strings
        let emulator = Emulator::start().await;
        let client = emulator.client(transport);
        let id = platform_id();
        let mut cp = individual(&id);
        cp.name = "</Наименование><Ид>evil</Ид><Наименование>".into();
        cp.full_name = "]]><!-- \"}, {\"platform_id\": \"evil\" --> & 'x'".into();
        cp.first_name = Some("<![CDATA[x]]>".into());

        // When it is exported and read back
        let outcome = client
            .upsert_customer(&cp)
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e:?}"));
        let back = client
            .fetch_customer(&outcome.onec_id)
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e:?}"))
            .unwrap_or_else(|| panic!("{transport}: not found"));

        // Then 1C holds the text as it was, under the right id, and nothing else was created
        assert_eq!(back.name, cp.name, "{transport}");
        assert_eq!(back.full_name, cp.full_name, "{transport}");
        assert_eq!(back.platform_id, id, "{transport}");
        assert_eq!(emulator.handle.counterparties().len(), 1, "{transport}");
        assert_eq!(emulator.count_for("evil"), 0, "{transport}");
        emulator.stop().await;
    }
}

#[tokio::test]
async fn c2_unicode_names_round_trip_through_every_transport() {
    for transport in TRANSPORTS {
        let emulator = Emulator::start().await;
        let client = emulator.client(transport);
        let mut cp = individual(&platform_id());
        cp.name = "Zoë 👩‍💻 \u{200F}כהן\u{200B}".into();
        cp.full_name = "Ёлкин-Палкин 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u{202E}reversed\u{202C}".into();

        let outcome = client
            .upsert_customer(&cp)
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e:?}"));
        let back = client
            .fetch_customer(&outcome.onec_id)
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e:?}"))
            .unwrap_or_else(|| panic!("{transport}: not found"));

        assert_eq!(back.name, cp.name, "{transport}");
        assert_eq!(back.full_name, cp.full_name, "{transport}");
        emulator.stop().await;
    }
}

#[tokio::test]
async fn c3_a_filter_injection_in_a_platform_id_matches_nothing_and_updates_nobody() {
    for transport in TRANSPORTS {
        // Given 1C holding another customer
        let emulator = Emulator::start().await;
        let client = emulator.client(transport);
        let victim = platform_id();
        client
            .upsert_customer(&individual(&victim))
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e:?}"));

        // When ids crafted to widen the OData filter or the query string are used
        for evil in [
            "x' or 1 eq 1 or 'a' eq 'a",
            "x') or (true",
            "x&platform_id=",
            "%27 or 1 eq 1",
        ] {
            let found = client
                .find_by_platform_id(evil)
                .await
                .unwrap_or_else(|e| panic!("{transport} {evil}: {e:?}"));
            // Then nothing matches
            assert_eq!(found, None, "{transport} {evil}");
        }
        let mut evil = individual("x' or 1 eq 1 or 'a' eq 'a");
        evil.name = "Злоумышленник".into();
        let outcome = client.upsert_customer(&evil).await;

        // And an upsert with such an id never touches the other customer
        let victim_now = client
            .find_by_platform_id(&victim)
            .await
            .unwrap_or_else(|e| panic!("{transport}: {e:?}"))
            .unwrap_or_else(|| panic!("{transport}: victim gone"));
        assert_eq!(victim_now.name, "Иванов Иван", "{transport}");
        // And the crafted id gets a counterparty of its own, found by that id alone
        let outcome = outcome.unwrap_or_else(|e| panic!("{transport}: {e:?}"));
        assert!(
            outcome.created,
            "{transport}: updated an existing counterparty"
        );
        assert_eq!(emulator.handle.counterparties().len(), 2, "{transport}");
        assert_eq!(
            emulator.count_for("x' or 1 eq 1 or 'a' eq 'a"),
            1,
            "{transport}"
        );
        emulator.stop().await;
    }
}

// ------------------------------------------------------------------------------------------
// 1C answering badly → client errors (scripted emulator answers)
// ------------------------------------------------------------------------------------------

fn ok_content_type(transport: Transport) -> &'static str {
    match transport {
        Transport::Json | Transport::OData => "application/json; charset=utf-8",
        Transport::CommerceMl => "application/xml; charset=utf-8",
    }
}

/// The answers that make an upsert's decisive response `(status, content type, body)`.
fn upsert_answers(
    transport: Transport,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> Vec<onec_emulator::ScriptedAnswer> {
    let mut answers = Vec::new();
    if transport == Transport::OData {
        // The lookup before the write finds nothing.
        answers.push(respond(200, "application/json", r#"{"value":[]}"#));
    }
    answers.push(respond(
        status,
        content_type,
        &String::from_utf8_lossy(body),
    ));
    answers
}

struct ClientRow {
    name: &'static str,
    status: u16,
    content_type: &'static str,
    body: fn(Transport) -> Vec<u8>,
    kind: &'static str,
    class: ErrorClass,
}

fn client_rows() -> Vec<ClientRow> {
    vec![
        ClientRow {
            name: "C4 a 200 login page in HTML",
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: |_| {
                b"<html><head><title>1C:Enterprise - Login</title></head><form/></html>".to_vec()
            },
            kind: "html_page",
            class: Permanent,
        },
        ClientRow {
            name: "C5 a 200 with an empty body",
            status: 200,
            content_type: "",
            body: |_| Vec::new(),
            kind: "malformed_response",
            class: Transient,
        },
        ClientRow {
            name: "C6 a 200 whose id has the wrong type",
            status: 200,
            content_type: "",
            body: |t| {
                match t {
                Transport::Json => br#"{"onec_id":42,"data_version":"v1","created":true}"#.to_vec(),
                Transport::OData => br#"{"Ref_Key":{"guid":"x"},"DataVersion":"v1"}"#.to_vec(),
                Transport::CommerceMl => "<РезультатОбмена><Контрагент><Ид>x</Ид><Ссылка> </Ссылка>\
                    <НомерВерсии>v1</НомерВерсии><Ид>y</Ид></Контрагент><Контрагент/></РезультатОбмена>"
                    .as_bytes()
                    .to_vec(),
            }
            },
            kind: "malformed_response",
            class: Transient,
        },
        ClientRow {
            name: "C7 an XXE answer with an external entity",
            status: 200,
            content_type: "",
            body: |t| match t {
                Transport::CommerceMl => {
                    "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \
                    \"file:///etc/passwd\">]><РезультатОбмена><Контрагент><Ид>&x;</Ид>\
                    <Ссылка>&x;</Ссылка><НомерВерсии>1</НомерВерсии></Контрагент></РезультатОбмена>"
                        .as_bytes()
                        .to_vec()
                }
                _ => br#"{"onec_id": "</x><!DOCTYPE x [<!ENTITY"#.to_vec(),
            },
            kind: "malformed_response",
            class: Transient,
        },
        ClientRow {
            name: "C8 a 200 that is not UTF-8",
            status: 200,
            content_type: "",
            body: |t| match t {
                Transport::CommerceMl => {
                    b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>\xff\xfe\xc0</a>".to_vec()
                }
                _ => b"{\"onec_id\":\"\xff\xfe\xc0\"}".to_vec(),
            },
            kind: "malformed_response",
            class: Transient,
        },
        ClientRow {
            name: "C9 XML declaring an unknown encoding",
            status: 200,
            content_type: "application/xml",
            body: |_| b"<?xml version=\"1.0\" encoding=\"x-klingon\"?><a/>".to_vec(),
            kind: "malformed_response",
            class: Transient,
        },
        ClientRow {
            name: "C10 a 400 whose error body has a DOCTYPE (no entity expanded)",
            status: 400,
            content_type: "",
            body: |t| match t {
                Transport::CommerceMl => {
                    "<!DOCTYPE e [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;\">]>\
                    <Ошибка><Код>validation</Код><Сообщение>&b;</Сообщение></Ошибка>"
                        .as_bytes()
                        .to_vec()
                }
                _ => b"{\"error\": <!DOCTYPE".to_vec(),
            },
            kind: "rejected",
            class: Permanent,
        },
        ClientRow {
            name: "C11 a 500 with a 1 MB error body",
            status: 500,
            content_type: "text/plain",
            body: |_| vec![b'x'; 1024 * 1024],
            kind: "unavailable",
            class: Transient,
        },
        ClientRow {
            name: "C12 a 2xx answering an error document (CommerceML) or an odata.error",
            status: 200,
            content_type: "",
            body: |t| match t {
                Transport::CommerceMl => {
                    "<Ошибка><Код>business</Код><Сообщение>нет</Сообщение></Ошибка>"
                        .as_bytes()
                        .to_vec()
                }
                // JSON transports read no error from a 2xx: the answer simply lacks the id.
                Transport::Json => br#"{"error":{"code":"business","message":"no"}}"#.to_vec(),
                Transport::OData => {
                    br#"{"odata.error":{"code":"-1","message":{"value":"no"}}}"#.to_vec()
                }
            },
            kind: "",
            class: Transient,
        },
    ]
}

#[tokio::test]
async fn bad_1c_answers_become_the_tabled_client_errors() {
    for row in client_rows() {
        for transport in TRANSPORTS {
            // Given 1C answering the upsert with the row's response
            let emulator = Emulator::start().await;
            let client = emulator.client(transport);
            let content_type = if row.content_type.is_empty() {
                ok_content_type(transport)
            } else {
                row.content_type
            };
            let body = (row.body)(transport);
            emulator.script(upsert_answers(transport, row.status, content_type, &body));

            // When a customer is exported
            let result = client.upsert_customer(&individual(&platform_id())).await;

            // Then the error has the row's kind and class
            let (kind, class) = match (row.kind, transport) {
                ("", Transport::CommerceMl) => ("rejected", Permanent),
                ("", _) => ("malformed_response", Transient),
                (kind, _) => (kind, row.class),
            };
            let error = match result {
                Ok(ok) => panic!("{} / {transport}: expected {kind}, got {ok:?}", row.name),
                Err(error) => error,
            };
            assert_eq!(error.kind(), kind, "{} / {transport}: {error:?}", row.name);
            assert_eq!(
                shared::error::Classify::class(&error),
                class,
                "{} / {transport}",
                row.name
            );
            let shown = format!("{error} {error:?}");
            assert!(
                !shown.contains("passwd"),
                "{} / {transport}: {shown}",
                row.name
            );
            assert!(
                shown.len() < 2_000,
                "{} / {transport}: error quotes the body",
                row.name
            );
            emulator.stop().await;
        }
    }
}

#[tokio::test]
async fn c13_1c_error_texts_that_echo_contact_data_are_masked_in_the_error() {
    for transport in TRANSPORTS {
        // Given 1C rejecting the customer with a message that echoes its e-mail, phone and INN
        let echo = "Контрагент ivanov@example.ru (+7 912 345-67-89, ИНН 500100732259) уже есть";
        let body = match transport {
            Transport::Json => {
                json!({"error": {"code": "validation", "message": echo}}).to_string()
            }
            Transport::OData => {
                json!({"odata.error": {"code": "-1", "message": {"lang": "ru", "value": echo}}})
                    .to_string()
            }
            Transport::CommerceMl => {
                format!("<Ошибка><Код>business</Код><Сообщение>{echo}</Сообщение></Ошибка>")
            }
        };
        let status = if transport == Transport::Json {
            422
        } else {
            500
        };
        let emulator = Emulator::start().await;
        let client = emulator.client(transport);
        emulator.script(upsert_answers(
            transport,
            status,
            ok_content_type(transport),
            body.as_bytes(),
        ));

        // When the export fails
        let result = client.upsert_customer(&individual(&platform_id())).await;

        // Then the rejection keeps 1C's words but not the contact data
        let error = assert_error(result, "rejected", Permanent);
        let shown = format!("{error} {error:?}");
        for raw in ["ivanov@example.ru", "912 345-67-89", "500100732259"] {
            assert!(!shown.contains(raw), "{transport}: {shown}");
        }
        assert!(shown.contains("i***@e***.ru"), "{transport}: {shown}");
        assert!(shown.contains("уже есть"), "{transport}: {shown}");
        emulator.stop().await;
    }
}

#[tokio::test]
async fn c14_a_request_body_above_the_limit_is_refused_before_sending() {
    for transport in [Transport::Json, Transport::OData] {
        // Given a client that sends at most 4 KiB and a customer with a 64 KiB extra attribute
        let emulator = Emulator::start().await;
        let client = emulator.client_with(transport, |c| c.max_request_bytes = 4096);
        let mut cp = individual(&platform_id());
        cp.extra.insert("Комментарий".into(), "Ж".repeat(32 * 1024));

        // When it is exported
        let result = client.upsert_customer(&cp).await;

        // Then nothing is sent and the error is a permanent invalid request naming the limit
        let error = assert_error(result, "invalid_request", Permanent);
        assert!(
            error.to_string().contains("larger than 4096"),
            "{transport}: {error}"
        );
        assert!(emulator.handle.counterparties().is_empty(), "{transport}");
        emulator.stop().await;
    }
}

#[test]
fn c15_a_zero_request_limit_is_a_configuration_error() {
    let mut config = OneCConfig::new(
        "https://1c.example.ru/trade".parse().expect("URL"),
        Transport::Json,
        Credentials::new("Обмен", "pw"),
        false,
    )
    .expect("valid config");
    config.max_request_bytes = 0;
    assert!(config.validate().is_err());
}

// ------------------------------------------------------------------------------------------
// Broken HTTP on the wire → a raw TCP server on 127.0.0.1
// ------------------------------------------------------------------------------------------

/// What the raw server does once it has read a request.
#[derive(Clone)]
enum Wire {
    /// Sends `head`, then the body one byte every `every`.
    Drip { head: &'static str, every: Duration },
    /// Sends the status line one byte every `every` (headers never complete).
    DripHead { every: Duration },
    /// Sends these bytes and closes the connection.
    Raw(&'static [u8]),
}

/// A raw HTTP/1.1 server on 127.0.0.1:0; aborted when dropped.
struct RawServer {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn raw_server(wire: Wire) -> RawServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let wire = wire.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Enough of the request to answer it; the body does not matter here.
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65_536 {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                match wire {
                    Wire::Drip { head, every } => {
                        if socket.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        for _ in 0..200 {
                            tokio::time::sleep(every).await;
                            if socket.write_all(b" ").await.is_err() {
                                return;
                            }
                        }
                    }
                    Wire::DripHead { every } => {
                        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX: "
                            .iter()
                            .cycle()
                            .take(400)
                        {
                            tokio::time::sleep(every).await;
                            if socket.write_all(&[*byte]).await.is_err() {
                                return;
                            }
                        }
                    }
                    Wire::Raw(bytes) => {
                        let _ = socket.write_all(bytes).await;
                        let _ = socket.shutdown().await;
                    }
                }
            });
        }
    });
    RawServer { port, task }
}

fn raw_client(server: &RawServer, transport: Transport) -> Arc<dyn OneCClient> {
    let url = format!("http://127.0.0.1:{}/trade", server.port)
        .parse()
        .expect("URL");
    let mut config = OneCConfig::new(url, transport, Credentials::new("Обмен", "pw"), true)
        .expect("a loopback config");
    config.request_timeout = SHORT_TIMEOUT;
    build_client(config).expect("client")
}

struct WireRow {
    name: &'static str,
    wire: Wire,
    kind: &'static str,
}

fn wire_rows() -> Vec<WireRow> {
    vec![
        WireRow {
            name: "W1 slow-drip body (a byte every 50 ms)",
            wire: Wire::Drip {
                head: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
                every: Duration::from_millis(50),
            },
            kind: "timeout",
        },
        WireRow {
            name: "W2 slow-drip headers",
            wire: Wire::DripHead {
                every: Duration::from_millis(50),
            },
            kind: "timeout",
        },
        WireRow {
            name: "W3 body shorter than its Content-Length, then close",
            wire: Wire::Raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"onec_id\":"),
            kind: "http",
        },
        WireRow {
            name: "W4 an answer that is not HTTP",
            wire: Wire::Raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
            kind: "http",
        },
        WireRow {
            name: "W5 connection closed without an answer",
            wire: Wire::Raw(b""),
            kind: "http",
        },
    ]
}

#[tokio::test]
async fn broken_http_on_the_wire_is_a_transient_error_within_the_request_timeout() {
    for row in wire_rows() {
        for transport in TRANSPORTS {
            // Given a server that misbehaves on the wire
            let server = raw_server(row.wire.clone()).await;
            let client = raw_client(&server, transport);

            // When a customer is exported
            let started = Instant::now();
            let result = client.upsert_customer(&individual(&platform_id())).await;

            // Then the client gives up in about the timeout with a transient error of the kind
            let error = match result {
                Ok(ok) => panic!(
                    "{} / {transport}: expected {}, got {ok:?}",
                    row.name, row.kind
                ),
                Err(error) => error,
            };
            assert_eq!(
                error.kind(),
                row.kind,
                "{} / {transport}: {error:?}",
                row.name
            );
            assert_eq!(
                shared::error::Classify::class(&error),
                Transient,
                "{} / {transport}",
                row.name
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{} / {transport}: took {:?}",
                row.name,
                started.elapsed()
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// Crashes the fuzzer found (docs/bad-input.md, "Fuzzing"), kept fixed
// ------------------------------------------------------------------------------------------

#[test]
fn f1_f2_contact_values_the_parsers_accept_never_survive_the_pii_scrubber() {
    use shared::domain::{Email, Phone};
    // (row, value as the parser accepts it)
    let rows: [(&str, Result<String, String>); 2] = [
        (
            // domain_values crash-1f32c442…: the scrubber only knew letters, digits and ._%+-'
            // in an address; the parser accepts anything but whitespace and control characters.
            "F1 e-mail with replacement characters",
            Email::parse("и\u{FFFD}@\u{FFFD}н\u{FFFD}\u{FFFD}аример.рф")
                .map(|e| e.as_str().to_owned())
                .map_err(|e| e.to_string()),
        ),
        (
            // domain_values crash-f07f250b…: an 8-digit E.164 number (Norfolk Island) was below
            // the scrubber's 10-digit floor.
            "F2 short international phone",
            Phone::parse("+67287285")
                .map(|p| p.as_str().to_owned())
                .map_err(|e| e.to_string()),
        ),
    ];
    for (row, parsed) in rows {
        // Given a value the parser accepts
        let value = parsed.unwrap_or_else(|e| panic!("{row}: the parser refuses it: {e}"));

        // When 1C echoes it in an error text
        let scrubbed = shared::pii::scrub(&format!("1C: {value} уже используется."));

        // Then the scrubbed text does not carry it
        assert!(!scrubbed.contains(&value), "{row}: {scrubbed:?}");
        assert!(
            scrubbed.ends_with("уже используется."),
            "{row}: {scrubbed:?}"
        );
    }
}
