//! Builds the handler's dependencies from the configuration, once per cold start (and once per
//! CLI command).

use crate::adapters::{DynamoDbUserScanner, LambdaContinuation};
use crate::config::FullSyncConfig;
use crate::{Deps, Settings};
use shared::adapters::dynamodb::DynamoDbSyncLog;
use shared::adapters::dynamodb_import::DynamoDbImportStore;
use shared::adapters::dynamodb_runs::DynamoDbSyncRunStore;
use shared::adapters::sqs::SqsExportQueue;
use shared::import::ImportService;
use shared::mapping::CustomerDataMapper;
use shared::metrics::Metrics;
use shared::sync_run::SyncRuns;
use shared::wiring::{connect_onec, OneCConnection, OneCStartupError};
use std::sync::Arc;

/// Why the function cannot start: a deployment problem, reported once in the init phase.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] shared::config::ConfigError),
    #[error(transparent)]
    OneC(#[from] OneCStartupError),
}

/// The sync-runs table alone: enough for the CLI's status and cancel.
pub fn runs(config_table: &str, aws: &aws_config::SdkConfig) -> SyncRuns {
    SyncRuns::new(Arc::new(DynamoDbSyncRunStore::new(
        aws_sdk_dynamodb::Client::new(aws),
        config_table,
    )))
}

/// Every dependency of the handler, against the configured AWS endpoint.
pub async fn build_deps(
    config: &FullSyncConfig,
    aws: &aws_config::SdkConfig,
) -> Result<Deps, StartupError> {
    let OneCConnection {
        client: onec,
        mapping,
        ..
    } = connect_onec(&config.onec, aws).await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    let importer = ImportService::new(
        onec,
        Arc::new(import_store(&dynamodb, config)),
        Arc::new(DynamoDbSyncLog::new(
            dynamodb.clone(),
            config.sync_log_table.clone(),
            config.sync_log_retention_days,
        )),
        CustomerDataMapper::new(mapping),
    );
    Ok(Deps {
        runs: runs(&config.sync_runs_table, aws),
        scanner: Arc::new(DynamoDbUserScanner::new(
            dynamodb,
            config.users_table.clone(),
        )),
        // The full sync only ever uses the bulk lane; the priority URL is never called.
        queue: Arc::new(SqsExportQueue::new(
            sqs,
            config.bulk_queue_url.clone(),
            config.bulk_queue_url.clone(),
        )),
        importer: Arc::new(importer),
        continuation: Arc::new(LambdaContinuation::new(
            aws_sdk_lambda::Client::new(aws),
            config.function_name.clone(),
        )),
        metrics: Arc::new(Metrics::new(
            config.metrics_namespace.clone(),
            config
                .function_name
                .clone()
                .unwrap_or_else(|| "full-sync".into()),
        )),
        settings: Settings::default(),
    })
}

/// The import's view of the users table, through the `onec_id` index when one is configured.
pub fn import_store(
    dynamodb: &aws_sdk_dynamodb::Client,
    config: &FullSyncConfig,
) -> DynamoDbImportStore {
    let store = DynamoDbImportStore::new(dynamodb.clone(), config.users_table.clone());
    match &config.users_onec_id_index {
        Some(index) => store.with_onec_id_index(index.clone()),
        None => store,
    }
}
