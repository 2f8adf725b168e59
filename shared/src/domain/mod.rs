//! The platform's customer as stored in the DynamoDB `users` table, and validated value types.

mod customer;
mod email;
mod inn;
mod kpp;
mod phone;

pub use customer::{Customer, SyncStatus, BOOKKEEPING_ATTRIBUTES};
pub use email::{Email, EmailError, EMAIL_LOCAL_MAX_LEN, EMAIL_MAX_LEN};
pub use inn::{Inn, InnError};
pub use kpp::{Kpp, KppError};
pub use phone::{Phone, PhoneError, PHONE_MAX_DIGITS, PHONE_MIN_DIGITS};
