//! The exporter handler with in-memory ports: what happens to each message, the row, the sync
//! log, the DLQ and the batch response.

use exporter::{handle, handle_until, QueueRoutes};
use serde_json::json;
use shared::domain::{SyncStatus, BOOKKEEPING_ATTRIBUTES};
use shared::error::ErrorClass;
use shared::export::Deadline;
use shared::message::Lane;
use shared::onec::{Counterparty, OneCError};
use shared::ports::DeadLetterReason;
use shared::sync_log::{SyncLogStatus, SyncOperation};
use shared::testing::{individual_counterparty, FakeCustomerStore, FakeOneCClient, Scripted};
use std::time::Duration;

mod common;
use common::*;

#[tokio::test]
async fn a_successful_export_writes_back_only_bookkeeping_attributes() {
    // Given a registered customer whose row also has an attribute onec-sync does not know
    let w = world();
    let mut row = serde_json::to_value(customer("u-301", 1)).expect("customer serialises");
    row["loyalty_tier"] = json!("gold");
    w.store.insert_row(row.clone());

    // When its registration message is handled
    let response = handle(&w.deps, single(0, 1)).await.expect("handled");

    // Then the message is done, 1C holds the customer, and the row records it
    assert!(failed_ids(&response).is_empty());
    let cp = w.onec.counterparty("u-301").expect("exported to 1C");
    let after = w.store.row("u-301").expect("row still there");
    assert_eq!(after["onec_id"], json!(cp.onec_id));
    assert_eq!(after["onec_version"], json!(cp.data_version));
    assert_eq!(after["synced_version"], json!(1));
    assert_eq!(after["sync_status"], json!("synced"));
    assert_eq!(after["needs_1c_export"], json!(false));
    assert_eq!(after["sync_error_message"], json!(""));
    assert!(after["last_sync_at"].is_string());
    // And only bookkeeping attributes were written; everything else is untouched
    let writes = w.store.writes();
    assert_eq!(writes.len(), 1);
    assert!(writes[0]
        .attributes
        .iter()
        .all(|a| BOOKKEEPING_ATTRIBUTES.contains(&a.as_str())));
    for (name, value) in row.as_object().expect("object") {
        if !BOOKKEEPING_ATTRIBUTES.contains(&name.as_str()) {
            assert_eq!(&after[name], value, "{name} changed");
        }
    }
    // And the sync log and metrics say so
    let entries = w.log.entries_for("u-301");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].operation_type, SyncOperation::ExportTo1c);
    assert_eq!(entries[0].status, SyncLogStatus::Success);
    assert_eq!(entries[0].details.onec_id, cp.onec_id);
    let names = emf_metric_names(&w.metrics);
    for expected in ["ExportSucceeded", "OneCCallLatency", "SyncLatency"] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn a_message_for_a_version_already_synced_is_skipped_without_calling_1c() {
    // Given a row 1C already holds at its current version
    let w = world();
    let mut synced = customer("u-301", 1);
    synced.synced_version = Some(1);
    synced.sync_status = Some(SyncStatus::Synced);
    w.store.insert(&synced);

    // When the registration message is delivered again
    let response = handle(&w.deps, single(0, 2)).await.expect("handled");

    // Then it is done without a 1C call or a write
    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.onec.call_count(), 0);
    assert!(w.store.writes().is_empty());
    assert_eq!(
        emf_metric_names(&w.metrics),
        vec!["ExportSkipped".to_owned()]
    );
}

#[tokio::test]
async fn a_transient_failure_backs_the_message_off_and_logs_the_attempt_without_writing_the_row() {
    // Given 1C answering 503 once
    let w = world();
    w.store.insert(&customer("u-301", 1));
    w.onec.fail_next(unavailable());

    // When the message is handled on its second delivery
    let response = handle(&w.deps, single(0, 2)).await.expect("handled");

    // Then it is reported for redelivery after base·2 (no jitter)
    assert_eq!(
        failed_ids(&response),
        vec!["0b6e1c2a-5f3d-4e8a-9c1b-000000000301"]
    );
    let delays = w.control.delays();
    assert_eq!(delays.len(), 1);
    assert_eq!(delays[0].lane, Lane::Priority);
    assert_eq!(delays[0].receipt_handle, "AQEBr1x9dW3+receipt-handle-1==");
    assert_eq!(delays[0].delay, Duration::from_secs(60));
    // And the sync log shows the attempt and its cause, while the users row is not written
    // (every row write is a stream record; the row gets the outcome)
    assert!(w.store.writes().is_empty());
    let entries = w.log.entries_for("u-301");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, SyncLogStatus::Retrying);
    assert_eq!(entries[0].details.attempt, Some(2));
    assert!(entries[0]
        .details
        .message
        .as_deref()
        .is_some_and(|m| m.contains("unavailable")));
    assert!(w.control.dead_letters().is_empty());
}

