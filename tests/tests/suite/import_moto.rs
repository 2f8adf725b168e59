//! The 1C → platform import end to end: the 1C emulator (JSON transport) edited through its
//! admin operations, `ImportService` with the DynamoDB adapters on moto, and the users-table
//! stream run through the real stream filter to prove import writes export nothing.

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::emulator::Emulator;
use integration_tests::moto_stack::{get_row, put_row, MotoStack};
use local_stack::spec::unique_prefix;
use local_stack::{sdk_config, MotoServer, StackOutputs, StreamPoller, StreamPollerConfig};
use onec_emulator::{CounterpartyFields, CounterpartyKind, CounterpartyPatch, CounterpartyRecord};
use serde_json::{json, Value};
use shared::adapters::dynamodb::{DynamoDbCustomerStore, DynamoDbSyncLog};
use shared::adapters::dynamodb_import::DynamoDbImportStore;
use shared::adapters::sqs::SqsExportQueue;
use shared::domain::{Customer, SyncStatus};
use shared::filter::{decide, Decision, FilterPolicy, IgnoreReason, RemovePolicy};
use shared::import::{user_id_for_counterparty, ImportPageReport, ImportService};
use shared::mapping::{CustomerDataMapper, MappingConfig};
use shared::metrics::Metrics;
use shared::onec::Transport;
use std::sync::{Arc, Mutex};
use stream_filter::{handle, Deps};

struct Rig {
    _moto: MotoServer,
    emulator: Emulator,
    stack: StackOutputs,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    service: ImportService,
}

async fn rig() -> Rig {
    let MotoStack {
        aws,
        stack,
        dynamodb,
        sqs,
        moto,
    } = MotoStack::start("import").await;
    let emulator = Emulator::start().await;
    let service = ImportService::new(
        emulator.client(Transport::Json),
        Arc::new(DynamoDbImportStore::new(
            dynamodb.clone(),
            &stack.users_table,
        )),
        Arc::new(DynamoDbSyncLog::new(
            dynamodb.clone(),
            &stack.sync_log_table,
            30,
        )),
        CustomerDataMapper::default(),
    );
    Rig {
        _moto: moto,
        emulator,
        dynamodb,
        sqs,
        streams: aws_sdk_dynamodbstreams::Client::new(&aws),
        stack,
        service,
    }
}

fn policy() -> FilterPolicy {
    FilterPolicy::new(
        MappingConfig::default().significant_fields(),
        RemovePolicy::Deactivate,
    )
}

impl Rig {
    /// A platform customer that an earlier export put into 1C: the counterparty exists in the
    /// emulator and the row records it, in sync at version 3.
    async fn exported_customer(&self, id: &str) -> CounterpartyRecord {
        let record = self
            .emulator
            .handle
            .create_in_1c(CounterpartyFields {
                platform_id: Some(id.to_owned()),
                first_name: Some("Анна".into()),
                last_name: Some("Иванова".into()),
                email: Some("anna@example.com".into()),
                phone: Some("+79123456789".into()),
                role: Some("Розница".into()),
                status: Some("Активен".into()),
                ..CounterpartyFields::new(CounterpartyKind::Individual, "Иванова Анна")
            })
            .expect("the emulator stores the counterparty");
        let row = json!({
            "id": id,
            "email": "anna@example.com",
            "phone": "+7 912 345-67-89",
            "first_name": "Анна",
            "last_name": "Иванова",
            "role": "retail",
            "status": "active",
            "onec_id": record.onec_id,
            "onec_version": record.data_version,
            "sync_status": "synced",
            "needs_1c_export": false,
            "synced_version": 3,
            "version": 3,
            "loyalty_tier": "gold",
        });
        put_row(&self.dynamodb, &self.stack.users_table, row).await;
        record
    }

    fn edit_in_1c(&self, onec_id: &str, patch: CounterpartyPatch) {
        self.emulator
            .handle
            .edit_in_1c(onec_id, patch)
            .expect("the emulator edits the counterparty");
    }

