//! A 1C:Enterprise stand-in for tests and demos.
//!
//! One in-memory catalogue of counterparties served over the three transports of
//! `docs/onec-contract.md` (HTTP-service JSON, standard OData, CommerceML 2.10 XML), plus an
//! unauthenticated admin API and a seeded fault plan. Tests start it in-process with [`spawn`];
//! the `onec-emulator` binary runs it by hand.

mod admin;
mod commerceml;
mod config;
mod faults;
mod hs_json;
mod odata;
mod odata_batch;
mod server;
mod store;

pub use config::EmulatorConfig;
pub use faults::{FaultPlan, Outage, ScriptedAnswer, Stats};
pub use server::{spawn, EmulatorHandle};
pub use store::{
    CounterpartyFields, CounterpartyKind, CounterpartyPatch, CounterpartyRecord, StoreError,
};
