//! Batch upserts (`OneCClient::upsert_customers`) over real HTTP against the 1C emulator: the
//! HTTP-service batch resource and OData `$batch`.

use integration_tests::emulator::{
    individual, legal_entity, platform_id, respond, Emulator, SHORT_TIMEOUT,
};
use integration_tests::onec_scenarios::assert_error;
use onec_emulator::{FaultPlan, ScriptedAnswer};
use shared::error::{Classify, ErrorClass};
use shared::onec::{Counterparty, OneCError, Transport, UpsertOutcome};

const BATCH_TRANSPORTS: [Transport; 2] = [Transport::Json, Transport::OData];

fn customers(n: usize) -> Vec<Counterparty> {
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                individual(&platform_id())
            } else {
                legal_entity(&platform_id())
            }
        })
        .collect()
}

fn all_ok(results: Vec<Result<UpsertOutcome, OneCError>>) -> Vec<UpsertOutcome> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("a batch item failed: {e:?}")))
        .collect()
}

fn requests(emulator: &Emulator, transport: Transport) -> u64 {
    let name = match transport {
        Transport::Json => "json",
        Transport::OData => "odata",
        Transport::CommerceMl => "commerceml",
    };
    emulator
        .handle
        .stats()
        .requests
        .get(name)
        .map_or(0, |by_status| by_status.values().sum())
}

/// What a batch costs in requests: one for the HTTP service, lookups plus writes for OData.
fn requests_per_batch(transport: Transport) -> u64 {
    match transport {
        Transport::OData => 2,
        _ => 1,
    }
}

#[tokio::test]
async fn a_batch_creates_then_updates_every_customer_once_in_a_fixed_number_of_requests() {
    for transport in BATCH_TRANSPORTS {
        // Given ten customers 1C does not know yet
        let emulator = Emulator::start().await;
        let client = emulator.client(transport);
        let mut batch = customers(10);

        // When they are sent as one batch, changed, and sent again
        let created = all_ok(client.upsert_customers(&batch).await);
        for cp in &mut batch {
            cp.status = Some("Заблокирован".into());
        }
        let updated = all_ok(client.upsert_customers(&batch).await);

        // Then each was created once, then updated in place, in input order
        assert!(created.iter().all(|o| o.created), "{transport:?}");
        assert!(updated.iter().all(|o| !o.created), "{transport:?}");
        for ((cp, first), second) in batch.iter().zip(&created).zip(&updated) {
            assert_eq!(first.onec_id, second.onec_id, "{transport:?}");
            assert_ne!(first.data_version, second.data_version, "{transport:?}");
            let stored = emulator.handle.find_by_platform_id(&cp.platform_id);
            assert_eq!(stored.len(), 1, "{transport:?}");
            assert_eq!(stored[0].onec_id, first.onec_id, "{transport:?}");
            assert_eq!(stored[0].fields.status.as_deref(), Some("Заблокирован"));
        }
        assert_eq!(emulator.handle.counterparties().len(), 10);
        // And each batch took a fixed number of requests, not one per customer
        assert_eq!(
            requests(&emulator, transport),
            2 * requests_per_batch(transport),
            "{transport:?}"
        );
        emulator.stop().await;
    }
}

#[tokio::test]
async fn one_customer_1c_refuses_fails_alone_and_the_rest_are_written() {
    for transport in BATCH_TRANSPORTS {
        // Given a batch whose middle customer carries an INN 1C's ПередЗаписью refuses
        let emulator = Emulator::start().await;
        let client = emulator.client(transport);
        let mut batch = customers(3);
        batch[1].inn = Some("123".into());

        // When the batch is sent
        let mut results = client.upsert_customers(&batch).await;

        // Then only that customer failed, as a permanent business rejection
        let last = results.pop().expect("three results");
        let middle = results.pop().expect("three results");
        let first = results.pop().expect("three results");
        assert_error(middle, "rejected", ErrorClass::Permanent);
        assert!(first.expect("first written").created, "{transport:?}");
        assert!(last.expect("last written").created, "{transport:?}");
        assert_eq!(emulator.count_for(&batch[0].platform_id), 1);
        assert_eq!(emulator.count_for(&batch[1].platform_id), 0);
        assert_eq!(emulator.count_for(&batch[2].platform_id), 1);
        emulator.stop().await;
    }
}

#[tokio::test]
async fn a_json_item_the_service_cannot_read_fails_alone_as_a_validation_error() {
    // Given a batch with a customer whose name is blank (the service requires one)
    let emulator = Emulator::start().await;
    let client = emulator.client(Transport::Json);
    let mut batch = customers(2);
    batch[0].name = " ".into();

    // When the batch is sent
    let results = client.upsert_customers(&batch).await;

    // Then the first is a permanent 422 and the second was written
    let mut results = results.into_iter();
    let refused = assert_error(
        results.next().expect("two results"),
        "rejected",
        ErrorClass::Permanent,
    );
    assert!(matches!(refused, OneCError::Rejected { status: 422, .. }));
    assert!(results.next().expect("two results").is_ok());
    emulator.stop().await;
}

