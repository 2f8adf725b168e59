//! Moving dead letters back to their source queue (issue 5).
