//! No e-mail, phone or INN of a customer in any log line, sync log entry, row error or DLQ
//! attribute: the stream filter and the exporter (real HTTP to the 1C emulator) run over
//! customers with known contact data, through success and every error path, while a tracing
//! subscriber writes every line (debug and up, span fields included) into a buffer.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use exporter::{handle, Deps, HandlerSettings, Jitter, QueueRoutes};
use integration_tests::emulator::{respond, Emulator};
use serde_json::{json, Value};
use shared::domain::Customer;
use shared::export::CustomerExportService;
use shared::filter::{FilterPolicy, RemovePolicy};
use shared::mapping::CustomerDataMapper;
use shared::metrics::Metrics;
use shared::onec::Transport;
use shared::testing::{FakeCustomerStore, FakeExportQueue, FakeMessageControl, FakeSyncLog};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every log line written while the test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// JSON lines like the Lambda's structured logs, with the current span and its parents.
fn capture_logs() -> Captured {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "debug,hyper=info,hyper_util=info,reqwest=info,h2=info,rustls=info",
        ))
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .expect("this file's only test installs the subscriber");
    captured
}

/// Contact data of the test customers; none of it may appear anywhere an operator looks.
const PII: &[&str] = &[
    "anna.secret@example.com",
    "+79031234567",
    "9031234567",
    "500100732259",
    "boris.hidden@example.org",
    "+79037654321",
    "500100732258",
    "clara.private@example.net",
    "+79035550011",
    "7707083893",
    "dmitry.x@example.com",
    "+79036660022",
    "eve.page@example.com",
    "frank.stream@example.com",
    "+79037770033",
];

fn customer(id: &str, email: &str, phone: &str, inn: &str) -> Customer {
    Customer {
        id: id.into(),
        email: Some(email.into()),
        phone: Some(phone.into()),
        first_name: Some("Тест".into()),
        last_name: Some("Клиентов".into()),
        tax_id: Some(inn.into()),
        role: Some("retail".into()),
        status: Some("active".into()),
        needs_1c_export: true,
        version: 1,
        ..Customer::default()
    }
}

fn legal(id: &str, email: &str, phone: &str) -> Customer {
    Customer {
        company_name: Some("ООО Клара".into()),
        kpp: Some("770701001".into()),
        ..customer(id, email, phone, "7707083893")
    }
}

const PRIORITY_URL: &str = "https://sqs.eu-central-1.amazonaws.com/1/onec-sync-export-priority";
const BULK_URL: &str = "https://sqs.eu-central-1.amazonaws.com/1/onec-sync-export-bulk";

fn message(id: &str, body: Option<&str>, receive_count: u32) -> SqsEvent {
    let mut record = SqsMessage::default();
    record.message_id = Some(format!("m-{id}"));
    record.receipt_handle = Some(format!("r-{id}"));
    record.event_source_arn = Some("arn:aws:sqs:eu-central-1:1:onec-sync-export-priority".into());
    record.body = Some(body.map(str::to_owned).unwrap_or_else(|| {
        json!({"customer_id": id, "reason": "registration", "version": 1,
               "changed_at": "2026-11-28T10:15:30Z"})
        .to_string()
    }));
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    let mut event = SqsEvent::default();
    event.records = vec![record];
    event
}

fn ddb_image(c: &Customer) -> Value {
    let mut image = serde_json::Map::new();
    let row = serde_json::to_value(c).expect("a customer serialises");
    for (name, value) in row.as_object().expect("an object") {
        let typed = match value {
            Value::String(s) => json!({"S": s}),
            Value::Number(n) => json!({"N": n.to_string()}),
            Value::Bool(b) => json!({"BOOL": b}),
            _ => continue,
        };
        image.insert(name.clone(), typed);
    }
    Value::Object(image)
}

