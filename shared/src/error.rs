//! The one classification every failure in the pipeline reports.

use serde::{Deserialize, Serialize};

/// Whether trying again can succeed.
///
/// Transient failures are retried with backoff until the attempt budget is spent; permanent ones
/// are reported (status on the user row, sync log, DLQ) without pointless retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Transient,
    Permanent,
}

impl ErrorClass {
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Transient)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
        }
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by every error type that can end a sync attempt.
pub trait Classify {
    fn class(&self) -> ErrorClass;

    fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }
}
