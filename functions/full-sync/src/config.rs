//! The function's configuration, read from the environment once per cold start: the variables
//! the template's `FullSyncFunction` sets (and the 1C settings as the exporter reads them).

use shared::config::{env_lookup, optional_in, parsed_or_in, required_in, ConfigError, Lookup};
use shared::metrics::DEFAULT_NAMESPACE;
use shared::sync_log::DEFAULT_RETENTION_DAYS;

pub use shared::config::{CredentialsSource, OneCSettings};

/// Everything the full sync reads from its environment.
#[derive(Debug, Clone)]
pub struct FullSyncConfig {
    pub users_table: String,
    /// `USERS_ONEC_ID_INDEX`: a global secondary index of the users table keyed by `onec_id`,
    /// for the import's lookups by 1C reference; without it each is a filtered `Scan`.
    pub users_onec_id_index: Option<String>,
    pub sync_runs_table: String,
    pub sync_log_table: String,
    pub bulk_queue_url: String,
    pub onec: OneCSettings,
    pub sync_log_retention_days: u32,
    pub metrics_namespace: String,
    /// `AWS_LAMBDA_FUNCTION_NAME`: the function a long run continues in; absent outside Lambda.
    pub function_name: Option<String>,
}

impl FullSyncConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&env_lookup)
    }

    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        let required = |name: &'static str| required_in(env, name);
        let optional = |name: &'static str| optional_in(env, name);
        let onec = OneCSettings::from_lookup(env)?;
        Ok(Self {
            users_table: required("USERS_TABLE")?,
            users_onec_id_index: optional("USERS_ONEC_ID_INDEX").filter(|i| !i.is_empty()),
            sync_runs_table: required("SYNC_RUNS_TABLE")?,
            sync_log_table: required("SYNC_LOG_TABLE")?,
            bulk_queue_url: required("BULK_QUEUE_URL")?,
            onec,
            sync_log_retention_days: parsed_or_in(
                env,
                "SYNC_LOG_RETENTION_DAYS",
                DEFAULT_RETENTION_DAYS,
            )?,
            metrics_namespace: optional("METRICS_NAMESPACE")
                .unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
            function_name: optional("AWS_LAMBDA_FUNCTION_NAME"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        move |name| map.get(name).map(|v| (*v).to_owned())
    }

    const TEMPLATE_VARS: &[(&str, &str)] = &[
        ("USERS_TABLE", "users"),
        ("USERS_ONEC_ID_INDEX", ""),
        ("SYNC_RUNS_TABLE", "runs"),
        ("SYNC_LOG_TABLE", "log"),
        (
            "BULK_QUEUE_URL",
            "https://sqs.eu-central-1.amazonaws.com/1/bulk",
        ),
        ("ONEC_BASE_URL", "https://1c.example.ru/trade"),
        ("ONEC_TRANSPORT", "odata"),
        ("ONEC_HS_ROOT", "site"),
        (
            "ONEC_SECRET_ARN",
            "arn:aws:secretsmanager:eu-central-1:1:secret:onec",
        ),
        ("ONEC_MAPPING_FILE", ""),
        ("SYNC_LOG_RETENTION_DAYS", "30"),
    ];

    #[test]
    fn the_template_variables_are_enough_and_an_empty_mapping_file_means_the_default() {
        let config = FullSyncConfig::from_lookup(&lookup(TEMPLATE_VARS)).expect("valid");
        assert_eq!(config.sync_runs_table, "runs");
        assert_eq!(config.onec.transport, "odata");
        assert_eq!(config.onec.mapping_file, None);
        assert_eq!(config.function_name, None);
        assert!(matches!(
            config.onec.credentials,
            CredentialsSource::Secret { .. }
        ));
        // The platform's table without an index (the parameter left empty): the import scans
        assert_eq!(config.users_onec_id_index, None);
        let mut vars = TEMPLATE_VARS.to_vec();
        vars.push(("USERS_ONEC_ID_INDEX", "onec_id-index"));
        let config = FullSyncConfig::from_lookup(&lookup(&vars)).expect("valid");
        assert_eq!(config.users_onec_id_index.as_deref(), Some("onec_id-index"));
    }

    #[test]
    fn plain_credentials_need_the_insecure_flag_and_are_never_printed() {
        let mut vars: Vec<(&str, &str)> = TEMPLATE_VARS
            .iter()
            .copied()
            .filter(|(name, _)| *name != "ONEC_SECRET_ARN")
            .collect();
        vars.extend([("ONEC_USERNAME", "u"), ("ONEC_PASSWORD", "hunter2")]);
        assert!(matches!(
            FullSyncConfig::from_lookup(&lookup(&vars)),
            Err(ConfigError::Missing("ONEC_SECRET_ARN"))
        ));
        vars.push(("ONEC_ALLOW_INSECURE_HTTP", "true"));
        let config = FullSyncConfig::from_lookup(&lookup(&vars)).expect("valid");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn a_missing_runs_table_is_named() {
        let vars: Vec<(&str, &str)> = TEMPLATE_VARS
            .iter()
            .copied()
            .filter(|(name, _)| *name != "SYNC_RUNS_TABLE")
            .collect();
        assert!(matches!(
            FullSyncConfig::from_lookup(&lookup(&vars)),
            Err(ConfigError::Missing("SYNC_RUNS_TABLE"))
        ));
    }
}
