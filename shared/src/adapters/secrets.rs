//! Secrets Manager: 1C credentials, read once per cold start.
