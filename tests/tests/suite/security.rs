//! Security settings of every function that talks to 1C (exporter, full sync), through their
//! real configuration and wiring: https only unless the explicit local-only override is set;
//! production credentials only from Secrets Manager; the password never in Debug or Display of
//! configs, clients or errors.

use exporter::config::ExporterConfig;
use full_sync::config::FullSyncConfig;
use local_stack::sdk_config;
use shared::config::ConfigError;
use shared::mapping::MappingConfig;
use shared::onec::{
    Credentials, HttpServiceJsonClient, ODataClient, OneCConfig, OneCConfigError, Transport,
};
use std::collections::HashMap;

const PASSWORD: &str = "s3cr3t-пароль-42";

/// Which function's config a row exercises.
#[derive(Debug, Clone, Copy)]
enum Function {
    Exporter,
    FullSync,
}

const FUNCTIONS: [Function; 2] = [Function::Exporter, Function::FullSync];

fn variables(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("USERS_TABLE", "users"),
        ("SYNC_LOG_TABLE", "sync-log"),
        ("SYNC_RUNS_TABLE", "sync-runs"),
        ("PRIORITY_QUEUE_URL", "http://127.0.0.1:1/000000000000/p"),
        ("BULK_QUEUE_URL", "http://127.0.0.1:1/000000000000/b"),
        ("DLQ_URL", "http://127.0.0.1:1/000000000000/dlq"),
        ("ONEC_BASE_URL", "https://1c.example.ru/trade"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    vars
}

/// Loads the function's config from `vars`, points it at `base_url` with `allow_insecure`, and
/// builds its 1C client through the function's own wiring. `Ok` carries the config's Debug text.
async fn wire(
    function: Function,
    vars: &HashMap<String, String>,
    base_url: &str,
    allow_insecure: bool,
) -> Result<String, String> {
    let lookup = |name: &str| vars.get(name).cloned();
    // No AWS call happens with plain credentials; the endpoint only has to parse.
    let aws = sdk_config("http://127.0.0.1:1").await;
    match function {
        Function::Exporter => {
            let mut config = ExporterConfig::from_lookup(&lookup).map_err(|e| e.to_string())?;
            config.onec.base_url = base_url.to_owned();
            config.onec.allow_insecure_http = allow_insecure;
            let shown = format!("{config:?}");
            exporter::wiring::build_deps(&config, &aws)
                .await
                .map(|_| shown)
                .map_err(|e| format!("{e} / {e:?} / {:?}", std::error::Error::source(&e)))
        }
        Function::FullSync => {
            let mut config = FullSyncConfig::from_lookup(&lookup).map_err(|e| e.to_string())?;
            config.onec.base_url = base_url.to_owned();
            config.onec.allow_insecure_http = allow_insecure;
            let shown = format!("{config:?}");
            shared::wiring::onec_client(&config.onec, &aws, &MappingConfig::default())
                .await
                .map(|_| shown)
                .map_err(|e| format!("{e} / {e:?} / {:?}", std::error::Error::source(&e)))
        }
    }
}

fn plain_login() -> HashMap<String, String> {
    variables(&[
        ("ONEC_ALLOW_INSECURE_HTTP", "true"),
        ("ONEC_USERNAME", "Обмен"),
        ("ONEC_PASSWORD", PASSWORD),
    ])
}

#[tokio::test]
async fn every_function_refuses_plain_http_to_1c_unless_the_local_only_override_allows_it() {
    // (base URL, override set, accepted)
    let rows = [
        ("https://1c.example.ru/trade", false, true),
        ("http://1c.example.ru/trade", false, false),
        ("http://1c.example.ru/trade", true, false),
        ("http://10.0.0.5/trade", true, false),
        ("http://127.0.0.1:8081/trade", false, false),
        ("http://127.0.0.1:8081/trade", true, true),
        ("http://localhost:8081/trade", true, true),
        ("ftp://1c.example.ru/trade", true, false),
        ("https://user:pw@1c.example.ru/trade", false, false),
    ];
    for function in FUNCTIONS {
        for (url, allow, accepted) in rows {
            // Given the function's config pointed at the URL
            let result = wire(function, &plain_login(), url, allow).await;

            // Then only https, or http to loopback with the override, gets a client
            assert_eq!(
                result.is_ok(),
                accepted,
                "{function:?} {url} override={allow}: {result:?}"
            );
            if let Err(error) = &result {
                assert!(!error.contains(PASSWORD), "{function:?}: {error}");
                if url.starts_with("http://") {
                    assert!(error.contains("InsecureUrl"), "{function:?} {url}: {error}");
                }
            }
        }
    }
}

#[tokio::test]
async fn without_the_override_credentials_come_only_from_secrets_manager() {
    for function in FUNCTIONS {
        // Given a login in plain variables but no override
        let vars = variables(&[("ONEC_USERNAME", "Обмен"), ("ONEC_PASSWORD", PASSWORD)]);
        let lookup = |name: &str| vars.get(name).cloned();

        // When the config is read
        let missing = match function {
            Function::Exporter => ExporterConfig::from_lookup(&lookup).err(),
            Function::FullSync => FullSyncConfig::from_lookup(&lookup).err(),
        };

        // Then the secret is required and the password is not echoed
        assert!(
            matches!(missing, Some(ConfigError::Missing("ONEC_SECRET_ARN"))),
            "{function:?}: {missing:?}"
        );
        assert!(!format!("{missing:?}").contains(PASSWORD));
    }
}

#[tokio::test]
async fn configs_of_every_function_print_without_the_password() {
    for function in FUNCTIONS {
        let shown = wire(
            function,
            &plain_login(),
            "http://127.0.0.1:8081/trade",
            true,
        )
        .await
        .unwrap_or_else(|e| panic!("{function:?}: {e}"));
        assert!(!shown.contains(PASSWORD), "{function:?}: {shown}");
        assert!(shown.contains("***"), "{function:?}: {shown}");
    }
}

#[test]
fn clients_and_their_configs_print_without_the_password_or_its_basic_auth_token() {
    // Given a config and clients holding a password
    let config = OneCConfig::new(
        "https://1c.example.ru/trade".parse().expect("URL"),
        Transport::Json,
        Credentials::new("Обмен", PASSWORD),
        false,
    )
    .expect("valid config");
    let json = HttpServiceJsonClient::new(&config).expect("client");
    let odata = ODataClient::new(&config).expect("client");

    // When they are formatted as a log line might
    let shown = format!(
        "{config:?} {config:#?} {} {json:?} {odata:?}",
        config.credentials.password
    );

    // Then neither the password nor the Basic token (base64 of user:password) appears
    let token = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("Обмен:{PASSWORD}"))
    };
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(!shown.contains(&token), "{shown}");
}

#[test]
fn an_invalid_config_error_never_names_the_credentials() {
    let errors = [
        OneCConfigError::InsecureUrl,
        OneCConfigError::CredentialsInUrl,
        OneCConfigError::NotHttp,
    ];
    for error in errors {
        let shown = format!("{error} {error:?}");
        assert!(
            !shown.contains(PASSWORD) && !shown.contains("Обмен"),
            "{shown}"
        );
    }
    // A URL with embedded credentials is refused without echoing them
    let refused = OneCConfig::new(
        format!("https://u:{}@1c.example.ru/", "hunter2")
            .parse()
            .expect("URL"),
        Transport::OData,
        Credentials::new("Обмен", PASSWORD),
        false,
    )
    .expect_err("credentials in the URL are refused");
    assert!(!format!("{refused} {refused:?}").contains("hunter2"));
}
