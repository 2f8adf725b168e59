//! Builds the handler's dependencies from the configuration, once per cold start (and once per
//! CLI command).

use crate::adapters::{DynamoDbUserScanner, LambdaContinuation};
use crate::config::{CredentialsSource, FullSyncConfig};
use crate::{Deps, Settings};
use shared::adapters::dynamodb::DynamoDbSyncLog;
use shared::adapters::dynamodb_import::DynamoDbImportStore;
use shared::adapters::dynamodb_runs::DynamoDbSyncRunStore;
use shared::adapters::secrets::{fetch_onec_credentials, SecretsError};
use shared::adapters::sqs::SqsExportQueue;
use shared::import::ImportService;
use shared::mapping::{CustomerDataMapper, MappingConfig, MappingConfigError};
use shared::metrics::Metrics;
use shared::onec::{
    build_client, Credentials, OneCClient, OneCConfig, OneCConfigError, OneCError, Transport,
    UnknownTransport,
};
use shared::sync_run::SyncRuns;
use std::sync::Arc;

/// Why the function cannot start: a deployment problem, reported once in the init phase.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] shared::config::ConfigError),
    #[error("cannot read the 1C credentials")]
    Secrets(#[from] SecretsError),
    #[error("cannot load the mapping file")]
    Mapping(#[from] MappingConfigError),
    #[error("ONEC_BASE_URL is not a URL")]
    BaseUrl(#[from] url::ParseError),
    #[error(transparent)]
    Transport(#[from] UnknownTransport),
    #[error("invalid 1C configuration")]
    OneCConfig(#[from] OneCConfigError),
    #[error("cannot build the 1C client")]
    OneCClient(#[from] OneCError),
}

/// The sync-runs table alone: enough for the CLI's status and cancel.
pub fn runs(config_table: &str, aws: &aws_config::SdkConfig) -> SyncRuns {
    SyncRuns::new(Arc::new(DynamoDbSyncRunStore::new(
        aws_sdk_dynamodb::Client::new(aws),
        config_table,
    )))
}

/// Reads the secret, loads the mapping file and builds the 1C client.
pub async fn onec_client(
    config: &FullSyncConfig,
    aws: &aws_config::SdkConfig,
    mapping: &MappingConfig,
) -> Result<Arc<dyn OneCClient>, StartupError> {
    let credentials = match &config.credentials {
        CredentialsSource::Secret { secret_id } => {
            let secrets = aws_sdk_secretsmanager::Client::new(aws);
            let found = fetch_onec_credentials(&secrets, secret_id).await?;
            Credentials::new(found.username, found.password)
        }
        CredentialsSource::Plain { username, password } => {
            Credentials::new(username.clone(), password.as_str())
        }
    };
    let transport: Transport = config.onec_transport.parse()?;
    let mut onec_config = OneCConfig::new(
        url::Url::parse(&config.onec_base_url)?,
        transport,
        credentials,
        config.onec_allow_insecure_http,
    )?;
    onec_config.hs_root.clone_from(&config.onec_hs_root);
    onec_config.schema = mapping.onec().clone();
    onec_config.validate()?;
    Ok(build_client(onec_config)?)
}

/// Every dependency of the handler, against the configured AWS endpoint.
pub async fn build_deps(
    config: &FullSyncConfig,
    aws: &aws_config::SdkConfig,
) -> Result<Deps, StartupError> {
    let mapping = match &config.mapping_file {
        Some(path) => MappingConfig::from_file(path)?,
        None => MappingConfig::default(),
    };
    let onec = onec_client(config, aws, &mapping).await?;
    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    let importer = ImportService::new(
        onec,
        Arc::new(DynamoDbImportStore::new(
            dynamodb.clone(),
            config.users_table.clone(),
        )),
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
