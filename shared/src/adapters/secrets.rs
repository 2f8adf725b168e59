//! Secrets Manager: 1C credentials, read once per cold start.
//!
//! The secret is a JSON object `{"username": "...", "password": "..."}`. Neither the value nor
//! the parse error's text (which could quote it) is ever logged: `Debug` prints `***`.

use crate::error::{Classify, ErrorClass};
use aws_sdk_secretsmanager::Client;
use serde::Deserialize;

/// Login and password for 1C's HTTP Basic auth.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct OneCCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for OneCCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneCCredentials")
            .field("username", &"***")
            .field("password", &"***")
            .finish()
    }
}

impl OneCCredentials {
    /// Reads the secret's JSON. The serde error is dropped on purpose: it may quote the value.
    pub fn from_secret_json(secret_id: &str, json: &str) -> Result<Self, SecretsError> {
        let creds: Self = serde_json::from_str(json).map_err(|_| SecretsError::Malformed {
            secret_id: secret_id.to_owned(),
        })?;
        if creds.username.is_empty() {
            return Err(SecretsError::Malformed {
                secret_id: secret_id.to_owned(),
            });
        }
        Ok(creds)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read secret {secret_id} ({class})")]
    Fetch {
        secret_id: String,
        class: ErrorClass,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("secret {secret_id} has no string value")]
    NoString { secret_id: String },

    #[error(
        r#"secret {secret_id} is not a JSON object {{"username","password"}} with a username"#
    )]
    Malformed { secret_id: String },
}

impl Classify for SecretsError {
    fn class(&self) -> ErrorClass {
        match self {
            SecretsError::Fetch { class, .. } => *class,
            SecretsError::NoString { .. } | SecretsError::Malformed { .. } => ErrorClass::Permanent,
        }
    }
}

/// Reads the 1C credentials from Secrets Manager.
pub async fn fetch_onec_credentials(
    client: &Client,
    secret_id: &str,
) -> Result<OneCCredentials, SecretsError> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|err| SecretsError::Fetch {
            secret_id: secret_id.to_owned(),
            class: super::dynamodb::sdk_error_class(&err),
            source: Box::new(err),
        })?;
    let json = output
        .secret_string()
        .ok_or_else(|| SecretsError::NoString {
            secret_id: secret_id.to_owned(),
        })?;
    OneCCredentials::from_secret_json(secret_id, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_from_the_secret_json() {
        let creds = OneCCredentials::from_secret_json(
            "arn:secret",
            r#"{"username":"Обмен","password":"p@ss"}"#,
        )
        .expect("valid secret");
        assert_eq!(creds.username, "Обмен");
        assert_eq!(creds.password, "p@ss");
    }

    #[test]
    fn debug_output_never_shows_the_credentials() {
        let creds = OneCCredentials {
            username: "exchange-user".into(),
            password: "hunter2".into(),
        };
        let printed = format!("{creds:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("exchange-user"));
        assert!(printed.contains("***"));
    }

    #[test]
    fn a_malformed_secret_is_a_permanent_error_that_does_not_quote_the_value() {
        // Given a secret that is not the expected JSON
        let err =
            OneCCredentials::from_secret_json("arn:secret", "user:hunter2").expect_err("not JSON");

        // Then the error is permanent and its text does not contain the value
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn a_secret_without_a_username_is_rejected() {
        let err = OneCCredentials::from_secret_json("s", r#"{"username":"","password":"x"}"#);
        assert!(matches!(err, Err(SecretsError::Malformed { .. })));
    }
}
