//! Cost of one filter decision (`shared::filter::decide`) per stream record, over images shaped
//! like the `users` table's rows (platform attributes onec-sync does not know included, because
//! the decision compares whole images).

use aws_lambda_events::event::dynamodb::EventRecord;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_dynamo::{AttributeValue, Item};
use shared::domain::{Customer, SyncStatus};
use shared::filter::{decide, Decision, FilterPolicy, RemovePolicy};
use std::hint::black_box;

fn policy() -> FilterPolicy {
    FilterPolicy::new(
        [
            "email",
            "phone",
            "first_name",
            "last_name",
            "company_name",
            "tax_id",
            "kpp",
        ],
        RemovePolicy::Deactivate,
    )
}

fn platform_user(version: u64) -> Customer {
    Customer {
        id: "7b0c1d2e-0000-4000-8000-000000000001".into(),
        email: Some("ivan.petrov@example.com".into()),
        phone: Some("+79123456789".into()),
        first_name: Some("Иван".into()),
        last_name: Some("Петров".into()),
        role: Some("retail".into()),
        status: Some("active".into()),
        version,
        updated_at: Some("2026-11-28T10:15:30Z".into()),
        ..Customer::default()
    }
}

fn synced(mut customer: Customer) -> Customer {
    customer.onec_id = Some("9a1b6f0e-0000-4000-8000-000000000001".into());
    customer.onec_version = Some("AAAAAQAAAAE=".into());
    customer.synced_version = Some(customer.version);
    customer.sync_status = Some(SyncStatus::Synced);
    customer.last_sync_at = Some("2026-11-28T10:15:31Z".into());
    customer
}

/// The row as the platform stores it: the customer plus attributes only the site knows.
fn row(customer: &Customer) -> Item {
    let mut item: Item = match serde_dynamo::to_item(customer) {
        Ok(item) => item,
        Err(err) => panic!("a customer always encodes: {err}"),
    };
    item.insert("loyalty_tier".into(), AttributeValue::S("gold".into()));
    item.insert("marketing_opt_in".into(), AttributeValue::Bool(true));
    item.insert(
        "preferences".into(),
        AttributeValue::M(
            [
                ("newsletter".to_owned(), AttributeValue::Bool(true)),
                (
                    "channels".to_owned(),
                    AttributeValue::L(vec![
                        AttributeValue::S("email".into()),
                        AttributeValue::S("sms".into()),
                    ]),
                ),
            ]
            .into(),
        ),
    );
    item
}

fn record(event: &str, old: Option<&Customer>, new: Option<&Customer>) -> EventRecord {
    let mut record = EventRecord::default();
    record.event_name = event.into();
    record.event_id = "e000201".into();
    record.change.sequence_number = Some("100000000000000000201".into());
    record.change.approximate_creation_date_time =
        chrono::DateTime::from_timestamp(1_764_324_930, 0).unwrap_or_default();
    record.change.old_image = old.map(row).unwrap_or_default();
    record.change.new_image = new.map(row).unwrap_or_default();
    record
}

/// A case name, its record, and the check its decision must pass.
type Scenario = (&'static str, EventRecord, fn(&Decision) -> bool);

/// The record kinds of a typical stream, with the decision each must get (checked once, so a
/// benchmark never measures an error path by accident).
fn scenarios() -> Vec<Scenario> {
    let registered = platform_user(1);
    let exported = synced(platform_user(1));
    let mut edited = exported.clone();
    edited.email = Some("ivan.petrov@example.org".into());
    edited.version = 2;
    let mut seen_by_sync = exported.clone();
    seen_by_sync.last_sync_at = Some("2026-11-28T11:00:00Z".into());
    vec![
        (
            "insert_registration",
            record("INSERT", None, Some(&registered)),
            |d| matches!(d, Decision::MarkPendingAndEnqueue { .. }),
        ),
        (
            "modify_significant",
            record("MODIFY", Some(&exported), Some(&edited)),
            |d| matches!(d, Decision::Enqueue(_)),
        ),
        (
            "modify_write_back",
            record("MODIFY", Some(&registered), Some(&exported)),
            |d| matches!(d, Decision::Ignore(_)),
        ),
        (
            "modify_bookkeeping_only",
            record(
                "MODIFY",
                Some(&edited),
                Some(&{
                    let mut e = edited.clone();
                    e.export_attempts = 1;
                    e.sync_status = Some(SyncStatus::Retrying);
                    e
                }),
            ),
            |d| matches!(d, Decision::Ignore(_)),
        ),
        (
            "remove_deactivation",
            record("REMOVE", Some(&seen_by_sync), None),
            |d| matches!(d, Decision::Enqueue(_)),
        ),
    ]
}

fn filter_decision(c: &mut Criterion) {
    let policy = policy();
    let mut group = c.benchmark_group("filter_decide");
    group.throughput(Throughput::Elements(1));
    for (name, record, expected) in scenarios() {
        match decide(&record, &policy) {
            Ok(decision) if expected(&decision) => {}
            other => panic!("{name}: unexpected decision {other:?}"),
        }
        group.bench_function(name, |b| {
            b.iter(|| decide(black_box(&record), black_box(&policy)))
        });
    }
    // The whole record as Lambda hands it over: JSON → EventRecord → decision.
    let json = match serde_json::to_string(&scenarios()[1].1) {
        Ok(json) => json,
        Err(err) => panic!("a record always encodes: {err}"),
    };
    group.bench_function("parse_and_decide_modify", |b| {
        b.iter_batched(
            || json.clone(),
            |json| {
                let record: EventRecord = serde_json::from_str(&json).unwrap_or_default();
                decide(&record, &policy)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, filter_decision);
criterion_main!(benches);