    /// A platform edit as the site makes it: fields and a version bump, nothing exported yet.
    async fn platform_edit(&self, id: &str, role: &str) {
        self.dynamodb
            .update_item()
            .table_name(&self.stack.users_table)
            .key("id", AttributeValue::S(id.into()))
            .update_expression("SET #role = :role, #version = #version + :one")
            .expression_attribute_names("#role", "role")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":role", AttributeValue::S(role.into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .expect("UpdateItem");
    }

    async fn row(&self, id: &str) -> Value {
        get_row(&self.dynamodb, &self.stack.users_table, id).await
    }

    async fn customer(&self, id: &str) -> Customer {
        serde_json::from_value(self.row(id).await).expect("the row is a customer")
    }

    async fn sync_log(&self, id: &str) -> Vec<Value> {
        self.dynamodb
            .query()
            .table_name(&self.stack.sync_log_table)
            .key_condition_expression("customer_id = :id")
            .expression_attribute_values(":id", AttributeValue::S(id.into()))
            .send()
            .await
            .expect("Query on the sync log")
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| serde_dynamo::from_item(item).expect("a log entry reads as JSON"))
            .collect()
    }

    /// Every page from `watermark` on; the reports in order.
    async fn import_all(&self, watermark: Option<&str>, page_size: u32) -> Vec<ImportPageReport> {
        let mut reports = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let report = self
                .service
                .import_page(watermark, cursor.as_deref(), page_size)
                .await
                .expect("the page applies");
            cursor = report.next_cursor.clone();
            reports.push(report);
            if cursor.is_none() {
                return reports;
            }
        }
    }

    fn stream_poller(&self) -> StreamPoller {
        StreamPoller::new(
            self.streams.clone(),
            &self.stack.users_stream_arn,
            StreamPollerConfig::default(),
        )
    }

    /// Runs what the stream holds through the real filter handler (which enqueues for real),
    /// returning every record's decision.
    async fn filter(&self, poller: &mut StreamPoller) -> Vec<(EventRecord, Decision)> {
        let deps = Deps {
            queue: SqsExportQueue::new(
                self.sqs.clone(),
                &self.stack.priority_queue_url,
                &self.stack.bulk_queue_url,
            ),
            marker: DynamoDbCustomerStore::new(self.dynamodb.clone(), &self.stack.users_table),
            policy: policy(),
            metrics: Metrics::new("OnecSyncTest", "stream-filter"),
        };
        let seen = Mutex::new(Vec::new());
        let report = poller
            .drain(|event| {
                for record in &event.records {
                    let decision = decide(record, &policy()).expect("the record is readable");
                    seen.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((record.clone(), decision));
                }
                handle(&deps, event)
            })
            .await
            .expect("the stream drains");
        assert!(report.failed_batches.is_empty(), "{report:?}");
        seen.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    async fn queued(&self) -> u64 {
        let mut total = 0;
        for url in [&self.stack.priority_queue_url, &self.stack.bulk_queue_url] {
            let attributes = self
                .sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                )
                .send()
                .await
                .expect("GetQueueAttributes")
                .attributes
                .unwrap_or_default();
            total += attributes
                .values()
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>();
        }
        total
    }
}

fn sum(reports: &[ImportPageReport], f: impl Fn(&ImportPageReport) -> u64) -> u64 {
    reports.iter().map(f).sum()
}

