//! onec-sync shared library.
//!
//! Everything the Lambda functions do lives here so it can be tested without Lambda:
//! - [`domain`]: the platform's customer record and validated value types;
//! - [`mapping`]: `CustomerDataMapper` and the per-deployment mapping file;
//! - [`onec`]: the 1C client port, its error classification and three transports;
//! - [`error`]: the error class (transient / permanent) every failure reports;
//! - [`pii`]: masking of e-mail, phone and INN for logs; [`logging`]: the functions' subscriber;
//! - pipeline: [`message`] (queue messages), [`filter`] (stream decisions), [`export`]
//!   (`CustomerExportService`), [`backoff`], [`metrics`] (EMF), [`sync_log`], [`config`],
//!   [`ports`] and their AWS [`adapters`];
//! - full sync: [`sync_run`] (run records), [`import`] (1C → platform), [`redrive`] (DLQ).

pub mod adapters;
pub mod backoff;
pub mod config;
pub mod domain;
pub mod error;
pub mod export;
pub mod filter;
pub mod https;
pub mod import;
pub mod logging;
pub mod mapping;
pub mod message;
pub mod metrics;
pub mod onec;
pub mod pii;
pub mod ports;
pub mod redrive;
pub mod sync_log;
pub mod sync_run;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod wiring;