fn stream_record(seq: u64, event_name: &str, new: Option<Value>, old: Option<Value>) -> Value {
    let mut change = json!({
        "ApproximateCreationDateTime": 1_764_324_930,
        "Keys": {"id": {"S": format!("s-{seq}")}},
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
    json!({"awsRegion": "eu-central-1", "eventID": format!("e-{seq}"), "eventName": event_name,
           "eventSource": "aws:dynamodb", "eventVersion": "1.1",
           "eventSourceARN": "arn:aws:dynamodb:eu-central-1:1:table/users/stream/x",
           "dynamodb": change})
}

#[tokio::test]
async fn no_log_line_sync_log_entry_row_error_or_dlq_attribute_carries_a_customers_contact_data() {
    let logs = capture_logs();

    // Given the stream filter over registrations, edits, removals and unreadable records
    let frank = customer(
        "s-1",
        "frank.stream@example.com",
        "+79037770033",
        "500100732259",
    );
    let mut frank_edited = frank.clone();
    frank_edited.email = Some("anna.secret@example.com".into());
    frank_edited.version = 2;
    let mut unreadable = ddb_image(&frank);
    unreadable["version"] = json!({"S": "+79031234567"});
    let records = vec![
        stream_record(1, "INSERT", Some(ddb_image(&frank)), None),
        stream_record(
            2,
            "MODIFY",
            Some(ddb_image(&frank_edited)),
            Some(ddb_image(&frank)),
        ),
        stream_record(3, "INSERT", Some(unreadable), None),
        stream_record(4, "MODIFY", Some(ddb_image(&frank)), None),
        stream_record(5, "REMOVE", None, Some(ddb_image(&frank))),
        stream_record(6, "BOGUS", Some(ddb_image(&frank)), None),
    ];
    let event: Event = serde_json::from_value(json!({"Records": records})).expect("stream event");
    let filter = stream_filter::Deps {
        queue: FakeExportQueue::new(),
        marker: FakeCustomerStore::new(),
        policy: FilterPolicy::new(["email", "phone", "tax_id"], RemovePolicy::Deactivate),
        metrics: Metrics::new("OnecSync", "stream-filter"),
    };
    // A queue refusing one customer drives the checkpoint path, which logs the error chain.
    filter.queue.refuse_customer("s-1");
    let outcome = stream_filter::process(&filter, &event)
        .await
        .expect("the filter runs");
    assert!(
        outcome.checkpoint.is_some(),
        "the refused enqueue checkpoints"
    );
    assert_eq!(outcome.invalid.values().sum::<u64>(), 3);

    // Given the exporter wired to the 1C emulator over HTTP
    let emulator = Emulator::start().await;
    let store = Arc::new(FakeCustomerStore::new());
    let sync_log = Arc::new(FakeSyncLog::new());
    let control = Arc::new(FakeMessageControl::new());
    let metrics = Arc::new(Metrics::new("OnecSync", "exporter"));
    let deps = Deps {
        service: CustomerExportService::new(
            store.clone(),
            sync_log.clone(),
            emulator.client(Transport::Json),
            CustomerDataMapper::default(),
            metrics.clone(),
            "json",
        ),
        control: control.clone(),
        metrics,
        settings: HandlerSettings {
            max_attempts: 2,
            concurrency: 1,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(2),
            breaker_threshold: 10,
            jitter: Jitter::Fixed(0.0),
            routes: QueueRoutes::new(PRIORITY_URL, BULK_URL),
        },
    };
    let anna = customer(
        "u-anna",
        "anna.secret@example.com",
        "+79031234567",
        "500100732259",
    );
    let boris = customer(
        "u-boris",
        "boris.hidden@example.org",
        "+79037654321",
        "500100732258",
    );
    let clara = legal("u-clara", "clara.private@example.net", "+79035550011");
    let dmitry = customer(
        "u-dmitry",
        "dmitry.x@example.com",
        "+79036660022",
        "500100732259",
    );
    let eve = customer(
        "u-eve",
        "eve.page@example.com",
        "+79036660022",
        "500100732259",
    );
    for c in [&anna, &boris, &clara, &dmitry, &eve] {
        store.insert(c);
    }
    let json_ct = "application/json; charset=utf-8";

    // When a valid customer is exported
    let response = handle(&deps, message("u-anna", None, 1))
        .await
        .expect("handled");
    assert!(response.batch_item_failures.is_empty(), "anna exports");

    // And one with an invalid INN is refused by the mapper
    handle(&deps, message("u-boris", None, 1))
        .await
        .expect("handled");

    // And 1C rejects one with a text that echoes its e-mail, phone and INN
    let echo = "Адрес clara.private@example.net и телефон +79035550011 (ИНН 7707083893) заняты";
    emulator.script(vec![respond(
        422,
        json_ct,
        &json!({"error": {"code": "validation", "message": echo}}).to_string(),
    )]);
    handle(&deps, message("u-clara", None, 1))
        .await
        .expect("handled");

    // And 1C fails transiently, echoing an e-mail, until the attempts are spent
    let outage = json!({"error": {"code": "internal",
        "message": "Сеанс dmitry.x@example.com прерван, тел. +79036660022"}})
    .to_string();
    for attempt in 1..=2 {
        emulator.script(vec![respond(503, json_ct, &outage)]);
        handle(&deps, message("u-dmitry", None, attempt))
            .await
            .expect("handled");
    }

    // And a gateway answers with an HTML page whose title carries an e-mail
    emulator.script(vec![respond(
        502,
        "text/html",
        "<html><head><title>Ошибка для eve.page@example.com</title></head></html>",
    )]);
    handle(&deps, message("u-eve", None, 2))
        .await
        .expect("handled");

    // And a body that is not an export message quotes contact data
    let poison =
        r#"{"customer_id":"u-x","email":"anna.secret@example.com","phone":"+79031234567"}"#;
    handle(&deps, message("u-poison", Some(poison), 1))
        .await
        .expect("handled");
    emulator.stop().await;

    // Then every path ran (so the logs below cover them)
    let letters = control.dead_letters();
    let kinds: Vec<&str> = letters.iter().map(|l| l.error_kind.as_str()).collect();
    assert!(kinds.contains(&"validation"), "{kinds:?}");
    assert!(kinds.contains(&"rejected"), "{kinds:?}");
    assert!(kinds.contains(&"malformed_message"), "{kinds:?}");
    let clara_row = store.row("u-clara").expect("row");
    assert!(clara_row["sync_error_message"]
        .as_str()
        .is_some_and(|m| m.contains("c***@e***.net") && m.contains("заняты")));
    let dmitry_row = store.row("u-dmitry").expect("row");
    assert_eq!(
        dmitry_row["sync_status"],
        json!("error"),
        "gave up after 2 attempts"
    );

    // And no raw contact data appears in the logs, the sync log, the rows' errors or the DLQ
    // attributes (the DLQ body is the original message, kept as is for a redrive)
    let text = logs.text();
    assert!(text.lines().count() > 10, "the logs were captured: {text}");
    // The rejection was logged, masked
    assert!(
        text.contains("1C call failed") && text.contains("c***@e***.net"),
        "{text}"
    );
    if std::env::var_os("PII_LOGS_DUMP").is_some() {
        eprintln!("{text}");
    }
    let mut places: Vec<(String, String)> = vec![("logs".into(), text)];
    for entry in sync_log.entries() {
        places.push(("sync log".into(), format!("{entry:?}")));
    }
    for id in ["u-anna", "u-boris", "u-clara", "u-dmitry", "u-eve"] {
        let row = store.row(id).expect("row");
        places.push((
            format!("{id} sync_error_message"),
            row["sync_error_message"].to_string(),
        ));
    }
    for letter in &letters {
        places.push((
            "DLQ attributes".into(),
            format!(
                "{} {} {} {:?}",
                letter.error_kind,
                letter.error_message,
                letter.original_message_id,
                letter.customer_id
            ),
        ));
    }
    for (place, text) in &places {
        for raw in PII {
            assert!(!text.contains(raw), "{place} contains {raw}:\n{text}");
        }
    }
}
