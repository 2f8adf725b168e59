//! Test harness shared by the integration tests.

pub mod emulator;
pub mod moto_stack;
pub mod onec_scenarios;
