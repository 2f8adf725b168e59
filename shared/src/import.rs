//! 1C → platform import: applies counterparties changed in 1C to `users` with field ownership
//! and conflict resolution (issue 5).