#[tokio::test]
async fn retry_after_from_1c_sets_the_backoff_when_it_is_longer() {
    let w = world();
    w.store.insert(&customer("u-301", 1));
    w.onec.fail_next(OneCError::RateLimited {
        retry_after: Some(Duration::from_secs(600)),
    });

    let response = handle(&w.deps, single(0, 1)).await.expect("handled");

    assert_eq!(failed_ids(&response).len(), 1);
    assert_eq!(w.control.delays()[0].delay, Duration::from_secs(600));
}

#[tokio::test]
async fn on_the_last_attempt_the_row_shows_an_error_and_the_message_is_left_to_the_redrive() {
    // Given 1C failing on the fifth (= maxReceiveCount) delivery
    let w = world();
    w.store.insert(&customer("u-301", 1));
    w.onec.fail_next(unavailable());

    // When handled
    let response = handle(&w.deps, single(0, 5)).await.expect("handled");

    // Then the row says the exporter gave up, and the message is still reported as failed so
    // SQS moves it to the DLQ itself (we do not send it)
    let row = w.store.customer("u-301").expect("row");
    assert_eq!(row.sync_status, Some(SyncStatus::Error));
    assert!(row
        .sync_error_message
        .is_some_and(|m| m.starts_with("gave up after 5 attempts: ")));
    assert_eq!(failed_ids(&response).len(), 1);
    assert!(w.control.dead_letters().is_empty());
}

#[tokio::test]
async fn invalid_customer_data_is_dead_lettered_with_its_reason_and_not_retried() {
    // Given a customer whose INN cannot be valid
    let w = world();
    let mut bad = customer("u-301", 1);
    bad.tax_id = Some("123".into());
    w.store.insert(&bad);

    // When its message is handled
    let response = handle(&w.deps, single(0, 1)).await.expect("handled");

    // Then it is not retried, never reaches 1C, and the DLQ gets it with the reason
    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.onec.call_count(), 0);
    let letters = w.control.dead_letters();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.reason, DeadLetterReason::PermanentFailure);
    assert_eq!(letter.error_class, ErrorClass::Permanent);
    assert_eq!(letter.error_kind, "validation");
    assert_eq!(letter.customer_id.as_deref(), Some("u-301"));
    assert_eq!(
        letter.original_message_id,
        "0b6e1c2a-5f3d-4e8a-9c1b-000000000301"
    );
    assert_eq!(
        letter.body,
        single(0, 1).records[0].body.clone().expect("body")
    );
    // And the row and the log show the error
    let row = w.store.customer("u-301").expect("row");
    assert_eq!(row.sync_status, Some(SyncStatus::Error));
    assert!(row.sync_error_message.is_some_and(|m| !m.is_empty()));
    assert_eq!(w.log.entries_for("u-301")[0].status, SyncLogStatus::Error);
    assert!(w.control.delays().is_empty());
}

#[tokio::test]
async fn a_rejection_by_1c_is_dead_lettered_and_not_retried() {
    let w = world();
    w.store.insert(&customer("u-301", 1));
    w.onec.fail_next(OneCError::Rejected {
        status: 422,
        code: Some("validation".into()),
        message: "ИНН не прошёл проверку".into(),
    });

    let response = handle(&w.deps, single(0, 1)).await.expect("handled");

    assert!(failed_ids(&response).is_empty());
    let letters = w.control.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].error_kind, "rejected");
    assert!(letters[0].error_message.contains("ИНН не прошёл проверку"));
}

#[tokio::test]
async fn when_the_dlq_cannot_be_reached_a_permanent_failure_is_retried_instead_of_lost() {
    let w = world();
    let mut bad = customer("u-301", 1);
    bad.tax_id = Some("123".into());
    w.store.insert(&bad);
    w.control.set_dead_letter_failing(true);

    let response = handle(&w.deps, single(0, 1)).await.expect("handled");

    assert_eq!(failed_ids(&response).len(), 1);
    assert_eq!(w.control.delays().len(), 1);
}

