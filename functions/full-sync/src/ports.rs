//! What the full-sync handler needs from the outside: the users scan, the 1C import, a fresh
//! invocation to continue in, and the time left. The run records are
//! [`shared::sync_run::SyncRunStore`], the bulk queue [`shared::ports::ExportQueue`].

use async_trait::async_trait;
use shared::domain::Customer;
use shared::error::{Classify, ErrorClass};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One of the parallel scan segments (`Segment`/`TotalSegments`); `total == 1` is a plain scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanSegment {
    pub index: u32,
    pub total: u32,
}

/// One page of the users table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanPage {
    /// The rows that read as customers (only the attributes the export decision needs).
    pub users: Vec<Customer>,
    /// Rows that did not (a wrong attribute type); counted as errors, never quoted.
    pub undecodable: u64,
    /// Where the next page starts; `None` when the segment is done.
    pub next_cursor: Option<String>,
}

impl ScanPage {
    pub fn scanned(&self) -> u64 {
        self.users.len() as u64 + self.undecodable
    }
}

/// Reads the users table page by page.
#[async_trait]
pub trait UserScanner: Send + Sync {
    /// At most `limit` rows of `segment`, starting after `cursor` (a previous page's
    /// `next_cursor`, `None` for the first page).
    async fn scan_page(
        &self,
        segment: ScanSegment,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ScanPage, ScanError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("Scan of {table} failed ({class})")]
    Request {
        table: String,
        class: ErrorClass,
        #[source]
        source: BoxError,
    },
    /// The stored cursor is not one this scanner wrote.
    #[error("the stored scan cursor is unreadable")]
    Cursor {
        #[source]
        source: BoxError,
    },
}

impl Classify for ScanError {
    fn class(&self) -> ErrorClass {
        match self {
            ScanError::Request { class, .. } => *class,
            ScanError::Cursor { .. } => ErrorClass::Permanent,
        }
    }
}

/// What one page of the 1C import did (`shared::import::ImportPageReport`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportedPage {
    pub imported: u64,
    pub updated: u64,
    pub conflicts: u64,
    pub errors: u64,
    pub unchanged: u64,
    pub next_cursor: Option<String>,
    pub watermark: Option<String>,
}

/// Applies one page of 1C's changes to the users table (`shared::import::ImportService`).
#[async_trait]
pub trait PageImporter: Send + Sync {
    async fn import_page(
        &self,
        watermark: Option<&str>,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<ImportedPage, ImportFailure>;
}

/// A page could not be imported as a whole.
#[derive(Debug, thiserror::Error)]
#[error("the 1C import failed ({class}, {kind})")]
pub struct ImportFailure {
    pub class: ErrorClass,
    pub kind: &'static str,
    #[source]
    pub source: BoxError,
}

impl Classify for ImportFailure {
    fn class(&self) -> ErrorClass {
        self.class
    }
}

/// Continues a run in a fresh invocation (Lambda: an asynchronous self-invoke).
#[async_trait]
pub trait Continuation: Send + Sync {
    async fn continue_run(&self, run_id: &str) -> Result<(), ContinuationError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ContinuationError {
    #[error("cannot invoke {function} to continue the run ({class})")]
    Invoke {
        function: String,
        class: ErrorClass,
        #[source]
        source: BoxError,
    },
    /// Not running in Lambda (no function name), so there is nothing to continue in.
    #[error("no function to continue in (AWS_LAMBDA_FUNCTION_NAME is not set)")]
    Unavailable,
}

impl Classify for ContinuationError {
    fn class(&self) -> ErrorClass {
        match self {
            ContinuationError::Invoke { class, .. } => *class,
            ContinuationError::Unavailable => ErrorClass::Permanent,
        }
    }
}

/// The time an invocation has left.
pub trait TimeBudget: Send + Sync {
    /// `None`: no limit (a local run).
    fn remaining(&self) -> Option<Duration>;
}

/// No time limit: the CLI's in-process run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

impl TimeBudget for Unlimited {
    fn remaining(&self) -> Option<Duration> {
        None
    }
}

/// Until a Lambda invocation's deadline.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub std::time::SystemTime);

impl TimeBudget for Deadline {
    fn remaining(&self) -> Option<Duration> {
        Some(
            self.0
                .duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }
}
