//! The exporter's world of in-memory ports, shared by the handler's test binaries.
#![allow(dead_code)] // each binary uses its own part

use aws_lambda_events::event::sqs::SqsEvent;
use exporter::{Deps, HandlerSettings, Jitter, QueueRoutes};
use serde_json::{json, Value};
use shared::domain::{Customer, SyncStatus};
use shared::export::CustomerExportService;
use shared::mapping::CustomerDataMapper;
use shared::metrics::Metrics;
use shared::onec::OneCError;
use shared::testing::{FakeCustomerStore, FakeMessageControl, FakeOneCClient, FakeSyncLog};
use std::sync::Arc;
use std::time::Duration;

pub const GOOD_BATCH: &str = include_str!("../../../../events/sqs-good-batch.json");
pub const POISON_BATCH: &str = include_str!("../../../../events/sqs-poison-batch.json");
pub const PRIORITY_URL: &str =
    "https://sqs.eu-central-1.amazonaws.com/123456789012/onec-sync-export-priority";
pub const BULK_URL: &str =
    "https://sqs.eu-central-1.amazonaws.com/123456789012/onec-sync-export-bulk";

pub struct World {
    pub store: Arc<FakeCustomerStore>,
    pub log: Arc<FakeSyncLog>,
    pub onec: Arc<FakeOneCClient>,
    pub control: Arc<FakeMessageControl>,
    pub metrics: Arc<Metrics>,
    pub deps: Deps,
}

pub fn settings(concurrency: usize) -> HandlerSettings {
    HandlerSettings {
        max_attempts: 5,
        concurrency,
        backoff_base: Duration::from_secs(30),
        backoff_cap: Duration::from_secs(900),
        breaker_threshold: 3,
        jitter: Jitter::Fixed(0.0),
        routes: QueueRoutes::new(PRIORITY_URL, BULK_URL),
    }
}

pub fn world_with(onec: FakeOneCClient, settings: HandlerSettings) -> World {
    world_with_store(FakeCustomerStore::new(), onec, settings)
}

pub fn world_with_store(
    store: FakeCustomerStore,
    onec: FakeOneCClient,
    settings: HandlerSettings,
) -> World {
    let store = Arc::new(store);
    let log = Arc::new(FakeSyncLog::new());
    let onec = Arc::new(onec);
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
        metrics: metrics.clone(),
        settings,
    };
    World {
        store,
        log,
        onec,
        control,
        metrics,
        deps,
    }
}

pub fn world() -> World {
    world_with(FakeOneCClient::new(), settings(4))
}

pub fn customer(id: &str, version: u64) -> Customer {
    Customer {
        id: id.into(),
        email: Some("ivan.petrov@example.com".into()),
        phone: Some("+79123456789".into()),
        first_name: Some("Иван".into()),
        last_name: Some("Петров".into()),
        role: Some("retail".into()),
        status: Some("active".into()),
        needs_1c_export: true,
        sync_status: Some(SyncStatus::Pending),
        version,
        ..Customer::default()
    }
}

pub fn event(json: &str) -> SqsEvent {
    serde_json::from_str(json).expect("the event fixture is a Lambda SQS event")
}

/// The good batch's record `index` alone, delivered for the `receive_count`-th time.
pub fn single(index: usize, receive_count: u32) -> SqsEvent {
    let mut event = event(GOOD_BATCH);
    let mut record = event.records.swap_remove(index);
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    event.records = vec![record];
    event
}

/// `n` registration messages for `u-1`..`u-n`, whose rows exist.
pub fn registrations(world: &World, n: usize) -> SqsEvent {
    let template = single(0, 1).records.remove(0);
    let mut event = SqsEvent::default();
    for i in 1..=n {
        let id = format!("u-{i}");
        world.store.insert(&customer(&id, 1));
        let mut record = template.clone();
        record.message_id = Some(format!("m-{i}"));
        record.receipt_handle = Some(format!("r-{i}"));
        record.body = Some(
            json!({"customer_id": id, "reason": "registration", "version": 1,
                   "changed_at": "2026-11-28T10:15:30Z"})
            .to_string(),
        );
        event.records.push(record);
    }
    event
}

pub fn failed_ids(response: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    ids.sort();
    ids
}

pub fn unavailable() -> OneCError {
    OneCError::Unavailable {
        status: 503,
        retry_after: None,
        detail: None,
    }
}

pub fn emf_metric_names(metrics: &Metrics) -> Vec<String> {
    let mut buf = Vec::new();
    metrics.flush(&mut buf).expect("flush into a Vec");
    let mut names: Vec<String> = String::from_utf8(buf)
        .expect("UTF-8")
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .flat_map(|doc| {
            doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| m["Name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}
