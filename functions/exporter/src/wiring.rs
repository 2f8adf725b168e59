//! Builds the handler's dependencies from the configuration, once per cold start.

use crate::config::ExporterConfig;
use crate::{Deps, HandlerSettings, Jitter, QueueRoutes};
use shared::adapters::dynamodb::{DynamoDbCustomerStore, DynamoDbSyncLog};
use shared::adapters::sqs::SqsMessageControl;
use shared::export::CustomerExportService;
use shared::mapping::CustomerDataMapper;
use shared::metrics::Metrics;
use shared::wiring::{connect_onec, OneCConnection, OneCStartupError};
use std::sync::Arc;
use std::time::Duration;

/// Bound on the 1C warm-up request at init: a slow 1C must not eat the first invocation's time.
pub const ONEC_WARM_UP_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the function cannot start. Every variant is a deployment problem, reported once in the
/// init phase (Lambda then fails the invocations, which the Errors alarm catches).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] shared::config::ConfigError),
    #[error(transparent)]
    OneC(#[from] OneCStartupError),
}

/// Reads secrets, loads the mapping file and builds every client.
pub async fn build_deps(
    config: &ExporterConfig,
    aws: &aws_config::SdkConfig,
) -> Result<Deps, StartupError> {
    build(config, aws, None).await
}

/// [`build_deps`], then opens the 1C connection (TCP, TLS, auth) during init with one cheap
/// lookup of a platform id no customer has, so the first message does not pay the handshake.
/// A failed or slow warm-up is logged and ignored: the handler's own retries deal with 1C.
pub async fn build_deps_warmed(
    config: &ExporterConfig,
    aws: &aws_config::SdkConfig,
    timeout: Duration,
) -> Result<Deps, StartupError> {
    build(config, aws, Some(timeout)).await
}

async fn build(
    config: &ExporterConfig,
    aws: &aws_config::SdkConfig,
    warm_up: Option<Duration>,
) -> Result<Deps, StartupError> {
    let OneCConnection {
        client: onec,
        mapping,
        transport,
    } = connect_onec(&config.onec, aws).await?;
    if let Some(timeout) = warm_up {
        match tokio::time::timeout(timeout, onec.find_by_platform_id("onec-sync-warm-up")).await {
            Ok(Ok(_)) => tracing::debug!("1C connection warmed"),
            Ok(Err(err)) => tracing::warn!(error = %err, "1C warm-up request failed; continuing"),
            Err(_) => tracing::warn!(?timeout, "1C warm-up request timed out; continuing"),
        }
    }

    let dynamodb = aws_sdk_dynamodb::Client::new(aws);
    let sqs = aws_sdk_sqs::Client::new(aws);
    let metrics = Arc::new(Metrics::new(
        config.metrics_namespace.clone(),
        config.function_name.clone(),
    ));
    let service = CustomerExportService::new(
        Arc::new(DynamoDbCustomerStore::new(
            dynamodb.clone(),
            config.users_table.clone(),
        )),
        Arc::new(DynamoDbSyncLog::new(
            dynamodb,
            config.sync_log_table.clone(),
            config.sync_log_retention_days,
        )),
        onec,
        CustomerDataMapper::new(mapping),
        metrics.clone(),
        transport.as_str(),
    )
    .with_remove_policy(config.remove_policy);
    let control = Arc::new(SqsMessageControl::new(
        sqs,
        config.priority_queue_url.clone(),
        config.bulk_queue_url.clone(),
        config.dlq_url.clone(),
    ));
    Ok(Deps {
        service,
        control,
        metrics,
        settings: HandlerSettings {
            max_attempts: config.max_attempts,
            concurrency: config.concurrency,
            backoff_base: config.backoff_base,
            backoff_cap: config.backoff_cap,
            breaker_threshold: config.breaker_threshold,
            jitter: Jitter::Random,
            routes: QueueRoutes::new(&config.priority_queue_url, &config.bulk_queue_url),
        },
    })
}