#[tokio::test]
async fn malformed_bodies_are_dead_lettered_and_the_good_message_beside_them_is_exported() {
    // Given a batch with a truncated body, a body with an unknown field, and a good message
    let w = world();
    w.store.insert(&customer("u-403", 1));
    let batch = event(POISON_BATCH);
    let bodies: Vec<String> = batch
        .records
        .iter()
        .filter_map(|r| r.body.clone())
        .collect();

    // When handled
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then nothing is retried, both bad bodies are in the DLQ unchanged, the good one exported
    assert!(failed_ids(&response).is_empty());
    let mut letters = w.control.dead_letters();
    letters.sort_by(|a, b| a.original_message_id.cmp(&b.original_message_id));
    assert_eq!(letters.len(), 2);
    for (letter, body) in letters.iter().zip(&bodies) {
        assert_eq!(letter.reason, DeadLetterReason::MalformedMessage);
        assert_eq!(&letter.body, body);
        assert_eq!(letter.customer_id, None);
        // The description does not repeat what was in the body
        assert!(!letter.error_message.contains("olga"));
    }
    assert!(w.onec.counterparty("u-403").is_some());
    assert!(w.onec.counterparty("u-402").is_none());
}

#[tokio::test]
async fn the_circuit_breaker_stops_calling_1c_after_three_consecutive_transient_failures() {
    // Given 1C down and five messages processed one at a time
    let w = world_with(FakeOneCClient::new(), settings(1));
    let batch = registrations(&w, 5);
    w.onec.script((0..5).map(|_| Scripted::Fail(unavailable())));

    // When the batch is handled
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then 1C was called three times; all five are backed off and reported
    assert_eq!(w.onec.call_count(), 3);
    assert_eq!(failed_ids(&response).len(), 5);
    assert_eq!(w.control.delays().len(), 5);
    // And the sync log says which two were not even sent
    let skipped_1c: Vec<_> = (1..=5)
        .flat_map(|i| w.log.entries_for(&format!("u-{i}")))
        .filter(|e| {
            e.details
                .message
                .as_deref()
                .is_some_and(|m| m.contains("circuit breaker"))
        })
        .collect();
    assert_eq!(skipped_1c.len(), 2);
}

#[tokio::test]
async fn a_success_between_failures_keeps_the_breaker_closed() {
    // Given 1C failing twice, succeeding once, then failing twice more
    let w = world_with(FakeOneCClient::new(), settings(1));
    let batch = registrations(&w, 5);
    w.onec.script([
        Scripted::Fail(unavailable()),
        Scripted::Fail(unavailable()),
        Scripted::Pass,
        Scripted::Fail(unavailable()),
        Scripted::Fail(unavailable()),
    ]);

    // When the batch is handled one message at a time
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then the breaker never saw three in a row: every message reached 1C
    assert_eq!(w.onec.call_count(), 5);
    assert_eq!(failed_ids(&response).len(), 4);
    assert_eq!(w.onec.counterparties().len(), 1);
}

#[tokio::test]
async fn a_message_skipped_between_failures_does_not_keep_the_breaker_closed() {
    // Given 1C down, and among five messages one for a customer already in sync
    let w = world_with(FakeOneCClient::new(), settings(1));
    let batch = registrations(&w, 5);
    let mut synced = customer("u-3", 1);
    synced.synced_version = Some(1);
    w.store.insert(&synced);
    w.onec.script((0..5).map(|_| Scripted::Fail(unavailable())));

    // When the batch is handled one message at a time
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then the skip (no call to 1C) did not count as 1C working: the breaker opened after
    // three failures, and the fifth message was backed off without a call
    assert_eq!(w.onec.call_count(), 3);
    assert_eq!(failed_ids(&response), vec!["m-1", "m-2", "m-4", "m-5"]);
}

#[tokio::test]
async fn no_more_messages_than_the_concurrency_bound_reach_1c_at_once() {
    // Given a slow 1C and twelve messages with a bound of three
    let w = world_with(
        FakeOneCClient::new().with_latency(Duration::from_millis(30)),
        settings(3),
    );
    let batch = registrations(&w, 12);

    // When handled
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then all are exported, in parallel, never more than three at a time
    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.onec.counterparties().len(), 12);
    assert_eq!(w.onec.max_in_flight(), 3);
}

