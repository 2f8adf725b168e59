//! Typed configuration from the environment, loaded once per cold start.

use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where variables come from: the process environment in Lambda ([`env_lookup`]), a map when
/// the local stack runs several functions in one process with different settings.
pub trait Lookup {
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Lookup for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// The process environment.
pub fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads a required variable; empty counts as missing.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    required_in(&env_lookup, name)
}

/// Reads an optional variable; empty counts as absent.
pub fn optional(name: &'static str) -> Option<String> {
    optional_in(&env_lookup, name)
}

/// Reads and parses an optional variable, falling back to `default`.
pub fn parsed_or<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    parsed_or_in(&env_lookup, name, default)
}

/// [`required`] from `lookup`.
pub fn required_in(lookup: &impl Lookup, name: &'static str) -> Result<String, ConfigError> {
    match lookup.get(name) {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// [`optional`] from `lookup`.
pub fn optional_in(lookup: &impl Lookup, name: &'static str) -> Option<String> {
    lookup.get(name).filter(|v| !v.trim().is_empty())
}

/// [`parsed_or`] from `lookup`.
pub fn parsed_or_in<T>(
    lookup: &impl Lookup,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional_in(lookup, name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
    }
}

/// The 1C connection, as both functions read it (`ONEC_*`).
#[derive(Debug, Clone)]
pub struct OneCSettings {
    /// `ONEC_BASE_URL`: the infobase publication, `https://…`.
    pub base_url: String,
    /// `ONEC_TRANSPORT`: `json` (default), `odata` or `commerceml`.
    pub transport: String,
    /// `ONEC_HS_ROOT`: the HTTP service's root (default `site`).
    pub hs_root: String,
    /// `ONEC_ALLOW_INSECURE_HTTP`: plain http and a login from the environment (local only).
    pub allow_insecure_http: bool,
    pub credentials: CredentialsSource,
    /// `ONEC_MAPPING_FILE`; the built-in mapping when absent.
    pub mapping_file: Option<std::path::PathBuf>,
    /// `ONEC_REQUEST_TIMEOUT_SECS`: how long one 1C request may take; the client's default
    /// (20 s, below the exporter's 30 s function timeout) when absent. The exporter starts no
    /// call to 1C later than this (and its write-back's reserve) before its deadline.
    pub request_timeout: Option<std::time::Duration>,
}

impl OneCSettings {
    pub fn from_lookup(env: &impl Lookup) -> Result<Self, ConfigError> {
        let allow_insecure_http = parsed_or_in(env, "ONEC_ALLOW_INSECURE_HTTP", false)?;
        let credentials = match optional_in(env, "ONEC_SECRET_ARN") {
            Some(secret_id) => CredentialsSource::Secret { secret_id },
            None if allow_insecure_http => CredentialsSource::Plain {
                username: required_in(env, "ONEC_USERNAME")?,
                password: optional_in(env, "ONEC_PASSWORD").unwrap_or_default(),
            },
            None => return Err(ConfigError::Missing("ONEC_SECRET_ARN")),
        };
        Ok(Self {
            base_url: required_in(env, "ONEC_BASE_URL")?,
            transport: optional_in(env, "ONEC_TRANSPORT").unwrap_or_else(|| "json".into()),
            hs_root: optional_in(env, "ONEC_HS_ROOT").unwrap_or_else(|| "site".into()),
            allow_insecure_http,
            credentials,
            mapping_file: optional_in(env, "ONEC_MAPPING_FILE").map(Into::into),
            request_timeout: match parsed_or_in(env, "ONEC_REQUEST_TIMEOUT_SECS", u64::MAX)? {
                u64::MAX => None,
                0 => {
                    return Err(ConfigError::Invalid {
                        name: "ONEC_REQUEST_TIMEOUT_SECS",
                        reason: "must be at least 1".into(),
                    })
                }
                secs => Some(std::time::Duration::from_secs(secs)),
            },
        })
    }
}

/// Where the 1C login comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialsSource {
    /// A Secrets Manager secret `{"username","password"}` (`ONEC_SECRET_ARN`).
    Secret { secret_id: String },
    /// `ONEC_USERNAME`/`ONEC_PASSWORD`, accepted only with `ONEC_ALLOW_INSECURE_HTTP=true`
    /// (the local stack and tests).
    Plain { username: String, password: String },
}

impl std::fmt::Debug for CredentialsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialsSource::Secret { secret_id } => f
                .debug_struct("Secret")
                .field("secret_id", secret_id)
                .finish(),
            CredentialsSource::Plain { .. } => f
                .debug_struct("Plain")
                .field("username", &"***")
                .field("password", &"***")
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn settings(vars: &[(&str, &str)]) -> Result<OneCSettings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OneCSettings::from_lookup(&move |name: &str| map.get(name).cloned())
    }

    #[test]
    fn the_1c_settings_default_to_json_the_site_root_and_the_clients_timeout() {
        let s = settings(&[
            ("ONEC_BASE_URL", "https://1c.example.ru/trade"),
            (
                "ONEC_SECRET_ARN",
                "arn:aws:secretsmanager:eu-central-1:1:secret:onec",
            ),
        ])
        .expect("valid");
        assert_eq!(s.transport, "json");
        assert_eq!(s.hs_root, "site");
        assert_eq!(s.request_timeout, None);
        assert_eq!(s.mapping_file, None);
        assert!(!s.allow_insecure_http);
    }

    #[test]
    fn a_request_timeout_is_read_in_seconds_and_zero_is_refused() {
        let base = [
            ("ONEC_BASE_URL", "https://1c.example.ru/trade"),
            ("ONEC_SECRET_ARN", "s"),
        ];
        let with = |value| {
            let mut vars = base.to_vec();
            vars.push(("ONEC_REQUEST_TIMEOUT_SECS", value));
            settings(&vars)
        };
        assert_eq!(
            with("3").expect("valid").request_timeout,
            Some(Duration::from_secs(3))
        );
        assert!(matches!(
            with("0"),
            Err(ConfigError::Invalid {
                name: "ONEC_REQUEST_TIMEOUT_SECS",
                ..
            })
        ));
        assert!(with("soon").is_err());
    }

    #[test]
    fn a_plain_login_needs_the_local_only_flag_and_never_prints() {
        let plain = [
            ("ONEC_BASE_URL", "http://127.0.0.1:8081/base"),
            ("ONEC_USERNAME", "Обмен"),
            ("ONEC_PASSWORD", "hunter2"),
        ];
        assert!(matches!(
            settings(&plain),
            Err(ConfigError::Missing("ONEC_SECRET_ARN"))
        ));
        let mut allowed = plain.to_vec();
        allowed.push(("ONEC_ALLOW_INSECURE_HTTP", "true"));
        let s = settings(&allowed).expect("valid");
        assert!(matches!(s.credentials, CredentialsSource::Plain { .. }));
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
