//! A short chaos run (`make chaos` runs 2,000 customers): the same fault mix, outage and
//! out-of-order redelivery on 120 customers, with every promise checked.

use local_stack::chaos::{run_chaos, ChaosOptions};

#[tokio::test]
async fn under_1c_faults_an_outage_and_out_of_order_redelivery_every_promise_holds() {
    // Given 1C failing a quarter of requests (5xx, 429, timeouts, lost responses), fully down
    // for three seconds halfway through, and stale and duplicate messages beside the real ones
    let options = ChaosOptions::short();

    // When the platform registers and edits customers and the pipeline settles
    let report = run_chaos(&options).await.expect("the run completes");
    let rendered = report.render();

    // Then every valid customer is synced with equal data in 1C, nothing is duplicated or
    // lost, the invalid ones are in error and in the DLQ, no delivery exceeded its budget and
    // the stream stayed bounded
    assert!(report.is_ok(), "{rendered}");
    assert!(report.converge_time.is_some(), "{rendered}");
    assert_eq!(report.synced, report.valid);
    assert_eq!((report.duplicates, report.lost_updates), (0, 0));
    assert_eq!(report.invalid_in_error, report.invalid);
    assert_eq!(report.invalid_in_dlq, report.invalid);
    assert!(report.max_attempt <= local_stack::spec::MAX_EXPORT_ATTEMPTS);
    assert_eq!(report.own_writes_enqueued, 0);
    // And the faults really happened
    for kind in ["error_5xx", "rate_429", "timeout", "lost_response", "down"] {
        assert!(
            report.faults.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} fault was injected: {rendered}"
        );
    }
    assert!(report.edits > 0 && report.quick_edit_customers > 0);
    assert!(report.stale_messages + report.duplicate_messages > 0);
}
