//! How to reach 1C: publication URL, transport, credentials, limits.

use super::OneCSchema;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use url::Url;

/// Which of the three wire protocols the client speaks (`ONEC_TRANSPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// HTTP service `/hs/<root>/…` with JSON bodies.
    Json,
    /// The 1C standard OData interface.
    OData,
    /// CommerceML 2.10 XML posted to an HTTP service.
    CommerceMl,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Json => "json",
            Transport::OData => "odata",
            Transport::CommerceMl => "commerceml",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown 1C transport {0:?}: expected json, odata or commerceml")]
pub struct UnknownTransport(String);

impl FromStr for Transport {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Transport::Json),
            "odata" => Ok(Transport::OData),
            "commerceml" => Ok(Transport::CommerceMl),
            _ => Err(UnknownTransport(s.to_owned())),
        }
    }
}

/// A value that must never be printed: Debug and Display show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it (the Authorization header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// HTTP Basic credentials of the 1C user the integration runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Secret,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }
}

/// Why a [`OneCConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OneCConfigError {
    #[error("1C base URL must use https (plain http is only allowed for 127.0.0.1/localhost with allow_insecure_http)")]
    InsecureUrl,
    #[error("1C base URL must not embed credentials; pass them as credentials")]
    CredentialsInUrl,
    #[error("1C base URL must be an http(s) URL with a host")]
    NotHttp,
    #[error("1C base URL must not carry a query or fragment")]
    QueryInUrl,
    #[error("1C HTTP-service root must be a non-empty path without '?', '#' or '..'")]
    BadHsRoot,
    #[error("1C {0} must be greater than zero")]
    ZeroLimit(&'static str),
}

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
pub const DEFAULT_HS_ROOT: &str = "site";

/// Everything a transport needs to talk to one 1C infobase.
#[derive(Debug, Clone)]
pub struct OneCConfig {
    /// The infobase publication URL, e.g. `https://1c.example.ru/trade`.
    pub base_url: Url,
    pub transport: Transport,
    /// Root of the HTTP services (`/hs/<root>/…`); unused by OData.
    pub hs_root: String,
    pub credentials: Credentials,
    pub connect_timeout: Duration,
    /// Whole request, body included.
    pub request_timeout: Duration,
    /// Only for tests and the local emulator: permits `http://` to 127.0.0.1/localhost.
    pub allow_insecure_http: bool,
    /// Bodies larger than this are refused rather than buffered.
    pub max_response_bytes: usize,
    /// Request bodies larger than this are refused before anything is sent.
    pub max_request_bytes: usize,
    pub schema: OneCSchema,
}

