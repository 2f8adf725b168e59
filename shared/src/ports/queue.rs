//! Queue ports: enqueueing export messages, and controlling received ones.
