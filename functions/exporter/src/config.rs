//! The exporter's configuration, read from the environment once per cold start.

use shared::backoff::DEFAULT_BREAKER_THRESHOLD;
use shared::config::{env_lookup, optional_in, parsed_or_in, required_in, ConfigError, Lookup};
use shared::filter::RemovePolicy;
use shared::metrics::DEFAULT_NAMESPACE;
use shared::sync_log::DEFAULT_RETENTION_DAYS;
use std::time::Duration;

pub use shared::config::{CredentialsSource, OneCSettings};

/// Everything the exporter reads from its environment.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    pub users_table: String,
    pub sync_log_table: String,
    pub priority_queue_url: String,
    pub bulk_queue_url: String,
    pub dlq_url: String,
    pub onec: OneCSettings,
    /// Equals the queues' `maxReceiveCount`.
    pub max_attempts: u32,
    pub concurrency: usize,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub breaker_threshold: u32,
    /// `REMOVE_POLICY`, as the stream filter reads it: whether a user removed while its
    /// export was in flight gets its deletion mark set again.
    pub remove_policy: RemovePolicy,
    pub metrics_namespace: String,
    /// The `Function` metric dimension: the deployed function's name.
    pub function_name: String,
    pub sync_log_retention_days: u32,
}

impl ExporterConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&env_lookup)
    }

    /// The same variables from another source (the local stack runs functions side by side).
    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        let required = |name: &'static str| required_in(env, name);
        let optional = |name: &'static str| optional_in(env, name);
        let onec = OneCSettings::from_lookup(env)?;
        let max_attempts: u32 = parsed_or_in(env, "MAX_EXPORT_ATTEMPTS", 5)?;
        let concurrency: usize = parsed_or_in(env, "EXPORT_CONCURRENCY", 4)?;
        let base: u64 = parsed_or_in(env, "BACKOFF_BASE_SECS", 30)?;
        let cap: u64 = parsed_or_in(env, "BACKOFF_CAP_SECS", 900)?;
        if max_attempts == 0 {
            return Err(invalid("MAX_EXPORT_ATTEMPTS", "must be at least 1"));
        }
        if concurrency == 0 {
            return Err(invalid("EXPORT_CONCURRENCY", "must be at least 1"));
        }
        if cap < base {
            return Err(invalid(
                "BACKOFF_CAP_SECS",
                "must not be below BACKOFF_BASE_SECS",
            ));
        }
        Ok(Self {
            users_table: required("USERS_TABLE")?,
            sync_log_table: required("SYNC_LOG_TABLE")?,
            priority_queue_url: required("PRIORITY_QUEUE_URL")?,
            bulk_queue_url: required("BULK_QUEUE_URL")?,
            dlq_url: required("DLQ_URL")?,
            onec,
            max_attempts,
            concurrency,
            backoff_base: Duration::from_secs(base),
            backoff_cap: Duration::from_secs(cap),
            breaker_threshold: parsed_or_in(
                env,
                "CIRCUIT_BREAKER_THRESHOLD",
                DEFAULT_BREAKER_THRESHOLD,
            )?,
            remove_policy: parsed_or_in(env, "REMOVE_POLICY", RemovePolicy::default())?,
            metrics_namespace: optional("METRICS_NAMESPACE")
                .unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
            function_name: optional("AWS_LAMBDA_FUNCTION_NAME")
                .unwrap_or_else(|| "exporter".into()),
            sync_log_retention_days: parsed_or_in(
                env,
                "SYNC_LOG_RETENTION_DAYS",
                DEFAULT_RETENTION_DAYS,
            )?,
        })
    }
}

/// Time kept free after the last 1C call an invocation starts, beside the call's own timeout:
/// the write-back and the sync log entry (single-digit milliseconds each, seconds when
/// DynamoDB retries).
pub const WRITE_BACK_RESERVE: Duration = Duration::from_secs(3);

impl ExporterConfig {
    /// How long before Lambda's deadline the exporter stops starting 1C calls: one 1C request's
    /// timeout plus [`WRITE_BACK_RESERVE`]. (An OData upsert is a lookup and a write, so a 1C
    /// slow on both can still run past it; SQS then delivers the batch again.)
    pub fn time_reserve(&self) -> Duration {
        self.onec
            .request_timeout
            .unwrap_or(shared::onec::DEFAULT_REQUEST_TIMEOUT)
            + WRITE_BACK_RESERVE
    }
}

/// Customers per call to 1C when `ONEC_BATCH_SIZE` is not set: one, i.e. no batching.
pub const DEFAULT_BATCH_SIZE: usize = 1;

/// `ONEC_BATCH_SIZE`: the most customers the exporter sends to 1C in one batch call
/// (1 = one request per customer), at most [`shared::onec::MAX_BATCH_ITEMS`].
pub fn batch_size_from_lookup(env: &impl Lookup) -> Result<usize, ConfigError> {
    let size: usize = parsed_or_in(env, "ONEC_BATCH_SIZE", DEFAULT_BATCH_SIZE)?;
    if size == 0 || size > shared::onec::MAX_BATCH_ITEMS {
        return Err(invalid(
            "ONEC_BATCH_SIZE",
            &format!("must be between 1 and {}", shared::onec::MAX_BATCH_ITEMS),
        ));
    }
    Ok(size)
}

