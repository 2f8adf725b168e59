//! The fault plan and scripted answers, over real HTTP.

mod common;

use common::*;
use onec_emulator::{EmulatorConfig, FaultPlan, Outage, ScriptedAnswer};
use reqwest::Method;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Status codes (0 for a client timeout) of `n` finds in a row.
async fn outcomes(emulator: &onec_emulator::EmulatorHandle, n: usize) -> Vec<u16> {
    let client = client_with_timeout(Duration::from_millis(300));
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        let result = request(
            &client,
            emulator,
            Method::GET,
            "/hs/site/customers?platform_id=p",
        )
        .send()
        .await;
        seen.push(result.map_or(0, |r| r.status().as_u16()));
    }
    seen
}

fn noisy_plan(seed: u64) -> FaultPlan {
    FaultPlan {
        seed,
        error_5xx_rate: 0.25,
        rate_429: 0.25,
        timeout_rate: 0.1,
        hang_ms: 1_000,
        ..FaultPlan::default()
    }
}

#[tokio::test]
async fn a_seeded_fault_plan_gives_the_same_outcomes_on_every_run() {
    // Given two emulators with the same seeded plan
    let first = start_with(EmulatorConfig {
        faults: noisy_plan(11),
        ..Default::default()
    })
    .await;
    let second = start_with(EmulatorConfig {
        faults: noisy_plan(11),
        ..Default::default()
    })
    .await;

    // When both receive the same 30 requests
    let a = outcomes(&first, 30).await;
    let b = outcomes(&second, 30).await;

    // Then the sequences match and contain every kind of fault next to successes
    assert_eq!(a, b);
    for expected in [200, 503, 429, 0] {
        assert!(a.contains(&expected), "{expected} missing from {a:?}");
    }
    let stats = first.stats();
    assert_eq!(
        stats.faults.get("rate_429").copied(),
        Some(a.iter().filter(|s| **s == 429).count() as u64)
    );
}

#[tokio::test]
async fn a_429_carries_retry_after() {
    // Given a plan that throttles everything with a 7-second hint
    let emulator = start_with(EmulatorConfig {
        faults: FaultPlan {
            rate_429: 1.0,
            retry_after_secs: 7,
            ..FaultPlan::default()
        },
        ..Default::default()
    })
    .await;

    // When a request arrives
    let response = request(&client(), &emulator, Method::POST, "/hs/site/customers")
        .json(&customer("p-1"))
        .send()
        .await
        .expect("answered");

    // Then it is 429 with Retry-After and nothing was written
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert!(emulator.counterparties().is_empty());
}

#[tokio::test]
async fn a_lost_response_commits_the_write_while_the_client_times_out() {
    // Given a plan that loses every response
    let emulator = start_with(EmulatorConfig {
        faults: FaultPlan {
            lost_response_rate: 1.0,
            hang_ms: 5_000,
            ..FaultPlan::default()
        },
        ..Default::default()
    })
    .await;

    // When a client with a short timeout creates a customer
    let result = request(
        &client_with_timeout(Duration::from_millis(300)),
        &emulator,
        Method::POST,
        "/hs/site/customers",
    )
    .json(&customer("p-1"))
    .send()
    .await;

    // Then the client timed out, yet 1C holds the counterparty
    assert!(result.is_err_and(|e| e.is_timeout()));
    assert_eq!(emulator.find_by_platform_id("p-1").len(), 1);
    assert_eq!(
        emulator.stats().faults.get("lost_response").copied(),
        Some(1)
    );
}

#[tokio::test]
async fn an_outage_window_answers_503_then_recovers() {
    // Given an outage covering requests 2 to 4
    let emulator = start_with(EmulatorConfig {
        faults: FaultPlan {
            outages: vec![Outage {
                after_requests: 1,
                for_requests: 3,
            }],
            ..FaultPlan::default()
        },
        ..Default::default()
    })
    .await;

    // When six requests arrive
    let seen = outcomes(&emulator, 6).await;

    // Then the window is refused and service resumes after it
    assert_eq!(seen, [200, 503, 503, 503, 200, 200]);
}

