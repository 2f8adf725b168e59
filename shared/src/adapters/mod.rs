//! AWS adapters of the ports, named after their technology.

pub mod dynamodb;
pub mod dynamodb_import;
pub mod dynamodb_runs;
pub mod secrets;
pub mod sqs;