#[tokio::test]
async fn batch_calls_to_a_1c_without_a_batch_interface_keep_to_the_concurrency_bound() {
    // Given a slow 1C that takes one customer per request, a batch size of four and a bound
    // of two sessions
    let mut w = world_with(
        FakeOneCClient::new().with_latency(Duration::from_millis(30)),
        settings(2),
    );
    w.deps.service.set_batch_size(4);
    let batch = registrations(&w, 10);

    // When handled
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then every customer is exported, each batch one request at a time within its session
    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.onec.counterparties().len(), 10);
    assert_eq!(w.onec.max_in_flight(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_1c_session_is_never_held_while_rows_load_or_results_are_written_back() {
    // Given two 1C sessions, four customers, 1C answering in 100 ms and DynamoDB in 10 ms
    let w = world_with_store(
        FakeCustomerStore::new().with_latency(Duration::from_millis(10)),
        FakeOneCClient::new().with_latency(Duration::from_millis(100)),
        settings(2),
    );
    let batch = registrations(&w, 4);

    // When the batch is handled (virtual time: the fakes' latencies are the only clock)
    let started = tokio::time::Instant::now();
    let response = handle(&w.deps, batch).await.expect("handled");
    let elapsed = started.elapsed();

    // Then all four are exported, never more than two in 1C at a time
    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.onec.counterparties().len(), 4);
    assert_eq!(w.onec.max_in_flight(), 2);
    // And the sessions went straight from the first two customers to the last two: one read
    // before 1C, two rounds in 1C, one write-back after (10 + 2 × 100 + 10 ms) — not two
    // rounds of read, 1C and write-back (2 × 120 ms), with a session idle during each
    assert_eq!(elapsed, Duration::from_millis(220));
}

#[tokio::test]
async fn an_export_waiting_for_a_session_when_the_breaker_opens_does_not_call_1c() {
    // Given one 1C session, a breaker that opens on the first transient failure, and 1C
    // failing the first call
    let mut settings = settings(1);
    settings.breaker_threshold = 1;
    let w = world_with(
        FakeOneCClient::new().with_latency(Duration::from_millis(20)),
        settings,
    );
    let batch = registrations(&w, 2);
    w.onec.fail_next(unavailable());

    // When both are handled: the second loads its row and waits while the first is in 1C
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then only the first reached 1C; the second backs off as "circuit open" without a call
    assert_eq!(w.onec.call_count(), 1);
    assert_eq!(failed_ids(&response), vec!["m-1", "m-2"]);
    let second = w.log.entries_for("u-2");
    assert!(
        second.iter().any(|e| {
            e.details.error_kind.as_deref() == Some("circuit_open")
                && e.details.message.as_deref() == Some("1C is failing; circuit breaker open")
        }),
        "{second:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_export_that_reaches_1c_after_a_newer_one_sends_the_row_again() {
    // Given a registration (version 1) whose call to 1C takes 100 ms
    let w = world_with(
        FakeOneCClient::new().with_latency(Duration::from_millis(100)),
        settings(2),
    );
    let batch = registrations(&w, 1);

    // When, while it is in 1C, the user renames herself (version 2) and another export
    // records version 2 first (it read its row later but reached 1C sooner)
    let (response, ()) = tokio::join!(handle(&w.deps, batch), version_2_recorded_meanwhile(&w));

    // Then the first export, finding the row past its version, sent the row as it is now:
    // 1C ends with version 2's data, not the registration's
    assert!(failed_ids(&response.expect("handled")).is_empty());
    assert_eq!(w.onec.call_count(), 2);
    let held = w.onec.counterparty("u-1").expect("in 1C");
    assert_eq!(held.first_name.as_deref(), Some("Мария"));
    assert!(w.log.entries_for("u-1").iter().any(|e| e
        .details
        .message
        .as_deref()
        .is_some_and(|m| m.starts_with("sent again"))));
}

#[tokio::test(start_paused = true)]
async fn a_re_send_that_1c_fails_reopens_the_row_and_the_retry_sends_the_newer_data() {
    // Given the overtaken export of the test above, with 1C failing the re-send
    let w = world_with(
        FakeOneCClient::new().with_latency(Duration::from_millis(100)),
        settings(2),
    );
    let batch = registrations(&w, 1);
    w.onec
        .script([Scripted::Pass, Scripted::Fail(unavailable())]);

    // When the batch is handled, and then the message's retry
    let (response, ()) = tokio::join!(
        handle(&w.deps, batch.clone()),
        version_2_recorded_meanwhile(&w)
    );

    // Then the message is retried, and the row no longer claims 1C holds version 2
    assert_eq!(failed_ids(&response.expect("handled")), vec!["m-1"]);
    let row = w.store.customer("u-1").expect("row");
    assert_eq!(row.synced_version, Some(1));
    assert!(row.needs_1c_export);
    assert!(!row.is_in_sync());
    // And the retry sends version 2's data
    let retry = handle(&w.deps, batch).await.expect("handled");
    assert!(failed_ids(&retry).is_empty());
    let held = w.onec.counterparty("u-1").expect("in 1C");
    assert_eq!(held.first_name.as_deref(), Some("Мария"));
    assert!(w.store.customer("u-1").expect("row").is_in_sync());
}

#[tokio::test(start_paused = true)]
async fn a_user_removed_while_its_export_is_in_1c_keeps_the_deletion_mark_in_1c() {
    // Given a customer in 1C and a profile change whose export takes 100 ms in 1C
    let w = world_with(
        FakeOneCClient::new().with_latency(Duration::from_millis(100)),
        settings(2),
    );
    let batch = registrations(&w, 1);
    w.onec
        .insert(individual_counterparty("u-1", "Петров", "Иван"));

    // When, while the export is in 1C, the user is removed and the removal's deactivation
    // marks the counterparty first (the export's upsert then clears the mark again)
    let removal = async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        w.store.remove("u-1");
        let mut marked = w.onec.counterparty("u-1").expect("in 1C");
        marked.deletion_mark = true;
        w.onec.insert(marked);
    };
    let (response, ()) = tokio::join!(handle(&w.deps, batch), removal);

    // Then the export, finding the row gone, set the mark again
    assert!(failed_ids(&response.expect("handled")).is_empty());
    let held = w.onec.counterparty("u-1").expect("marked, never deleted");
    assert!(held.deletion_mark);
}

#[tokio::test(start_paused = true)]
async fn no_1c_call_starts_too_close_to_the_deadline_and_the_rest_is_backed_off_in_time() {
    // Given 1C answering in 10 s, two sessions, six customers, and an invocation with 30 s
    // left that keeps 15 s free for a call and its write-back
    let w = world_with(
        FakeOneCClient::new().with_latency(Duration::from_secs(10)),
        settings(2),
    );
    let batch = registrations(&w, 6);
    let started = tokio::time::Instant::now();
    let deadline = Deadline::new(started + Duration::from_secs(30), Duration::from_secs(15));

    // When the batch is handled (virtual time)
    let response = handle_until(&w.deps, batch, Some(deadline))
        .await
        .expect("handled");

    // Then two waves reached 1C (at 0 s and 10 s); the third would have started at 20 s,
    // past the last start at 15 s, so its two messages are backed off without a call
    assert!(started.elapsed() <= Duration::from_secs(30));
    assert_eq!(w.onec.call_count(), 4);
    assert_eq!(w.onec.counterparties().len(), 4);
    let failed = failed_ids(&response);
    assert_eq!(failed.len(), 2);
    assert_eq!(w.control.delays().len(), 2);
    assert!(w.control.dead_letters().is_empty());
    // And the sync log says why, for each of them
    let out_of_time = (1..=6)
        .flat_map(|i| w.log.entries_for(&format!("u-{i}")))
        .filter(|e| e.details.error_kind.as_deref() == Some("out_of_time"))
        .count();
    assert_eq!(out_of_time, 2);
}

#[tokio::test]
async fn a_deactivation_sets_the_deletion_mark_in_1c_instead_of_deleting() {
    // Given a counterparty in 1C for a user whose row is gone
    let w = world();
    w.onec.insert(Counterparty {
        onec_id: Some("1fa1a135-d89b-11e6-8343-40167e2531c3".into()),
        ..individual_counterparty("u-303", "Сидоров", "Пётр")
    });

    // When the deactivation message is handled
    let response = handle(&w.deps, single(2, 1)).await.expect("handled");

    // Then the counterparty is still there, marked for deletion
    assert!(failed_ids(&response).is_empty());
    let cp = w
        .onec
        .counterparty("u-303")
        .expect("not physically deleted");
    assert!(cp.deletion_mark);
    assert_eq!(cp.name, "Сидоров Пётр");
    let entries = w.log.entries_for("u-303");
    assert_eq!(entries[0].operation_type, SyncOperation::DeactivateIn1c);
    assert_eq!(entries[0].status, SyncLogStatus::Success);
}

#[tokio::test]
async fn a_message_for_a_deleted_user_is_skipped_with_a_log_entry() {
    let w = world();

    let response = handle(&w.deps, single(1, 1)).await.expect("handled");

    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.onec.call_count(), 0);
    let entries = w.log.entries_for("u-302");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, SyncLogStatus::Skipped);
}

