//! DLQ redrive against moto: dead letters made by the real exporter (permanent failures it
//! dead-letters itself, and retries exhausted until moto's redrive policy moves the message) are
//! moved back to their source queues by `shared::redrive` (moto has no StartMessageMoveTask, so
//! the manual move runs), and the exporter then syncs them.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use exporter::config::ExporterConfig;
use exporter::wiring::build_deps;
use exporter::{handle, Deps, Jitter};
use integration_tests::emulator::{platform_id, Emulator};
use integration_tests::moto_stack::{exporter_config, get_row, put_row, MotoStack};
use local_stack::spec::StackOutputs;
use local_stack::{MotoServer, SqsPoller, SqsPollerConfig};
use onec_emulator::FaultPlan;
use serde_json::{json, Value};
use shared::redrive::{
    reasons, redrive, redrive_with, Destination, EntryOutcome, RedriveOptions, RedriveStrategy,
};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// An INN whose check digit fails: the exporter dead-letters the customer as permanent.
const BAD_INN: &str = "7707083894";
const GOOD_INN: &str = "7707083893";

struct Rig {
    _moto: MotoServer,
    emulator: Emulator,
    stack: StackOutputs,
    dynamodb: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    deps: Deps,
    priority: SqsPoller,
    bulk: SqsPoller,
}

async fn rig() -> Rig {
    let MotoStack {
        aws,
        stack,
        dynamodb,
        sqs,
        moto,
    } = MotoStack::start("redrive").await;
    let emulator = Emulator::start().await;
    let config = ExporterConfig {
        backoff_cap: Duration::from_secs(1),
        ..exporter_config(&stack, &emulator, "json")
    };
    let mut deps = build_deps(&config, &aws)
        .await
        .expect("the exporter wires up");
    deps.settings.jitter = Jitter::Fixed(0.0);
    let poller = |url: &str| {
        SqsPoller::new(
            sqs.clone(),
            url.to_owned(),
            SqsPollerConfig {
                visibility_timeout: Some(Duration::from_secs(1)),
                ..SqsPollerConfig::default()
            },
        )
    };
    let priority = poller(&stack.priority_queue_url)
        .await
        .expect("the poller finds the queue");
    let bulk = poller(&stack.bulk_queue_url)
        .await
        .expect("the poller finds the queue");
    Rig {
        _moto: moto,
        emulator,
        dynamodb,
        sqs,
        stack,
        deps,
        priority,
        bulk,
    }
}

impl Rig {
    /// A platform row waiting for its export, with the given INN.
    async fn put_customer(&self, id: &str, inn: &str) {
        let row = json!({
            "id": id,
            "email": "ivan.petrov@example.com",
            "first_name": "Иван",
            "last_name": "Петров",
            "company_name": "Ромашка",
            "tax_id": inn,
            "kpp": "770701001",
            "role": "retail",
            "status": "active",
            "needs_1c_export": true,
            "sync_status": "pending",
            "version": 1,
        });
        put_row(&self.dynamodb, &self.stack.users_table, row).await;
    }

