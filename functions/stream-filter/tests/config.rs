//! `FilterConfig::from_env`. One test function, because the environment is process-wide.

use shared::filter::RemovePolicy;
use stream_filter::{FilterConfig, FilterConfigError};

fn set(vars: &[(&str, Option<&str>)]) {
    for (name, value) in vars {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
}

#[test]
fn configuration_comes_from_the_environment_with_the_mappings_fields_by_default() {
    // Given the required variables and nothing else
    set(&[
        ("USERS_TABLE", Some("users")),
        ("PRIORITY_QUEUE_URL", Some("http://127.0.0.1:1/q/priority")),
        ("BULK_QUEUE_URL", Some("http://127.0.0.1:1/q/bulk")),
        ("SIGNIFICANT_FIELDS", None),
        ("REMOVE_POLICY", None),
        ("ONEC_MAPPING_FILE", None),
    ]);
    // When loaded
    let config = FilterConfig::from_env().unwrap();
    // Then the significant fields are the built-in mapping's, bookkeeping excluded
    let expected: Vec<String> = shared::mapping::MappingConfig::default()
        .significant_fields()
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        config
            .policy
            .significant_fields
            .iter()
            .cloned()
            .collect::<Vec<_>>(),
        expected
    );
    assert!(config.policy.significant_fields.contains("email"));
    assert!(!config.policy.significant_fields.contains("sync_status"));
    assert_eq!(config.policy.remove_policy, RemovePolicy::Deactivate);

    // Given explicit overrides
    set(&[
        ("SIGNIFICANT_FIELDS", Some(" email, tax_id ")),
        ("REMOVE_POLICY", Some("ignore")),
    ]);
    let config = FilterConfig::from_env().unwrap();
    // Then they win
    assert_eq!(
        config.policy.significant_fields.iter().collect::<Vec<_>>(),
        vec!["email", "tax_id"]
    );
    assert_eq!(config.policy.remove_policy, RemovePolicy::Ignore);

    // Given an unknown removal policy, an unreadable mapping file, or a missing queue
    set(&[("REMOVE_POLICY", Some("purge"))]);
    assert!(matches!(
        FilterConfig::from_env(),
        Err(FilterConfigError::Env(_))
    ));
    set(&[
        ("REMOVE_POLICY", None),
        ("SIGNIFICANT_FIELDS", None),
        ("ONEC_MAPPING_FILE", Some("/nonexistent/mapping.toml")),
    ]);
    assert!(matches!(
        FilterConfig::from_env(),
        Err(FilterConfigError::Mapping(_))
    ));
    set(&[("ONEC_MAPPING_FILE", None), ("BULK_QUEUE_URL", None)]);
    // Then loading fails, naming the variable
    let err = FilterConfig::from_env().unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable BULK_QUEUE_URL is required"
    );
}
