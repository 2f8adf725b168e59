//! The operator CLI `sync_customers_with_1c` as a process against moto, configured only by the
//! standard AWS variables (`AWS_ENDPOINT_URL`, region, keys) and the functions' variables.

use aws_sdk_dynamodb::types::AttributeValue;
use local_stack::spec::unique_prefix;
use local_stack::{create_stack, sdk_config, MotoServer, StackOutputs};
use shared::adapters::dynamodb_runs::DynamoDbSyncRunStore;
use shared::sync_run::{RunStatus, SyncDirection, SyncRuns};
use std::process::Output;
use std::sync::Arc;

struct Rig {
    moto: MotoServer,
    stack: StackOutputs,
    aws: local_stack::SdkConfig,
    runs: SyncRuns,
}

async fn rig() -> Rig {
    let moto = MotoServer::start().await.expect("moto starts (make setup)");
    let aws = sdk_config(moto.endpoint()).await;
    let stack = create_stack(&aws, &unique_prefix("cli"))
        .await
        .expect("the local stack is created");
    let runs = SyncRuns::new(Arc::new(DynamoDbSyncRunStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        &stack.sync_runs_table,
    )));
    Rig {
        moto,
        stack,
        aws,
        runs,
    }
}

impl Rig {
    /// Runs the CLI with the stack's variables; a 1C URL nobody answers (exports never call 1C).
    async fn cli(&self, args: &[&str]) -> Output {
        let mut command =
            tokio::process::Command::new(env!("CARGO_BIN_EXE_sync_customers_with_1c"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_ENDPOINT_URL", self.moto.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("ONEC_BASE_URL", "http://127.0.0.1:9/trade")
            .env("ONEC_ALLOW_INSECURE_HTTP", "true")
            .env("ONEC_USERNAME", "u");
        for (name, value) in self.stack.function_env() {
            command.env(name, value);
        }
        command.output().await.expect("the CLI runs")
    }

    async fn put_user(&self, id: &str, synced: bool) {
        let mut request = aws_sdk_dynamodb::Client::new(&self.aws)
            .put_item()
            .table_name(&self.stack.users_table)
            .item("id", AttributeValue::S(id.into()))
            .item("version", AttributeValue::N("2".into()));
        if synced {
            request = request.item("synced_version", AttributeValue::N("2".into()));
        }
        request.send().await.expect("PutItem");
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn status_and_cancel_work_on_the_runs_table_and_a_second_run_is_refused() {
    // Given a run in progress (held by another worker)
    let rig = rig().await;
    rig.runs
        .start("r1", SyncDirection::Export, 100, 1, chrono::Utc::now())
        .await
        .expect("start");

    // When the operator asks for the status without naming the run
    let status = rig.cli(&["status"]).await;
    // Then the active run is shown with its state and counters
    assert!(status.status.success(), "{}", stderr(&status));
    let text = stdout(&status);
    assert!(
        text.contains("run r1") && text.contains("status running"),
        "{text}"
    );
    assert!(text.contains("scanned 0"), "{text}");

    // When a local run is started meanwhile
    let refused = rig
        .cli(&["run", "--direction", "export", "--chunk-size", "10"])
        .await;
    // Then it is refused with a message naming the running run
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("already running: run r1"),
        "{}",
        stderr(&refused)
    );

    // When the operator cancels it
    let cancel = rig.cli(&["cancel", "r1"]).await;
    // Then the run is cancelling, for its worker to stop at the next chunk
    assert!(cancel.status.success(), "{}", stderr(&cancel));
    assert!(stdout(&cancel).contains("cancelling"));
    let run = rig.runs.require("r1").await.expect("the run");
    assert_eq!(run.status, RunStatus::Cancelling);

    // And an unknown run is reported as such
    let missing = rig.cli(&["cancel", "nope"]).await;
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("no full-sync run nope"));
}

#[tokio::test]
async fn a_local_run_completes_with_its_counters_and_status_shows_it_done() {
    // Given three users, one of them in sync
    let rig = rig().await;
    rig.put_user("a", false).await;
    rig.put_user("b", false).await;
    rig.put_user("c", true).await;
    // When the operator runs an export in this process
    let run = rig
        .cli(&[
            "run",
            "--direction",
            "export",
            "--chunk-size",
            "2",
            "--local",
        ])
        .await;
    // Then it completes and reports its counters
    assert!(run.status.success(), "{}", stderr(&run));
    let text = stdout(&run);
    assert!(text.contains("completed"), "{text}");
    assert!(
        text.contains("scanned 3") && text.contains("enqueued 2"),
        "{text}"
    );
    // And status shows the finished run at 100 % of the table
    let status = rig.cli(&["status"]).await;
    let text = stdout(&status);
    assert!(
        text.contains("status completed") && text.contains("progress 100.0%"),
        "{text}"
    );
}

#[tokio::test]
async fn redrive_dry_run_moves_nothing_and_redrive_moves_messages_back() {
    // Given a message dead-lettered from the bulk queue
    let rig = rig().await;
    let sqs = aws_sdk_sqs::Client::new(&rig.aws);
    let body = r#"{"customer_id":"a","reason":"full_sync","version":2,"changed_at":"2026-11-28T00:00:00Z"}"#;
    sqs.send_message()
        .queue_url(&rig.stack.dlq_url)
        .message_body(body)
        .send()
        .await
        .expect("SendMessage");
    let depth = |url: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
                )
                .send()
                .await
                .expect("GetQueueAttributes")
                .attributes
                .and_then(|mut a| {
                    a.remove(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                })
                .unwrap_or_default()
        }
    };
    // When the operator dry-runs a redrive
    let dry = rig.cli(&["redrive", "--dry-run"]).await;
    // Then it lists the message and moves nothing
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(stdout(&dry).contains("customer a"), "{}", stdout(&dry));
    assert_eq!(depth(rig.stack.bulk_queue_url.clone()).await, "0");
    // When the operator redrives for real
    let real = rig.cli(&["redrive"]).await;
    // Then the message is back on the bulk queue (its only source) and gone from the DLQ
    assert!(real.status.success(), "{}", stderr(&real));
    assert_eq!(depth(rig.stack.bulk_queue_url.clone()).await, "1");
    assert_eq!(depth(rig.stack.dlq_url.clone()).await, "0");
}
