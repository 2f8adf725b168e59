//! How much the exporter logs: its own test binary, because a thread's log subscriber is not
//! reliably seen by a callsite that another test's thread reached first.

mod common;

use common::*;
use exporter::handle;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// Every line logged at info and above while the guard lives, as the function's JSON logs.
fn capture_info_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buffer.clone());
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || sink.clone())
        .finish();
    (buffer, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn a_successful_batch_logs_one_info_line_and_leaves_each_customer_to_the_sync_log() {
    // Given ten registrations whose rows exist, and the function's logs at info
    let w = world();
    let batch = registrations(&w, 10);
    let (logs, guard) = capture_info_logs();

    // When the batch is handled
    let response = handle(&w.deps, batch).await.expect("handled");
    drop(guard);

    // Then all ten are exported and each has its sync log entry
    assert!(failed_ids(&response).is_empty());
    for i in 1..=10 {
        assert_eq!(w.log.entries_for(&format!("u-{i}")).len(), 1);
    }
    // And the log holds one summary line for the batch, not a line per customer
    let text = String::from_utf8(logs.lock().unwrap().clone()).expect("utf-8 logs");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["fields"]["message"], json!("batch done"));
    assert_eq!(lines[0]["fields"]["messages"], json!(10));
    assert_eq!(lines[0]["fields"]["redelivered"], json!(0));
}