fn messages(entries: &[Value], operation: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["operation_type"] == json!(operation))
        .filter_map(|e| e["details"]["message"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn role_and_status_changed_in_1c_reach_the_user_and_export_nothing() {
    // Given an exported customer, the stream read past its creation
    let rig = rig().await;
    let record = rig.exported_customer("u-role").await;
    let mut poller = rig.stream_poller();
    rig.filter(&mut poller).await;
    let queued_before = rig.queued().await;

    // When 1C makes the customer wholesale and blocked, and the import runs
    rig.edit_in_1c(
        &record.onec_id,
        CounterpartyPatch {
            role: Some(Some("Опт".into())),
            status: Some(Some("Заблокирован".into())),
            ..CounterpartyPatch::default()
        },
    );
    let reports = rig.import_all(None, 10).await;

    // Then the user has them, in sync at a new version, unknown attributes kept
    let row = rig.row("u-role").await;
    assert_eq!(sum(&reports, |r| r.updated), 1);
    assert_eq!(row["role"], json!("wholesale"));
    assert_eq!(row["status"], json!("blocked"));
    assert_eq!(
        (row["version"].clone(), row["synced_version"].clone()),
        (json!(4), json!(4))
    );
    assert_eq!(row["last_change_source"], json!("1c"));
    assert_eq!(row["loyalty_tier"], json!("gold"));
    let onec_version = rig
        .emulator
        .handle
        .counterparty(&record.onec_id)
        .map(|r| r.data_version);
    assert_eq!(
        row["onec_version"].as_str().map(str::to_owned),
        onec_version
    );
    // And the filter, fed the stream, ignores the import's write and enqueues nothing
    let decisions = rig.filter(&mut poller).await;
    assert!(!decisions.is_empty());
    for (_, decision) in &decisions {
        assert_eq!(decision, &Decision::Ignore(IgnoreReason::WrittenBySync));
    }
    assert_eq!(rig.queued().await, queued_before);
    rig.emulator.stop().await;
}

#[tokio::test]
async fn a_counterparty_entered_in_1c_becomes_a_created_in_1c_user_that_is_never_exported() {
    // Given a counterparty an operator entered in 1C, with no platform id
    let rig = rig().await;
    let mut poller = rig.stream_poller();
    let record = rig
        .emulator
        .handle
        .create_in_1c(CounterpartyFields {
            email: Some("petrov@example.ru".into()),
            phone: Some("+79001234567".into()),
            role: Some("Опт".into()),
            status: Some("Активен".into()),
            inn: Some("500100732259".into()),
            ..CounterpartyFields::new(CounterpartyKind::Individual, "Петров Пётр")
        })
        .expect("the emulator stores it");

    // When the import runs twice
    let first = rig.import_all(None, 10).await;
    let second = rig.import_all(None, 10).await;

    // Then exactly one user was created from it, marked as coming from 1C, in sync
    assert_eq!(sum(&first, |r| r.imported), 1);
    assert_eq!(sum(&second, |r| r.imported), 0);
    let id = user_id_for_counterparty(&record.onec_id);
    let user = rig.customer(&id).await;
    assert!(user.created_in_1c);
    assert!(!user.needs_1c_export);
    assert_eq!(user.sync_status, Some(SyncStatus::Synced));
    assert_eq!(user.onec_id.as_deref(), Some(record.onec_id.as_str()));
    assert_eq!(user.role.as_deref(), Some("wholesale"));
    assert_eq!(
        (user.last_name.as_deref(), user.first_name.as_deref()),
        (Some("Петров"), Some("Пётр"))
    );
    // And its stream records are never exported, nor is a later platform edit of it
    rig.platform_edit(&id, "vip").await;
    let decisions = rig.filter(&mut poller).await;
    assert_eq!(decisions.len(), 2, "the INSERT and the platform edit");
    for (_, decision) in &decisions {
        assert_eq!(decision, &Decision::Ignore(IgnoreReason::CreatedIn1C));
    }
    assert_eq!(rig.queued().await, 0);
    rig.emulator.stop().await;
}

#[tokio::test]
async fn concurrent_platform_and_1c_edits_are_resolved_by_ownership_and_logged_with_both_values() {
    // Given two exported customers
    let rig = rig().await;
    let racing = rig.exported_customer("u-racing").await;
    let diverged = rig.exported_customer("u-diverged").await;
    // And, on the first, the platform making them vip (not yet exported) while 1C makes them a
    // partner
    rig.platform_edit("u-racing", "vip").await;
    rig.edit_in_1c(
        &racing.onec_id,
        CounterpartyPatch {
            role: Some(Some("Партнёр".into())),
            ..CounterpartyPatch::default()
        },
    );
    // And, on the second, someone in 1C changing the e-mail the platform owns
    rig.edit_in_1c(
        &diverged.onec_id,
        CounterpartyPatch {
            email: Some(Some("someone.else@mail.ru".into())),
            ..CounterpartyPatch::default()
        },
    );

    // When the import runs
    let reports = rig.import_all(None, 10).await;

    // Then 1C's role wins on the first, its pending platform change stays to be exported
    assert_eq!(sum(&reports, |r| r.conflicts), 2);
    let first = rig.row("u-racing").await;
    assert_eq!(first["role"], json!("partner"));
    assert_eq!(
        (first["version"].clone(), first["synced_version"].clone()),
        (json!(5), json!(3))
    );
    // And the platform's e-mail stays on the second
    let second = rig.row("u-diverged").await;
    assert_eq!(second["email"], json!("anna@example.com"));
    assert_eq!(second["version"], json!(3));
    // And both conflicts are in the sync log with both values and the rule, PII masked
    assert_eq!(
        messages(&rig.sync_log("u-racing").await, "conflict"),
        vec![
            "field=role platform=\"vip\" onec=\"partner\" rule=onec_owns_field kept=onec \
             (1C owns the field)"
                .to_owned()
        ]
    );
    assert_eq!(
        messages(&rig.sync_log("u-diverged").await, "conflict"),
        vec![
            "field=email platform=\"a***@e***.com\" onec=\"s***@m***.ru\" \
             rule=platform_owns_field kept=platform (platform owns the field)"
                .to_owned()
        ]
    );
    rig.emulator.stop().await;
}

#[tokio::test]
async fn paging_from_a_watermark_imports_each_change_once_and_bad_data_does_not_stop_a_page() {
    // Given seven counterparties entered in 1C, one with a role the mapping does not know
    let rig = rig().await;
    let mut records = Vec::new();
    for i in 0..7 {
        let role = if i == 3 {
            "Дилер"
        } else {
            "Розница"
        };
        let record = rig
            .emulator
            .handle
            .create_in_1c(CounterpartyFields {
                role: Some(role.into()),
                ..CounterpartyFields::new(CounterpartyKind::Individual, format!("Клиент{i} Тест"))
            })
            .expect("the emulator stores it");
        records.push(record);
    }

    // When imported in pages of three, then again from the last watermark
    let first = rig.import_all(None, 3).await;
    let watermark = first.last().and_then(|r| r.watermark.clone());
    let again = rig.import_all(watermark.as_deref(), 3).await;

    // Then three pages created six users and counted one error, logged with its reason
    assert_eq!(first.len(), 3);
    assert_eq!(sum(&first, |r| r.imported), 6);
    assert_eq!(sum(&first, |r| r.errors), 1);
    let bad_key = user_id_for_counterparty(&records[3].onec_id);
    let log = rig.sync_log(&bad_key).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["details"]["error_kind"], json!("unmappable"));
    assert!(log[0]["details"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("role")));
    // And the second run from the watermark found nothing new
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].imported + again[0].updated + again[0].errors, 0);

    // When 1C later blocks one of them and the import continues from the watermark
    rig.edit_in_1c(
        &records[5].onec_id,
        CounterpartyPatch {
            status: Some(Some("Заблокирован".into())),
            ..CounterpartyPatch::default()
        },
    );
    let later = rig.import_all(watermark.as_deref(), 3).await;

    // Then only that change is applied
    assert_eq!(sum(&later, |r| r.updated), 1);
    let user = rig
        .customer(&user_id_for_counterparty(&records[5].onec_id))
        .await;
    assert_eq!(user.status.as_deref(), Some("blocked"));
    rig.emulator.stop().await;
}

