//! Ports: what the handlers need from the outside world. AWS adapters live in
//! [`crate::adapters`], in-memory fakes in `crate::testing` (feature `test-util`), and the 1C
//! port is [`crate::onec::OneCClient`].
//!
//! Every write onec-sync makes to the `users` table is conditional and touches only
//! [`crate::domain::BOOKKEEPING_ATTRIBUTES`] (and, for the import, the fields 1C owns).

mod queue;
mod store;

pub use queue::*;
pub use store::*;
