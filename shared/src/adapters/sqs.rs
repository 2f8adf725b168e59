//! SQS adapter: enqueue export messages, back off and dead-letter received ones.