#[tokio::test]
async fn a_customer_created_in_1c_is_never_exported_back() {
    let w = world();
    let mut from_1c = customer("u-301", 1);
    from_1c.created_in_1c = true;
    w.store.insert(&from_1c);

    let response = handle(&w.deps, single(0, 1)).await.expect("handled");

    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.onec.call_count(), 0);
}

#[tokio::test]
async fn a_lost_response_followed_by_a_retry_creates_no_duplicate() {
    // Given 1C committing the first upsert but the answer getting lost
    let w = world();
    w.store.insert(&customer("u-301", 1));
    w.onec
        .script([Scripted::CommitThenFail(OneCError::Unavailable {
            status: 504,
            retry_after: None,
            detail: None,
        })]);

    // When the message fails and is delivered again
    let first = handle(&w.deps, single(0, 1)).await.expect("handled");
    let second = handle(&w.deps, single(0, 2)).await.expect("handled");

    // Then one counterparty exists and the row is synced to it
    assert_eq!(failed_ids(&first).len(), 1);
    assert!(failed_ids(&second).is_empty());
    let all = w.onec.counterparties();
    assert_eq!(all.len(), 1);
    let row = w.store.customer("u-301").expect("row");
    assert_eq!(row.sync_status, Some(SyncStatus::Synced));
    assert_eq!(row.onec_id, all[0].onec_id);
    assert_eq!(row.export_attempts, 0);
}