#[tokio::test]
async fn a_user_is_found_by_1c_reference_through_an_index_and_through_a_scan() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    use shared::import::ImportStore;

    // Given a users table with a GSI on onec_id, holding a linked and an unlinked user
    let moto = MotoServer::start().await.expect("moto starts (make setup)");
    let aws = sdk_config(moto.endpoint()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let table = unique_prefix("users-gsi");
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("a key element builds")
    };
    let string_attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("an attribute definition builds")
    };
    dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(string_attribute("id"))
        .attribute_definitions(string_attribute("onec_id"))
        .key_schema(key("id", KeyType::Hash))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name("onec_id-index")
                .key_schema(key("onec_id", KeyType::Hash))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::KeysOnly)
                        .build(),
                )
                .build()
                .expect("the index builds"),
        )
        .send()
        .await
        .expect("CreateTable");
    for (id, onec_id) in [
        ("u-linked", Some("3f2c9a1e-0000-4000-8000-000000000001")),
        ("u-other", None),
    ] {
        let mut row = json!({"id": id, "version": 1, "email": "a@example.com"});
        if let Some(onec_id) = onec_id {
            row["onec_id"] = json!(onec_id);
        }
        put_row(&dynamodb, &table, row).await;
    }
    let scanning = DynamoDbImportStore::new(dynamodb.clone(), &table);
    let indexed = scanning.clone().with_onec_id_index("onec_id-index");

    // When both stores look the reference up, and an unknown one
    for store in [&scanning, &indexed] {
        let found = store
            .find_by_onec_id("3f2c9a1e-0000-4000-8000-000000000001")
            .await
            .expect("the lookup runs");
        let missing = store
            .find_by_onec_id("3f2c9a1e-0000-4000-8000-000000000002")
            .await
            .expect("the lookup runs");

        // Then the linked user is found, the unknown reference finds nobody
        assert_eq!(found.map(|s| s.customer.id).as_deref(), Some("u-linked"));
        assert!(missing.is_none());
    }
}
