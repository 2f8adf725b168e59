//! A local stand-in for the AWS stack, shared by the integration tests and `make demo`:
//! - [`moto`]: a moto server child process (127.0.0.1, free port, stopped on drop);
//! - [`spec`]: the stack's resources as the SAM template defines them, and their creation;
//! - [`stream_poller`] / [`sqs_poller`]: Lambda-like event source mappings, because moto cannot
//!   invoke functions without Docker;
//! - [`runner`]: moto + the 1C emulator + the stack + the real handlers behind those pollers;
//! - [`demo`] / [`users`]: the `make demo` scenario and its generated platform users;
//! - [`chaos`]: the `make chaos` run (faults, outage, redelivery) and its checks;
//! - [`stream_audit`]: the rules both read the users table's stream back by.

pub mod chaos;
pub mod demo;
pub mod moto;
pub mod runner;
pub mod spec;
pub mod sqs_poller;
pub mod stream_audit;
pub mod stream_poller;
pub mod users;

pub use aws_config::SdkConfig;
pub use moto::MotoServer;
pub use runner::{LocalStack, LocalStackOptions};
pub use spec::{create_stack, sdk_config, StackOutputs};
pub use sqs_poller::{SqsPoller, SqsPollerConfig};
pub use stream_poller::{StreamPoller, StreamPollerConfig};
