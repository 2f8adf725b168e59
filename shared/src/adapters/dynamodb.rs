//! DynamoDB adapters: the users table and the sync log.
