//! One HTTPS stack for the process: rustls on ring, for the AWS SDK and the 1C client alike.
//!
//! Both libraries default to AWS-LC, about a megabyte of each bootstrap (docs/benchmarks.md)
//! for what these functions do not use (post-quantum key exchange, FIPS builds).

use aws_config::environment::{
    EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
};
use aws_config::identity::IdentityCache;
use aws_config::meta::region::ProvideRegion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_runtime::env_config::EnvConfigValue;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_types::os_shim_internal::Env;
use aws_types::sdk_config::{SharedCredentialsProvider, SharedHttpClient};
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use std::sync::Once;
use std::time::Duration;

/// Makes ring the process's default rustls provider. reqwest is built without a provider of
/// its own and needs one installed before any client is built; idempotent.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An error means another provider came first; any installed provider will do.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// `aws_config::defaults` with the ring-based HTTPS client, for programs that run anywhere
/// (tools, tests, the operator's command): the SDK crates are built without a default client,
/// so every such SDK configuration starts here.
pub fn aws_config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(sdk_http_client())
}

/// The SDK configuration of a Lambda function, from what Lambda puts in its environment: the
/// region (`AWS_REGION`), the execution role's credentials (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and, for the local stack, endpoints
/// (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`). Retries and the connect timeout are the
/// SDK's defaults. `aws_config::defaults` would also link every other credential source
/// (profiles, SSO, web identity with its STS client, ECS, IMDS), which Lambda never uses and
/// which weighed about 0.7 MB of each bootstrap (docs/benchmarks.md).
pub async fn lambda_sdk_config() -> SdkConfig {
    let region = EnvironmentVariableRegionProvider::new().region().await;
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .http_client(sdk_http_client())
        .identity_cache(IdentityCache::lazy().build())
        .retry_config(RetryConfig::standard())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(SDK_DEFAULT_CONNECT_TIMEOUT)
                .build(),
        )
        .service_config(EndpointsFromEnv(Env::real()))
        .build()
}

/// aws-config's own default; its constant is private.
const SDK_DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`, as `aws_config::defaults` reads
/// them (without the shared config file's `services` sections).
#[derive(Debug)]
struct EndpointsFromEnv(Env);

impl LoadServiceConfig for EndpointsFromEnv {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        EnvConfigValue::new()
            .env(key.env())
            .service_id(key.service_id())
            .load(&self.0, None)
            .map(|(value, _)| value.into_owned())
    }
}

/// The SDK's HTTPS client on ring, set up as the SDK's default one is (timeouts and sleep from
/// the client's configuration, HTTP(S)_PROXY and NO_PROXY from the environment); only the
/// crypto differs.
fn sdk_http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(
        |settings, runtime_components| {
            let mut connector = aws_smithy_http_client::ConnectorBuilder::default()
                .tls_provider(Provider::Rustls(CryptoMode::Ring));
            connector.set_connector_settings(settings.cloned());
            if let Some(components) = runtime_components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector.set_proxy_config(Some(ProxyConfig::from_env()));
            connector.build()
        },
    )
}

/// A reqwest builder with the process's crypto provider installed, for clients outside the
/// 1C adapter (tools, tests).
pub fn reqwest_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onec::{build_client, Credentials, OneCConfig, Transport};
    use std::sync::Arc;
    use tokio::net::TcpListener;

    /// A TLS server on loopback with a self-signed certificate nobody trusts; it reports how
    /// its first handshake ended.
    async fn untrusted_tls_server() -> (u16, tokio::task::JoinHandle<std::io::Result<()>>) {
        let issued = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(issued.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![issued.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handshake = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await?;
            acceptor.accept(tcp).await.map(drop)
        });
        (port, handshake)
    }

    fn chain_mentions(err: &(dyn std::error::Error + 'static), needle: &str) -> bool {
        let mut next = Some(err);
        while let Some(e) = next {
            if e.to_string().to_lowercase().contains(needle) {
                return true;
            }
            next = e.source();
        }
        false
    }

    #[test]
    fn installing_the_crypto_provider_makes_ring_the_process_default_and_can_be_repeated() {
        // When the provider is installed twice
        install_crypto_provider();
        install_crypto_provider();

        // Then the process default exists with ring's cipher suites and key exchanges
        let installed = rustls::crypto::CryptoProvider::get_default().expect("a provider");
        let ring = rustls::crypto::ring::default_provider();
        let suites = |p: &rustls::crypto::CryptoProvider| -> Vec<_> {
            p.cipher_suites.iter().map(|s| s.suite()).collect()
        };
        let groups = |p: &rustls::crypto::CryptoProvider| -> Vec<_> {
            p.kx_groups.iter().map(|g| g.name()).collect()
        };
        assert_eq!(suites(installed), suites(&ring));
        assert_eq!(groups(installed), groups(&ring));
    }

    #[tokio::test]
    async fn the_1c_client_negotiates_tls_and_refuses_a_certificate_no_authority_signed() {
        // Given a 1C publication behind TLS with a self-signed certificate
        let (port, handshake) = untrusted_tls_server().await;
        let url = url::Url::parse(&format!("https://127.0.0.1:{port}/base/")).unwrap();
        let config = OneCConfig::new(
            url,
            Transport::Json,
            Credentials::new("sync", "secret"),
            false,
        )
        .unwrap();
        let client = build_client(config).unwrap();

        // When the client asks it for a counterparty
        let err = client.fetch_customer("any").await.unwrap_err();

        // Then the handshake got as far as the certificate, which the client refused
        assert!(chain_mentions(&err, "certificate"), "{err:?}");
        let server_side = handshake.await.unwrap().unwrap_err();
        assert!(chain_mentions(&server_side, "alert"), "{server_side:?}");
    }

    #[tokio::test]
    async fn an_sdk_client_from_the_loader_negotiates_tls_and_refuses_a_certificate_no_authority_signed(
    ) {
        // Given an AWS endpoint behind TLS with a self-signed certificate
        let (port, handshake) = untrusted_tls_server().await;
        let aws = aws_config_loader()
            .endpoint_url(format!("https://127.0.0.1:{port}"))
            .region(aws_config::Region::new("eu-central-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "id", "secret", None, None, "test",
            ))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;

        // When a DynamoDB call is made through it
        let err = aws_sdk_dynamodb::Client::new(&aws)
            .list_tables()
            .send()
            .await
            .unwrap_err();

        // Then the call failed on the certificate, after a real handshake with the server
        assert!(chain_mentions(&err, "certificate"), "{err:?}");
        let server_side = handshake.await.unwrap().unwrap_err();
        assert!(chain_mentions(&server_side, "alert"), "{server_side:?}");
    }
}