#[tokio::test]
async fn a_lost_batch_response_followed_by_a_retry_creates_no_duplicates() {
    for transport in BATCH_TRANSPORTS {
        // Given 1C that commits the next write batch, then answers with a gateway error page
        let emulator = Emulator::start().await;
        let client = emulator.client(transport);
        let batch = customers(4);
        let mut script = Vec::new();
        if transport == Transport::OData {
            script.push(no_matches_answer(batch.len()));
        }
        script.push(ScriptedAnswer::CommitThenStatus {
            commit_then_status: 502,
        });
        emulator.script(script);

        // When the batch fails transiently for every customer and is sent again
        let first = client.upsert_customers(&batch).await;
        for result in first {
            assert_error(result, "html_page", ErrorClass::Transient);
        }
        assert_eq!(emulator.handle.counterparties().len(), 4, "committed");
        let retry = all_ok(client.upsert_customers(&batch).await);

        // Then the retry updated what was committed: still one counterparty per customer
        assert!(retry.iter().all(|o| !o.created), "{transport:?}");
        for cp in &batch {
            assert_eq!(emulator.count_for(&cp.platform_id), 1, "{transport:?}");
        }
        assert_eq!(emulator.handle.counterparties().len(), 4);
        emulator.stop().await;
    }
}

#[tokio::test]
async fn a_timed_out_batch_that_1c_committed_is_not_duplicated_by_the_retry() {
    // Given 1C that commits every request and then hangs past the client's timeout
    let emulator = Emulator::start().await;
    let client = emulator.client_with(Transport::Json, |c| c.request_timeout = SHORT_TIMEOUT);
    let batch = customers(3);
    emulator.handle.set_faults(FaultPlan {
        lost_response_rate: 1.0,
        hang_ms: 5_000,
        ..FaultPlan::default()
    });

    // When the batch times out, 1C recovers and the batch is retried
    for result in client.upsert_customers(&batch).await {
        assert_error(result, "timeout", ErrorClass::Transient);
    }
    emulator.handle.set_faults(FaultPlan::default());
    let retry = all_ok(client.upsert_customers(&batch).await);

    // Then nothing was created twice
    assert!(retry.iter().all(|o| !o.created));
    assert_eq!(emulator.handle.counterparties().len(), 3);
    emulator.stop().await;
}

#[tokio::test]
async fn a_whole_batch_failure_is_every_customers_result_with_its_class() {
    for transport in BATCH_TRANSPORTS {
        // Given 1C that is down, then one that throttles
        let emulator = Emulator::start().await;
        let client = emulator.client(transport);
        let batch = customers(3);
        emulator.handle.set_faults(FaultPlan {
            down: true,
            ..FaultPlan::default()
        });

        // When a batch is sent to each
        let down = client.upsert_customers(&batch).await;
        emulator.handle.set_faults(FaultPlan {
            rate_429: 1.0,
            retry_after_secs: 7,
            ..FaultPlan::default()
        });
        let throttled = client.upsert_customers(&batch).await;

        // Then every customer carries the request's error, classified as a single call's
        assert_eq!(down.len(), 3);
        for result in down {
            assert_error(result, "unavailable", ErrorClass::Transient);
        }
        for result in throttled {
            let err = assert_error(result, "rate_limited", ErrorClass::Transient);
            assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(7)));
        }
        assert!(emulator.handle.counterparties().is_empty());
        emulator.stop().await;
    }
}

#[tokio::test]
async fn a_batch_costs_the_latency_of_one_request_per_round_trip() {
    for transport in BATCH_TRANSPORTS {
        // Given 1C with added latency
        let emulator = Emulator::start().await;
        let client = emulator.client(transport);
        emulator.handle.set_faults(FaultPlan {
            latency_ms: 20,
            ..FaultPlan::default()
        });

        // When twenty customers are sent as one batch
        all_ok(client.upsert_customers(&customers(20)).await);

        // Then the latency was paid once per request, not once per customer
        let stats = emulator.handle.stats();
        assert_eq!(
            stats.faults.get("latency").copied(),
            Some(requests_per_batch(transport)),
            "{transport:?}"
        );
        emulator.stop().await;
    }
}

#[tokio::test]
async fn one_customer_twice_in_a_batch_yields_one_counterparty() {
    for transport in BATCH_TRANSPORTS {
        // Given a batch that carries the same new customer twice, the second time changed
        let emulator = Emulator::start().await;
        let client = emulator.client(transport);
        let first = individual(&platform_id());
        let mut second = first.clone();
        second.status = Some("Заблокирован".into());

        // When it is sent
        let results = all_ok(client.upsert_customers(&[first.clone(), second]).await);

        // Then one counterparty holds the later data
        assert!(results[0].created, "{transport:?}");
        assert!(!results[1].created, "{transport:?}");
        assert_eq!(results[0].onec_id, results[1].onec_id);
        let stored = emulator.handle.find_by_platform_id(&first.platform_id);
        assert_eq!(stored.len(), 1, "{transport:?}");
        assert_eq!(stored[0].fields.status.as_deref(), Some("Заблокирован"));
        emulator.stop().await;
    }
}

