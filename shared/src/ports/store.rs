//! Storage ports: the users table (bookkeeping writes), the sync log.
