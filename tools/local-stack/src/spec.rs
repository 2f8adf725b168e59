//! The one description of the resources the SAM template defines (`infra/template.yaml`), used
//! to create them in moto and, by the template test, to check the template against.

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use std::collections::HashMap;

/// Deliveries of an export message before SQS moves it to the DLQ (template parameter
/// `MaxExportAttempts`, the exporter's `MAX_EXPORT_ATTEMPTS`). AWS advises at least 5.
pub const MAX_EXPORT_ATTEMPTS: u32 = 5;
/// The exporter function's timeout.
pub const EXPORTER_TIMEOUT_SECS: u32 = 30;
/// AWS: the source queue's visibility timeout should be at least six times the function's.
pub const SOURCE_VISIBILITY_TIMEOUT_SECS: u32 = 6 * EXPORTER_TIMEOUT_SECS;
/// Source queues keep messages four days ...
pub const SOURCE_RETENTION_SECS: u32 = 4 * 24 * 60 * 60;
/// ... and the DLQs the SQS maximum of 14 days, longer, so a redriven message keeps its history.
pub const DLQ_RETENTION_SECS: u32 = 14 * 24 * 60 * 60;
/// The stream filter's timeout.
pub const STREAM_FILTER_TIMEOUT_SECS: u32 = 30;
/// The full-sync function's timeout (an invocation continues the run in a fresh one before it).
pub const FULL_SYNC_TIMEOUT_SECS: u32 = 900;
/// What the schedule asks for (template parameters `FullSyncDirection`, `FullSyncChunkSize`).
pub const FULL_SYNC_DIRECTION: &str = "both";
pub const FULL_SYNC_CHUNK_SIZE: u32 = 500;

/// A DynamoDB table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// Resource name suffix (the local stack names it `<prefix>-<suffix>`).
    pub suffix: &'static str,
    /// Logical id in the SAM template.
    pub logical_id: &'static str,
    /// Partition key (string).
    pub partition_key: &'static str,
    /// Sort key (string), if any.
    pub sort_key: Option<&'static str>,
    /// `NEW_AND_OLD_IMAGES` stream, if any.
    pub stream: bool,
    /// TTL attribute (epoch seconds), if any.
    pub ttl_attribute: Option<&'static str>,
    /// A `KEYS_ONLY` global secondary index: its name and (string) partition key.
    pub index: Option<(&'static str, &'static str)>,
}

/// The users table's index for the import's lookups by 1C reference (`USERS_ONEC_ID_INDEX`).
pub const USERS_ONEC_ID_INDEX: &str = "onec_id-index";

/// The platform's users (the dev stack creates it; production uses the platform's table).
pub const USERS_TABLE: TableSpec = TableSpec {
    suffix: "users",
    logical_id: "DevUsersTable",
    partition_key: "id",
    sort_key: None,
    stream: true,
    ttl_attribute: None,
    index: Some((USERS_ONEC_ID_INDEX, "onec_id")),
};

/// `CustomerSyncLog`: pk customer id, sk `<rfc3339>#<uuid>`, expiring entries.
pub const SYNC_LOG_TABLE: TableSpec = TableSpec {
    suffix: "sync-log",
    logical_id: "SyncLogTable",
    partition_key: "customer_id",
    sort_key: Some("sk"),
    stream: false,
    ttl_attribute: Some("expires_at"),
    index: None,
};

/// Full-sync progress.
pub const SYNC_RUNS_TABLE: TableSpec = TableSpec {
    suffix: "sync-runs",
    logical_id: "SyncRunsTable",
    partition_key: "run_id",
    sort_key: None,
    stream: false,
    ttl_attribute: None,
    index: None,
};

pub const TABLES: [TableSpec; 3] = [USERS_TABLE, SYNC_LOG_TABLE, SYNC_RUNS_TABLE];

/// An SQS queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSpec {
    pub suffix: &'static str,
    pub logical_id: &'static str,
    /// `None`: the SQS default (30 s).
    pub visibility_timeout_secs: Option<u32>,
    pub retention_secs: u32,
    /// Redrive to the export DLQ after this many receives.
    pub max_receive_count: Option<u32>,
}

pub const PRIORITY_QUEUE: QueueSpec = QueueSpec {
    suffix: "export-priority",
    logical_id: "PriorityQueue",
    visibility_timeout_secs: Some(SOURCE_VISIBILITY_TIMEOUT_SECS),
    retention_secs: SOURCE_RETENTION_SECS,
    max_receive_count: Some(MAX_EXPORT_ATTEMPTS),
};

pub const BULK_QUEUE: QueueSpec = QueueSpec {
    suffix: "export-bulk",
    logical_id: "BulkQueue",
    visibility_timeout_secs: Some(SOURCE_VISIBILITY_TIMEOUT_SECS),
    retention_secs: SOURCE_RETENTION_SECS,
    max_receive_count: Some(MAX_EXPORT_ATTEMPTS),
};