/// [`batch_size_from_lookup`] over the process environment.
pub fn batch_size_from_env() -> Result<usize, ConfigError> {
    batch_size_from_lookup(&env_lookup)
}

fn invalid(name: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_size(value: Option<&'static str>) -> Result<usize, ConfigError> {
        batch_size_from_lookup(&|name: &str| {
            (name == "ONEC_BATCH_SIZE")
                .then_some(value)
                .flatten()
                .map(str::to_owned)
        })
    }

    #[test]
    fn the_batch_size_defaults_to_one_and_stays_within_what_a_request_carries() {
        assert_eq!(batch_size(None).unwrap(), 1);
        assert_eq!(batch_size(Some("50")).unwrap(), 50);
        assert_eq!(batch_size(Some("500")).unwrap(), 500);
        assert!(batch_size(Some("0")).is_err());
        assert!(batch_size(Some("501")).is_err());
        assert!(batch_size(Some("many")).is_err());
    }

    const REQUIRED: &[(&str, &str)] = &[
        ("USERS_TABLE", "users"),
        ("SYNC_LOG_TABLE", "sync-log"),
        ("PRIORITY_QUEUE_URL", "http://127.0.0.1:1/000000000000/p"),
        ("BULK_QUEUE_URL", "http://127.0.0.1:1/000000000000/b"),
        ("DLQ_URL", "http://127.0.0.1:1/000000000000/dlq"),
        ("ONEC_BASE_URL", "https://1c.example.ru/trade"),
    ];
    const OPTIONAL: &[&str] = &[
        "ONEC_SECRET_ARN",
        "ONEC_ALLOW_INSECURE_HTTP",
        "ONEC_USERNAME",
        "ONEC_PASSWORD",
        "ONEC_TRANSPORT",
        "MAX_EXPORT_ATTEMPTS",
        "EXPORT_CONCURRENCY",
        "BACKOFF_BASE_SECS",
        "BACKOFF_CAP_SECS",
        "ONEC_REQUEST_TIMEOUT_SECS",
        "REMOVE_POLICY",
    ];

    fn reset(vars: &[(&str, &str)]) {
        for name in OPTIONAL {
            std::env::remove_var(name);
        }
        for (name, value) in REQUIRED.iter().chain(vars) {
            std::env::set_var(name, value);
        }
    }

    // One test, because the process environment is shared between test threads.
    #[test]
    fn the_environment_is_read_with_defaults_and_plain_credentials_need_the_insecure_flag() {
        // Given only the required variables and a secret
        reset(&[(
            "ONEC_SECRET_ARN",
            "arn:aws:secretsmanager:eu-central-1:1:secret:onec",
        )]);
        let config = ExporterConfig::from_env().expect("valid config");
        // Then the documented defaults apply
        assert_eq!(config.max_attempts, 5);
        assert_eq!(config.concurrency, 4);
        assert_eq!(config.backoff_base, Duration::from_secs(30));
        assert_eq!(config.backoff_cap, Duration::from_secs(900));
        assert_eq!(config.metrics_namespace, "OnecSync");
        assert_eq!(config.remove_policy, RemovePolicy::Deactivate);
        assert_eq!(config.onec.transport, "json");
        assert!(matches!(
            config.onec.credentials,
            CredentialsSource::Secret { .. }
        ));
        // And 1C calls stop one request timeout (20 s) and the write-back's 3 s before the end
        assert_eq!(config.time_reserve(), Duration::from_secs(23));
        reset(&[
            ("ONEC_SECRET_ARN", "s"),
            ("ONEC_REQUEST_TIMEOUT_SECS", "5"),
            ("REMOVE_POLICY", "ignore"),
        ]);
        let config = ExporterConfig::from_env().expect("valid config");
        assert_eq!(config.time_reserve(), Duration::from_secs(8));
        assert_eq!(config.remove_policy, RemovePolicy::Ignore);

        // Given plain credentials without the insecure flag, the secret is required
        reset(&[("ONEC_USERNAME", "u"), ("ONEC_PASSWORD", "hunter2")]);
        assert!(matches!(
            ExporterConfig::from_env(),
            Err(ConfigError::Missing("ONEC_SECRET_ARN"))
        ));

        // Given the flag, they are used and never printed
        reset(&[
            ("ONEC_USERNAME", "u"),
            ("ONEC_PASSWORD", "hunter2"),
            ("ONEC_ALLOW_INSECURE_HTTP", "true"),
        ]);
        let config = ExporterConfig::from_env().expect("valid config");
        assert!(matches!(
            config.onec.credentials,
            CredentialsSource::Plain { .. }
        ));
        assert!(!format!("{config:?}").contains("hunter2"));

        // Given a cap below the base, the config is refused
        reset(&[
            ("ONEC_SECRET_ARN", "s"),
            ("BACKOFF_BASE_SECS", "60"),
            ("BACKOFF_CAP_SECS", "10"),
        ]);
        assert!(matches!(
            ExporterConfig::from_env(),
            Err(ConfigError::Invalid {
                name: "BACKOFF_CAP_SECS",
                ..
            })
        ));
    }
}
