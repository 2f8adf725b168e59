//! The local stack every process-level benchmark runs against: moto (tables, queues, the 1C
//! secret) and the 1C emulator, as the deployed functions would see AWS and 1C.

use anyhow::Context as _;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use local_stack::spec::unique_prefix;
use local_stack::{create_stack, sdk_config, MotoServer, SdkConfig, StackOutputs};
use onec_emulator::{spawn, EmulatorConfig, EmulatorHandle, FaultPlan};
use serde_json::{json, Value};
use std::collections::HashMap;

pub struct LocalStack {
    // Dropped last: stops moto.
    pub moto: MotoServer,
    /// A second moto serving SQS alone ([`LocalStack::start_split`]).
    pub sqs_moto: Option<MotoServer>,
    pub aws: SdkConfig,
    /// Where SQS is: `aws`, or the second moto's.
    pub sqs_aws: SdkConfig,
    pub outputs: StackOutputs,
    pub secret_arn: String,
    pub emulator: EmulatorHandle,
}

impl LocalStack {
    pub async fn start(label: &str, latency_ms: u64) -> anyhow::Result<Self> {
        Self::start_with(label, latency_ms, false).await
    }

    /// As [`LocalStack::start`], with SQS on a moto process of its own: moto is one
    /// GIL-bound Python process, and a second one lets DynamoDB and SQS use a core each. The
    /// functions reach it through `AWS_ENDPOINT_URL_SQS`.
    pub async fn start_split(label: &str, latency_ms: u64) -> anyhow::Result<Self> {
        Self::start_with(label, latency_ms, true).await
    }

    async fn start_with(label: &str, latency_ms: u64, split: bool) -> anyhow::Result<Self> {
        let moto = MotoServer::start()
            .await
            .context("starting moto (run `make setup`; MOTO_SERVER names the binary)")?;
        let aws = sdk_config(moto.endpoint()).await;
        let prefix = unique_prefix(label);
        let mut outputs = create_stack(&aws, &prefix)
            .await
            .context("creating the local stack")?;
        let (sqs_moto, sqs_aws) = if split {
            let sqs_moto = MotoServer::start().await.context("starting moto for SQS")?;
            let sqs_aws = sdk_config(sqs_moto.endpoint()).await;
            // The same names on the second moto; its queue URLs replace the first one's (its
            // tables stay empty and unused).
            let queues = create_stack(&sqs_aws, &prefix)
                .await
                .context("creating the queues on the SQS moto")?;
            outputs = StackOutputs {
                priority_queue_url: queues.priority_queue_url,
                priority_queue_arn: queues.priority_queue_arn,
                bulk_queue_url: queues.bulk_queue_url,
                bulk_queue_arn: queues.bulk_queue_arn,
                dlq_url: queues.dlq_url,
                dlq_arn: queues.dlq_arn,
                stream_failure_queue_url: queues.stream_failure_queue_url,
                stream_failure_queue_arn: queues.stream_failure_queue_arn,
                full_sync_failure_queue_url: queues.full_sync_failure_queue_url,
                ..outputs
            };
            (Some(sqs_moto), sqs_aws)
        } else {
            (None, aws.clone())
        };
        let emulator = spawn(EmulatorConfig {
            faults: FaultPlan {
                latency_ms,
                ..FaultPlan::default()
            },
            ..EmulatorConfig::default()
        })
        .await
        .context("starting the 1C emulator")?;
        let login = emulator.config();
        let secret_arn = aws_sdk_secretsmanager::Client::new(&aws)
            .create_secret()
            .name(format!("{}-onec", outputs.prefix))
            .secret_string(
                json!({"username": login.username, "password": login.password}).to_string(),
            )
            .send()
            .await
            .context("creating the 1C secret in moto")?
            .arn
            .context("moto names the secret")?;
        Ok(Self {
            moto,
            sqs_moto,
            aws,
            sqs_aws,
            outputs,
            secret_arn,
            emulator,
        })
    }

    /// Every variable any function reads, pointing at this stack; AWS clients go to moto with
    /// static credentials, 1C credentials come from the secret.
    pub fn function_env(&self) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = self
            .outputs
            .function_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let login = self.emulator.config();
        for (k, v) in [
            ("AWS_ENDPOINT_URL", self.moto.endpoint().to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("ONEC_BASE_URL", self.emulator.base_url()),
            ("ONEC_HS_ROOT", login.hs_root.clone()),
            ("ONEC_TRANSPORT", "json".to_owned()),
            ("ONEC_SECRET_ARN", self.secret_arn.clone()),
            ("ONEC_ALLOW_INSECURE_HTTP", "true".to_owned()),
        ] {
            env.insert(k.to_owned(), v);
        }
        if let Some(sqs) = &self.sqs_moto {
            env.insert("AWS_ENDPOINT_URL_SQS".to_owned(), sqs.endpoint().to_owned());
        }
        env
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.aws)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sqs_aws)
    }

    /// The moto processes (DynamoDB and the rest first, then SQS's when split).
    pub fn motos(&self) -> impl Iterator<Item = &MotoServer> {
        std::iter::once(&self.moto).chain(self.sqs_moto.as_ref())
    }

    /// Writes platform rows `id_prefix-0 .. id_prefix-(n-1)`, flagged for export as the
    /// filter would leave them, 25 per `BatchWriteItem`.
    pub async fn put_customers(&self, id_prefix: &str, n: usize) -> anyhow::Result<Vec<String>> {
        let dynamodb = self.dynamodb();
        let ids: Vec<String> = (0..n).map(|i| format!("{id_prefix}-{i}")).collect();
        for chunk in ids.chunks(25) {
            let mut requests = Vec::new();
            for id in chunk {
                let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(row(id))?;
                requests.push(
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                        .build(),
                );
            }
            let mut pending = Some(HashMap::from([(
                self.outputs.users_table.clone(),
                requests,
            )]));
            while let Some(items) = pending.filter(|p| !p.is_empty()) {
                let out = dynamodb
                    .batch_write_item()
                    .set_request_items(Some(items))
                    .send()
                    .await
                    .context("BatchWriteItem on the users table")?;
                pending = out.unprocessed_items;
            }
        }
        Ok(ids)
    }
}

/// A platform row as the site writes it, with attributes onec-sync does not know.
pub fn row(id: &str) -> Value {
    let n: u64 = id
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    json!({
        "id": id,
        "email": format!("user{}@example.com", n % 1_000_000),
        "phone": format!("+7912{:07}", n % 10_000_000),
        "first_name": "Иван",
        "last_name": "Петров",
        "role": "retail",
        "status": "active",
        "needs_1c_export": true,
        "sync_status": "pending",
        "version": 1,
        "updated_at": "2026-11-28T10:15:30Z",
        "loyalty_tier": "gold",
        "preferences": {"newsletter": true, "channels": ["email", "sms"]},
    })
}

/// An SQS event as the exporter's event source mapping delivers it.
pub fn sqs_event(queue_arn: &str, ids: &[String]) -> Value {
    let records: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            json!({
                "messageId": format!("m-{id}"),
                "receiptHandle": format!("rh-{id}-{i}"),
                "body": json!({"customer_id": id, "reason": "registration", "version": 1,
                               "changed_at": "2026-11-28T10:15:30Z"}).to_string(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764324930000",
                               "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1764324930000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    json!({ "Records": records })
}