#[tokio::test]
async fn two_deliveries_of_one_change_in_one_batch_yield_one_counterparty() {
    // Given the same message twice in a batch (SQS at-least-once delivery), and a 1C whose
    // lookup-then-create would let two concurrent exports of a new customer both create it
    let w = world_with(
        FakeOneCClient::new().with_latency(Duration::from_millis(20)),
        settings(4),
    );
    w.store.insert(&customer("u-301", 1));
    let mut batch = single(0, 1);
    let mut twin = batch.records[0].clone();
    twin.message_id = Some("twin".into());
    batch.records.push(twin);

    // When handled
    let response = handle(&w.deps, batch).await.expect("handled");

    // Then both are done, one after the other: 1C was called once (the second delivery found
    // the row in sync) and holds one counterparty
    assert!(failed_ids(&response).is_empty());
    assert_eq!(w.onec.call_count(), 1);
    assert_eq!(w.onec.counterparties().len(), 1);
    assert_eq!(
        w.store.customer("u-301").and_then(|c| c.synced_version),
        Some(1)
    );
}

#[tokio::test]
async fn a_record_from_an_unknown_queue_is_retried_after_the_queue_visibility_timeout() {
    let w = world();
    w.store.insert(&customer("u-301", 1));
    w.onec.fail_next(unavailable());
    let mut batch = single(0, 1);
    batch.records[0].event_source_arn =
        Some("arn:aws:sqs:eu-central-1:123456789012:someone-elses-queue".into());

    let response = handle(&w.deps, batch).await.expect("handled");

    assert_eq!(failed_ids(&response).len(), 1);
    assert!(w.control.delays().is_empty());
}

#[test]
fn the_lane_comes_from_the_queue_name_in_the_event_source_arn() {
    let routes = QueueRoutes::new(PRIORITY_URL, BULK_URL);
    assert_eq!(
        routes.lane_for("arn:aws:sqs:eu-central-1:123456789012:onec-sync-export-priority"),
        Some(Lane::Priority)
    );
    assert_eq!(
        routes.lane_for("arn:aws:sqs:eu-central-1:123456789012:onec-sync-export-bulk"),
        Some(Lane::Bulk)
    );
    assert_eq!(routes.lane_for("arn:aws:sqs:eu-central-1:1:other"), None);
}

/// 10 ms in (while u-1's registration is in 1C): the user renames herself (version 2) and
/// another export records version 2 first — it read its row later but reached 1C sooner.
async fn version_2_recorded_meanwhile(w: &World) {
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut edited = customer("u-1", 2);
    edited.first_name = Some("Мария".into());
    edited.synced_version = Some(2);
    edited.sync_status = Some(SyncStatus::Synced);
    w.store.insert(&edited);
}
