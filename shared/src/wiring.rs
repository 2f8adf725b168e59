//! The 1C client as both functions build it at cold start: the login from Secrets Manager (or
//! the local-only plain login), the mapping file, the transport.

use crate::adapters::secrets::{fetch_onec_credentials, SecretsError};
use crate::config::{CredentialsSource, OneCSettings};
use crate::mapping::{MappingConfig, MappingConfigError};
use crate::onec::{
    build_client, Credentials, OneCClient, OneCConfig, OneCConfigError, OneCError, Transport,
    UnknownTransport,
};
use std::sync::Arc;

/// Why the 1C client cannot be built: a deployment problem, reported once in the init phase.
#[derive(Debug, thiserror::Error)]
pub enum OneCStartupError {
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

/// A built 1C client with the mapping it was built for.
pub struct OneCConnection {
    pub client: Arc<dyn OneCClient>,
    pub mapping: MappingConfig,
    pub transport: Transport,
}

/// Loads the mapping file and builds the client.
pub async fn connect_onec(
    settings: &OneCSettings,
    aws: &aws_config::SdkConfig,
) -> Result<OneCConnection, OneCStartupError> {
    let mapping = match &settings.mapping_file {
        Some(path) => MappingConfig::from_file(path)?,
        None => MappingConfig::default(),
    };
    let client = onec_client(settings, aws, &mapping).await?;
    Ok(OneCConnection {
        client,
        transport: settings.transport.parse()?,
        mapping,
    })
}

/// Reads the login and builds the client for `mapping`'s 1C attribute names.
pub async fn onec_client(
    settings: &OneCSettings,
    aws: &aws_config::SdkConfig,
    mapping: &MappingConfig,
) -> Result<Arc<dyn OneCClient>, OneCStartupError> {
    let credentials = match &settings.credentials {
        CredentialsSource::Secret { secret_id } => {
            let secrets = aws_sdk_secretsmanager::Client::new(aws);
            let found = fetch_onec_credentials(&secrets, secret_id).await?;
            Credentials::new(found.username, found.password)
        }
        CredentialsSource::Plain { username, password } => {
            Credentials::new(username.clone(), password.as_str())
        }
    };
    let transport: Transport = settings.transport.parse()?;
    let mut config = OneCConfig::new(
        url::Url::parse(&settings.base_url)?,
        transport,
        credentials,
        settings.allow_insecure_http,
    )?;
    config.hs_root.clone_from(&settings.hs_root);
    if let Some(timeout) = settings.request_timeout {
        config.request_timeout = timeout;
    }
    config.schema = mapping.onec().clone();
    config.validate()?;
    Ok(build_client(config)?)
}