#[tokio::test]
async fn down_answers_503_until_cleared_over_the_admin_api() {
    // Given an emulator marked down through the admin API
    let emulator = start().await;
    let client = client();
    let put = client
        .put(format!("{}/faults", emulator.admin_url()))
        .json(&json!({"down": true}))
        .send()
        .await
        .expect("answered");
    assert_eq!(put.status(), 200);

    // When a request arrives, then the plan is cleared, and another arrives
    let while_down = outcomes(&emulator, 1).await;
    client
        .put(format!("{}/faults", emulator.admin_url()))
        .json(&json!({}))
        .send()
        .await
        .expect("answered");
    let after = outcomes(&emulator, 1).await;

    // Then the first is 503 and the second is served
    assert_eq!(while_down, [503]);
    assert_eq!(after, [200]);
}

#[tokio::test]
async fn scripted_answers_are_served_exactly_and_in_order() {
    // Given three scripted answers queued over the admin API
    let emulator = start().await;
    let client = client();
    let queued = client
        .post(format!("{}/script", emulator.admin_url()))
        .json(&json!([
            {"status": 503, "content_type": "text/html", "body": "<html>down</html>", "headers": {"Retry-After": "2"}},
            {"commit_then_status": 502},
            {"hang_ms": 2000}
        ]))
        .send()
        .await
        .expect("answered");
    assert_eq!(queued.status(), 200);
    let short = client_with_timeout(Duration::from_millis(300));

    // When four upserts of the same customer arrive
    let post = |c: &reqwest::Client| {
        request(c, &emulator, Method::POST, "/hs/site/customers")
            .json(&customer("p-1"))
            .send()
    };
    let first = post(&client).await.expect("answered");
    let first_retry_after = first.headers().get("retry-after").cloned();
    let first_body = first.text().await.expect("body");
    let second = post(&client).await.expect("answered");
    let third = post(&short).await;
    let fourth = post(&client).await.expect("answered");

    // Then: the exact 503, a 502 page after a commit, a hang, and finally a normal update
    assert_eq!(first_body, "<html>down</html>");
    assert_eq!(
        first_retry_after.as_ref().and_then(|v| v.to_str().ok()),
        Some("2")
    );
    assert_eq!(second.status(), 502);
    assert!(second.headers()["content-type"]
        .to_str()
        .is_ok_and(|ct| ct.starts_with("text/html")));
    assert!(third.is_err_and(|e| e.is_timeout()));
    assert_eq!(fourth.status(), 200, "the 502 had committed the create");
    assert_eq!(emulator.counterparties().len(), 1);
    assert_eq!(emulator.stats().faults.get("scripted").copied(), Some(3));
}

#[tokio::test]
async fn the_typed_script_helper_feeds_the_same_queue() {
    // Given a scripted 418 queued without HTTP
    let emulator = start().await;
    emulator.script(vec![ScriptedAnswer::Respond {
        status: 418,
        content_type: Some("text/plain".into()),
        body: "teapot".into(),
        headers: BTreeMap::new(),
    }]);

    // When two requests arrive
    let seen = outcomes(&emulator, 2).await;

    // Then only the first is scripted, and stats count it under the json transport
    assert_eq!(seen, [418, 200]);
    let stats = emulator.stats();
    assert_eq!(stats.requests["json"].get("418").copied(), Some(1));
    assert_eq!(stats.requests["json"].get("200").copied(), Some(1));
}

#[tokio::test]
async fn admin_requests_bypass_faults_and_auth() {
    // Given an emulator that is down
    let emulator = start_with(EmulatorConfig {
        faults: FaultPlan {
            down: true,
            ..FaultPlan::default()
        },
        ..Default::default()
    })
    .await;

    // When the admin API is asked for stats without credentials
    let response = client()
        .get(format!("{}/stats", emulator.admin_url()))
        .send()
        .await
        .expect("answered");

    // Then it answers, and counts no request
    assert_eq!(response.status(), 200);
    let stats: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(stats["requests"], json!({}));
}