/// Exhausted and permanently failed export messages.
pub const EXPORT_DLQ: QueueSpec = QueueSpec {
    suffix: "export-dlq",
    logical_id: "ExportDlq",
    visibility_timeout_secs: None,
    retention_secs: DLQ_RETENTION_SECS,
    max_receive_count: None,
};

/// On-failure destination of the stream mapping (batch metadata only).
pub const STREAM_FAILURE_QUEUE: QueueSpec = QueueSpec {
    suffix: "stream-failures",
    logical_id: "StreamFailureQueue",
    visibility_timeout_secs: None,
    retention_secs: DLQ_RETENTION_SECS,
    max_receive_count: None,
};

/// On-failure destination of the full sync's asynchronous invocations (schedule, continuation).
pub const FULL_SYNC_FAILURE_QUEUE: QueueSpec = QueueSpec {
    suffix: "full-sync-failures",
    logical_id: "FullSyncFailureQueue",
    visibility_timeout_secs: None,
    retention_secs: DLQ_RETENTION_SECS,
    max_receive_count: None,
};

/// Every queue of the stack.
pub const QUEUES: [QueueSpec; 5] = [
    PRIORITY_QUEUE,
    BULK_QUEUE,
    EXPORT_DLQ,
    STREAM_FAILURE_QUEUE,
    FULL_SYNC_FAILURE_QUEUE,
];

/// Retries Lambda makes of a failed asynchronous full-sync invocation before its on-failure
/// destination (template: `EventInvokeConfig.MaximumRetryAttempts`).
pub const FULL_SYNC_ASYNC_RETRIES: u32 = 1;

/// The stream filter's event source mapping on the users-table stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamMappingSpec {
    pub logical_id: &'static str,
    pub batch_size: u32,
    pub maximum_batching_window_secs: u32,
    pub maximum_retry_attempts: u32,
    pub maximum_record_age_secs: u32,
    pub bisect_batch_on_function_error: bool,
    pub starting_position: &'static str,
}

pub const USERS_STREAM_MAPPING: StreamMappingSpec = StreamMappingSpec {
    logical_id: "UsersStreamMapping",
    batch_size: 100,
    maximum_batching_window_secs: 1,
    maximum_retry_attempts: 10,
    maximum_record_age_secs: 6 * 60 * 60,
    bisect_batch_on_function_error: true,
    starting_position: "TRIM_HORIZON",
};

/// The exporter's SQS event source mappings (one per lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqsMappingSpec {
    pub batch_size: u32,
    pub maximum_batching_window_secs: u32,
}

pub const EXPORT_QUEUE_MAPPING: SqsMappingSpec = SqsMappingSpec {
    batch_size: 10,
    maximum_batching_window_secs: 0,
};

/// What [`create_stack`] created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackOutputs {
    pub prefix: String,
    pub users_table: String,
    pub users_stream_arn: String,
    pub sync_log_table: String,
    pub sync_runs_table: String,
    pub priority_queue_url: String,
    pub priority_queue_arn: String,
    pub bulk_queue_url: String,
    pub bulk_queue_arn: String,
    pub dlq_url: String,
    pub dlq_arn: String,
    pub stream_failure_queue_url: String,
    pub stream_failure_queue_arn: String,
    pub full_sync_failure_queue_url: String,
}

impl StackOutputs {
    /// The variables the functions read, pointing at this stack.
    pub fn function_env(&self) -> HashMap<&'static str, String> {
        HashMap::from([
            ("USERS_TABLE", self.users_table.clone()),
            ("USERS_ONEC_ID_INDEX", USERS_ONEC_ID_INDEX.to_owned()),
            ("SYNC_LOG_TABLE", self.sync_log_table.clone()),
            ("SYNC_RUNS_TABLE", self.sync_runs_table.clone()),
            ("PRIORITY_QUEUE_URL", self.priority_queue_url.clone()),
            ("BULK_QUEUE_URL", self.bulk_queue_url.clone()),
            ("DLQ_URL", self.dlq_url.clone()),
        ])
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("creating table {table} failed")]
    Table {
        table: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("creating queue {queue} failed")]
    Queue {
        queue: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{0} is missing from the service's answer")]
    MissingOutput(&'static str),
}

/// An SDK configuration for a local endpoint: region `us-east-1` (moto's only region in stream
/// records), static test credentials, nothing read from the environment or IMDS.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    shared::https::aws_config_loader()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "local-stack",
        ))
        .load()
        .await
}