impl OneCConfig {
    /// A validated config with default timeouts, limits, HS root and schema.
    pub fn new(
        base_url: Url,
        transport: Transport,
        credentials: Credentials,
        allow_insecure_http: bool,
    ) -> Result<Self, OneCConfigError> {
        let config = Self {
            base_url,
            transport,
            hs_root: DEFAULT_HS_ROOT.to_owned(),
            credentials,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            allow_insecure_http,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            schema: OneCSchema::default(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the invariants [`OneCConfig::new`] establishes; fields are public, so the client
    /// constructors check again.
    pub fn validate(&self) -> Result<(), OneCConfigError> {
        let url = &self.base_url;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OneCConfigError::CredentialsInUrl);
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(OneCConfigError::QueryInUrl);
        }
        let host = url.host_str().ok_or(OneCConfigError::NotHttp)?;
        match url.scheme() {
            "https" => {}
            "http" => {
                let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
                if !(self.allow_insecure_http && loopback) {
                    return Err(OneCConfigError::InsecureUrl);
                }
            }
            _ => return Err(OneCConfigError::NotHttp),
        }
        let root = self.hs_root.trim_matches('/');
        if root.is_empty()
            || root.contains(['?', '#'])
            || root.split('/').any(|s| s.is_empty() || s == "..")
        {
            return Err(OneCConfigError::BadHsRoot);
        }
        if self.max_response_bytes == 0 {
            return Err(OneCConfigError::ZeroLimit("max_response_bytes"));
        }
        if self.max_request_bytes == 0 {
            return Err(OneCConfigError::ZeroLimit("max_request_bytes"));
        }
        if self.request_timeout.is_zero() {
            return Err(OneCConfigError::ZeroLimit("request_timeout"));
        }
        if self.connect_timeout.is_zero() {
            return Err(OneCConfigError::ZeroLimit("connect_timeout"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn creds() -> Credentials {
        Credentials::new("Администратор", "s3cr3t-пароль")
    }

    #[test]
    fn debug_and_display_of_the_config_never_show_the_password() {
        // Given a config with a password
        let config = OneCConfig::new(
            url("https://1c.example.ru/trade"),
            Transport::Json,
            creds(),
            false,
        )
        .unwrap();

        // When it is formatted every way a log line might
        let debug = format!("{config:?}");
        let pretty = format!("{config:#?}");
        let shown = format!("{}", config.credentials.password);

        // Then the password appears nowhere, the mask does
        for text in [&debug, &pretty, &shown] {
            assert!(!text.contains("s3cr3t"), "{text}");
        }
        assert!(debug.contains("***"));
        assert!(debug.contains("Администратор"));
    }

    #[test]
    fn plain_http_is_refused_unless_insecure_is_allowed_and_the_host_is_loopback() {
        let cases = [
            ("https://1c.example.ru/trade", false, true),
            ("http://1c.example.ru/trade", false, false),
            ("http://1c.example.ru/trade", true, false),
            ("http://127.0.0.1:8080/trade", false, false),
            ("http://127.0.0.1:8080/trade", true, true),
            ("http://localhost/trade", true, true),
            ("ftp://1c.example.ru/trade", true, false),
        ];
        for (base, insecure, ok) in cases {
            let result = OneCConfig::new(url(base), Transport::OData, creds(), insecure);
            assert_eq!(result.is_ok(), ok, "{base} insecure={insecure}: {result:?}");
        }
    }

    #[test]
    fn an_insecure_url_is_rejected_with_a_message_that_says_what_to_do() {
        let err = OneCConfig::new(
            url("http://1c.example.ru/"),
            Transport::Json,
            creds(),
            false,
        )
        .unwrap_err();
        assert_eq!(err, OneCConfigError::InsecureUrl);
        assert!(err.to_string().contains("https"));
    }

    #[test]
    fn credentials_embedded_in_the_url_are_rejected() {
        let err = OneCConfig::new(
            url("https://user:pw@1c.example.ru/trade"),
            Transport::Json,
            creds(),
            false,
        )
        .unwrap_err();
        assert_eq!(err, OneCConfigError::CredentialsInUrl);
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config =
            OneCConfig::new(url("https://h/trade"), Transport::Json, creds(), false).unwrap();
        assert_eq!(config.hs_root, "site");
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.request_timeout, Duration::from_secs(20));
        assert_eq!(config.max_response_bytes, 4 * 1024 * 1024);
        assert_eq!(config.max_request_bytes, 4 * 1024 * 1024);
        assert_eq!(config.schema, OneCSchema::default());
    }

    #[test]
    fn transport_parses_from_its_environment_names() {
        assert_eq!("json".parse::<Transport>(), Ok(Transport::Json));
        assert_eq!("OData".parse::<Transport>(), Ok(Transport::OData));
        assert_eq!("commerceml".parse::<Transport>(), Ok(Transport::CommerceMl));
        assert!("soap".parse::<Transport>().is_err());
        for t in [Transport::Json, Transport::OData, Transport::CommerceMl] {
            assert_eq!(t.as_str().parse::<Transport>(), Ok(t));
        }
    }

    #[test]
    fn a_bad_hs_root_is_rejected() {
        let mut config =
            OneCConfig::new(url("https://h/trade"), Transport::Json, creds(), false).unwrap();
        for root in ["", "/", "a/../b", "x?y"] {
            config.hs_root = root.into();
            assert_eq!(config.validate(), Err(OneCConfigError::BadHsRoot), "{root}");
        }
        config.hs_root = "/site/v1/".into();
        assert_eq!(config.validate(), Ok(()));
    }
}
