//! Full-sync run records: one run at a time, progress counters, cursor, cancel and resume
//! (issue 5).
