//! Test harness shared by the integration tests.

pub mod emulator;
pub mod onec_scenarios;