#[tokio::test]
async fn a_publication_without_odata_batch_gets_one_request_per_customer() {
    // Given a publication that answers `$batch` as an unknown entity set
    let emulator = Emulator::start().await;
    let client = emulator.client(Transport::OData);
    emulator.script(vec![respond(
        404,
        "application/json",
        r#"{"odata.error":{"code":"8","message":{"lang":"ru","value":"Тип сущности не найден"}}}"#,
    )]);
    let batch = customers(3);

    // When a batch is sent, and then another
    let first = all_ok(client.upsert_customers(&batch).await);
    let second = all_ok(client.upsert_customers(&batch).await);

    // Then both were written one customer at a time (lookup and write each), without errors
    assert!(first.iter().all(|o| o.created));
    assert!(second.iter().all(|o| !o.created));
    assert_eq!(requests(&emulator, Transport::OData), 1 + 2 * 3 + 2 * 3);
    emulator.stop().await;
}

#[tokio::test]
async fn an_item_without_a_platform_id_is_refused_before_sending_and_the_rest_go() {
    for transport in BATCH_TRANSPORTS {
        // Given a batch with a customer that has no platform id
        let emulator = Emulator::start().await;
        let client = emulator.client(transport);
        let mut batch = customers(2);
        batch[1].platform_id = String::new();

        // When it is sent
        let mut results = client.upsert_customers(&batch).await.into_iter();

        // Then that customer is an invalid request and the other was written
        assert!(results.next().expect("two").is_ok());
        let err = results.next().expect("two").expect_err("refused");
        assert_eq!(err.kind(), "invalid_request");
        assert_eq!(err.class(), ErrorClass::Permanent);
        assert_eq!(emulator.handle.counterparties().len(), 1);
        emulator.stop().await;
    }
}

/// A `$batch` answer with an empty lookup result for each of `n` queries.
fn no_matches_answer(n: usize) -> ScriptedAnswer {
    let mut body = String::new();
    for _ in 0..n {
        body.push_str(
            "--b\r\nContent-Type: application/http\r\n\r\n\
             HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"value\":[]}\r\n",
        );
    }
    body.push_str("--b--\r\n");
    respond(202, "multipart/mixed; boundary=b", &body)
}

/// Sends a raw `$batch` body to the emulator and returns the answer's text.
async fn raw_batch(emulator: &Emulator, body: &str) -> (u16, String) {
    let config = emulator.handle.config();
    let response = shared::https::reqwest_builder()
        .build()
        .unwrap()
        .post(format!(
            "{}/odata/standard.odata/$batch",
            emulator.handle.base_url()
        ))
        .basic_auth(&config.username, Some(&config.password))
        .header("content-type", "multipart/mixed; boundary=b")
        .body(body.replace('\n', "\r\n"))
        .send()
        .await
        .expect("the emulator answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a text body"))
}

#[tokio::test]
async fn the_emulator_refuses_writes_outside_change_sets_and_longer_change_sets() {
    // Given a batch with a POST outside a change set and a change set of two POSTs
    let emulator = Emulator::start().await;
    let post = "Content-Type: application/http\n\n\
        POST Catalog_%D0%9A%D0%BE%D0%BD%D1%82%D1%80%D0%B0%D0%B3%D0%B5%D0%BD%D1%82%D1%8B?$format=json HTTP/1.1\n\
        Content-Type: application/json\n\n\
        {\"Description\":\"x\",\"ИдентификаторНаСайте\":\"p\"}\n";
    let body = format!("--b\n{post}--b\nContent-Type: multipart/mixed; boundary=c\n\n--c\n{post}--c\n{post}--c--\n--b--\n");

    // When it is sent
    let (status, text) = raw_batch(&emulator, &body).await;

    // Then the batch is answered, each part refused in place, and nothing was written
    assert_eq!(status, 202);
    assert!(text.contains("HTTP/1.1 405"), "{text}");
    assert!(text.contains(r#""code":"19""#), "{text}");
    assert!(text.contains("HTTP/1.1 501"), "{text}");
    assert!(text.contains(r#""code":"0""#), "{text}");
    assert!(emulator.handle.counterparties().is_empty());
    emulator.stop().await;
}

#[tokio::test]
async fn the_emulator_refuses_a_batch_that_is_not_multipart() {
    // Given a body without the multipart framing
    let emulator = Emulator::start().await;

    // When it is sent as a batch
    let (status, text) = raw_batch(&emulator, "{}").await;

    // Then the whole request is refused as malformed
    assert_eq!(status, 400);
    assert!(text.contains("odata.error"), "{text}");
    emulator.stop().await;
}