    /// The platform fixes the INN (a new version).
    async fn fix_inn(&self, id: &str) {
        self.dynamodb
            .update_item()
            .table_name(&self.stack.users_table)
            .key("id", AttributeValue::S(id.into()))
            .update_expression("SET tax_id = :inn, version = version + :one")
            .expression_attribute_values(":inn", AttributeValue::S(GOOD_INN.into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .send()
            .await
            .expect("UpdateItem");
    }

    /// Sends an export message for `id` as the stream filter does (registration: priority lane,
    /// profile change: bulk lane).
    async fn enqueue(&self, id: &str, reason: &str) {
        let url = if reason == "registration" {
            &self.stack.priority_queue_url
        } else {
            &self.stack.bulk_queue_url
        };
        let body = json!({"customer_id": id, "reason": reason, "version": 1,
                          "changed_at": chrono::Utc::now()});
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(body.to_string())
            .send()
            .await
            .expect("SendMessage");
    }

    async fn drain(&self) {
        for poller in [&self.priority, &self.bulk] {
            poller
                .drain(|event| handle(&self.deps, event), DRAIN_LIMIT)
                .await
                .expect("the queue drains");
        }
    }

    /// Visible and in-flight messages of a queue.
    async fn depth(&self, url: &str) -> u64 {
        self.sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .unwrap_or_default()
            .values()
            .filter_map(|v| v.parse::<u64>().ok())
            .sum()
    }

    async fn row(&self, id: &str) -> Value {
        get_row(&self.dynamodb, &self.stack.users_table, id).await
    }

    /// Three dead letters: a registration whose retries ran out while 1C was down (moved by
    /// moto's redrive policy), and a registration and a profile change the exporter
    /// dead-lettered for a bad INN. Returns the customer ids in that order.
    async fn three_dead_letters(&self) -> [String; 3] {
        let ids = [platform_id(), platform_id(), platform_id()];
        self.put_customer(&ids[0], GOOD_INN).await;
        self.put_customer(&ids[1], BAD_INN).await;
        self.put_customer(&ids[2], BAD_INN).await;
        self.emulator.handle.set_faults(FaultPlan {
            down: true,
            ..FaultPlan::default()
        });
        self.enqueue(&ids[0], "registration").await;
        self.enqueue(&ids[1], "registration").await;
        self.enqueue(&ids[2], "profile_change").await;
        self.drain().await;
        assert_eq!(self.depth(&self.stack.dlq_url).await, 3);
        ids
    }

    /// 1C is back and the bad data fixed.
    async fn repair(&self, ids: &[String; 3]) {
        self.emulator.handle.set_faults(FaultPlan::default());
        self.fix_inn(&ids[1]).await;
        self.fix_inn(&ids[2]).await;
    }
}

#[tokio::test]
async fn dead_letters_go_back_to_their_source_queues_and_then_sync() {
    // Given three dead letters from both lanes, and the causes repaired
    let rig = rig().await;
    let ids = rig.three_dead_letters().await;
    rig.repair(&ids).await;

    // When the DLQ is redriven
    let report = redrive(&rig.sqs, &rig.stack.dlq_url, &RedriveOptions::default())
        .await
        .expect("the redrive runs");

    // Then moto's missing move task led to the manual move, and each message went back to its
    // own source queue
    assert_eq!(report.strategy, RedriveStrategy::Manual);
    assert_eq!((report.moved, report.left), (3, 0));
    let destinations: BTreeMap<String, String> = report
        .entries
        .iter()
        .map(|e| {
            (
                e.customer_id.clone().unwrap_or_default(),
                e.destination.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(destinations[&ids[0]], rig.stack.priority_queue_url);
    assert_eq!(destinations[&ids[1]], rig.stack.priority_queue_url);
    assert_eq!(destinations[&ids[2]], rig.stack.bulk_queue_url);
    assert_eq!(rig.depth(&rig.stack.dlq_url).await, 0);
    assert_eq!(rig.depth(&rig.stack.priority_queue_url).await, 2);
    assert_eq!(rig.depth(&rig.stack.bulk_queue_url).await, 1);

    // When the exporter consumes the queues
    rig.drain().await;

    // Then all three customers are in 1C and their rows are synced
    for id in &ids {
        assert_eq!(rig.emulator.count_for(id), 1, "{id} reached 1C once");
        let row = rig.row(id).await;
        assert_eq!(row["sync_status"], json!("synced"));
    }
    assert_eq!(rig.depth(&rig.stack.dlq_url).await, 0);
    rig.emulator.stop().await;
}

#[tokio::test]
async fn a_dry_run_lists_ids_and_reasons_and_changes_nothing_and_a_limit_is_respected() {
    // Given three dead letters
    let rig = rig().await;
    let ids = rig.three_dead_letters().await;

    // When a dry run looks at the DLQ
    let dry = redrive(
        &rig.sqs,
        &rig.stack.dlq_url,
        &RedriveOptions {
            dry_run: true,
            limit: None,
        },
    )
    .await
    .expect("the dry run runs");

    // Then it lists every message with its customer and reason and where it would go
    assert_eq!(dry.strategy, RedriveStrategy::DryRun);
    assert_eq!(dry.entries.len(), 3);
    assert!(dry
        .entries
        .iter()
        .all(|e| e.outcome == EntryOutcome::WouldMove && e.destination.is_some()));
    assert_eq!(
        reasons(&dry),
        BTreeMap::from([
            ("exhausted_retries".to_owned(), 1),
            ("permanent_failure".to_owned(), 2)
        ])
    );
    let by_customer: HashMap<String, String> = dry
        .entries
        .iter()
        .map(|e| (e.customer_id.clone().unwrap_or_default(), e.reason.clone()))
        .collect();
    assert_eq!(by_customer[&ids[0]], "exhausted_retries");
    // And nothing moved: the DLQ still holds all three, visible again, the sources nothing
    assert_eq!(dry.moved, 0);
    assert_eq!(rig.depth(&rig.stack.dlq_url).await, 3);
    assert_eq!(rig.depth(&rig.stack.priority_queue_url).await, 0);
    assert_eq!(rig.depth(&rig.stack.bulk_queue_url).await, 0);
    let again = redrive(
        &rig.sqs,
        &rig.stack.dlq_url,
        &RedriveOptions {
            dry_run: true,
            limit: None,
        },
    )
    .await
    .expect("a second dry run runs");
    assert_eq!(
        again.entries.len(),
        3,
        "the first dry run released what it saw"
    );

    // When a redrive is limited to two messages
    let limited = redrive(
        &rig.sqs,
        &rig.stack.dlq_url,
        &RedriveOptions {
            dry_run: false,
            limit: Some(2),
        },
    )
    .await
    .expect("the redrive runs");

    // Then exactly two moved and one is still in the DLQ
    assert_eq!((limited.moved, limited.entries.len()), (2, 2));
    assert_eq!(rig.depth(&rig.stack.dlq_url).await, 1);
    assert_eq!(
        rig.depth(&rig.stack.priority_queue_url).await + rig.depth(&rig.stack.bulk_queue_url).await,
        2
    );
    rig.emulator.stop().await;
}

#[tokio::test]
async fn an_explicit_destination_receives_every_message() {
    // Given three dead letters from both lanes
    let rig = rig().await;
    let ids = rig.three_dead_letters().await;
    rig.repair(&ids).await;

    // When redriven to the bulk queue explicitly (the CLI's --to)
    let report = redrive_with(
        &rig.sqs,
        &rig.stack.dlq_url,
        &Destination::Queue(rig.stack.bulk_queue_url.clone()),
        &RedriveOptions::default(),
    )
    .await
    .expect("the redrive runs");

    // Then all three are on the bulk queue and sync from there
    assert_eq!(report.moved, 3);
    assert_eq!(rig.depth(&rig.stack.bulk_queue_url).await, 3);
    rig.drain().await;
    for id in &ids {
        assert_eq!(rig.row(id).await["sync_status"], json!("synced"));
    }
    rig.emulator.stop().await;
}
