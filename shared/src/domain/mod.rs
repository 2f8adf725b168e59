//! The platform's customer as stored in the DynamoDB `users` table, and validated value types.

mod customer;

pub use customer::{Customer, SyncStatus, BOOKKEEPING_ATTRIBUTES};