/// Creates the stack's tables and queues named `<prefix>-<suffix>`; a unique prefix per test
/// lets tests share one moto.
pub async fn create_stack(config: &SdkConfig, prefix: &str) -> Result<StackOutputs, StackError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);

    let mut stream_arn = None;
    for table in TABLES {
        let arn = create_table(&dynamodb, prefix, &table).await?;
        if table == USERS_TABLE {
            stream_arn = arn;
        }
    }

    let (dlq_url, dlq_arn) = create_queue(&sqs, prefix, &EXPORT_DLQ, None).await?;
    let (priority_url, priority_arn) =
        create_queue(&sqs, prefix, &PRIORITY_QUEUE, Some(&dlq_arn)).await?;
    let (bulk_url, bulk_arn) = create_queue(&sqs, prefix, &BULK_QUEUE, Some(&dlq_arn)).await?;
    let (failure_url, failure_arn) =
        create_queue(&sqs, prefix, &STREAM_FAILURE_QUEUE, None).await?;
    let (full_sync_failure_url, _) =
        create_queue(&sqs, prefix, &FULL_SYNC_FAILURE_QUEUE, None).await?;

    // Only the two export queues may redrive back out of the DLQ.
    let allow = serde_json::json!({
        "redrivePermission": "byQueue",
        "sourceQueueArns": [priority_arn, bulk_arn],
    });
    sqs.set_queue_attributes()
        .queue_url(&dlq_url)
        .attributes(QueueAttributeName::RedriveAllowPolicy, allow.to_string())
        .send()
        .await
        .map_err(|err| StackError::Queue {
            queue: name(prefix, EXPORT_DLQ.suffix),
            source: Box::new(err),
        })?;

    Ok(StackOutputs {
        prefix: prefix.to_owned(),
        users_table: name(prefix, USERS_TABLE.suffix),
        users_stream_arn: stream_arn.ok_or(StackError::MissingOutput("users stream ARN"))?,
        sync_log_table: name(prefix, SYNC_LOG_TABLE.suffix),
        sync_runs_table: name(prefix, SYNC_RUNS_TABLE.suffix),
        priority_queue_url: priority_url,
        priority_queue_arn: priority_arn,
        bulk_queue_url: bulk_url,
        bulk_queue_arn: bulk_arn,
        dlq_url,
        dlq_arn,
        stream_failure_queue_url: failure_url,
        stream_failure_queue_arn: failure_arn,
        full_sync_failure_queue_url: full_sync_failure_url,
    })
}

/// A resource prefix unique within this machine's recent runs: `<label>-<pid>-<n>`.
pub fn unique_prefix(label: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{label}-{}-{n}", std::process::id())
}

fn name(prefix: &str, suffix: &str) -> String {
    format!("{prefix}-{suffix}")
}

fn string_key(
    name: &str,
    key_type: KeyType,
) -> Result<(AttributeDefinition, KeySchemaElement), String> {
    let definition = AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| e.to_string())?;
    let key = KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| e.to_string())?;
    Ok((definition, key))
}

/// Creates a table; returns its stream ARN if it has a stream.
async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    prefix: &str,
    spec: &TableSpec,
) -> Result<Option<String>, StackError> {
    let table = name(prefix, spec.suffix);
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| StackError::Table {
        table: table.clone(),
        source,
    };
    let mut keys = vec![string_key(spec.partition_key, KeyType::Hash).map_err(|e| fail(e.into()))?];
    if let Some(sort) = spec.sort_key {
        keys.push(string_key(sort, KeyType::Range).map_err(|e| fail(e.into()))?);
    }
    let mut request = client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest);
    for (definition, key) in keys {
        request = request.attribute_definitions(definition).key_schema(key);
    }
    if let Some((index, key)) = spec.index {
        let (definition, key) = string_key(key, KeyType::Hash).map_err(|e| fail(e.into()))?;
        request = request
            .attribute_definitions(definition)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index)
                    .key_schema(key)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build()
                    .map_err(|e| fail(Box::new(e)))?,
            );
    }
    if spec.stream {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(|e| fail(Box::new(e)))?,
        );
    }
    let output = request.send().await.map_err(|e| fail(Box::new(e)))?;
    if let Some(attribute) = spec.ttl_attribute {
        client
            .update_time_to_live()
            .table_name(&table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attribute)
                    .enabled(true)
                    .build()
                    .map_err(|e| fail(Box::new(e)))?,
            )
            .send()
            .await
            .map_err(|e| fail(Box::new(e)))?;
    }
    Ok(output
        .table_description()
        .and_then(|d| d.latest_stream_arn())
        .map(str::to_owned))
}

/// Creates a queue; returns its URL and ARN.
async fn create_queue(
    client: &aws_sdk_sqs::Client,
    prefix: &str,
    spec: &QueueSpec,
    dead_letter_arn: Option<&str>,
) -> Result<(String, String), StackError> {
    let queue = name(prefix, spec.suffix);
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| StackError::Queue {
        queue: queue.clone(),
        source,
    };
    let mut request = client.create_queue().queue_name(&queue).attributes(
        QueueAttributeName::MessageRetentionPeriod,
        spec.retention_secs.to_string(),
    );
    if let Some(visibility) = spec.visibility_timeout_secs {
        request = request.attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.to_string(),
        );
    }
    if let (Some(max), Some(dlq)) = (spec.max_receive_count, dead_letter_arn) {
        let policy = serde_json::json!({"deadLetterTargetArn": dlq, "maxReceiveCount": max});
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
    }
    let url = request
        .send()
        .await
        .map_err(|e| fail(Box::new(e)))?
        .queue_url
        .ok_or(StackError::MissingOutput("queue URL"))?;
    let arn = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| fail(Box::new(e)))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or(StackError::MissingOutput("queue ARN"))?;
    Ok((url, arn))
}
