//! A function's SDK configuration comes from the variables Lambda sets (and the local stack's
//! endpoint variables). Its own test binary: it sets process-wide environment variables, which
//! no other test may see.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Answers one request with `body` as an AWS JSON-protocol response and returns the request's
/// head (request line and headers), lower-cased.
async fn answer_once(body: &'static str) -> (String, JoinHandle<Option<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = tokio::spawn(async move {
        let accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await;
        let (mut tcp, _) = accepted.ok()?.ok()?;
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = tcp.read(&mut buf).await.ok()?;
            if read == 0 {
                return None;
            }
            request.extend_from_slice(&buf[..read]);
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(response.as_bytes()).await.ok()?;
        let text = String::from_utf8_lossy(&request).to_lowercase();
        text.split("\r\n\r\n").next().map(str::to_owned)
    });
    (url, served)
}

#[tokio::test]
async fn a_functions_sdk_configuration_comes_from_the_variables_lambda_sets() {
    // Given the variables Lambda sets for a function with an execution role, plus a global
    // endpoint and an SQS-specific one (as the local stack sets them)
    let (global, dynamodb_request) = answer_once(r#"{"TableNames":["users"]}"#).await;
    let (sqs_only, sqs_request) = answer_once(r#"{"QueueUrls":[]}"#).await;
    for (name, value) in [
        ("AWS_REGION", "eu-central-1"),
        ("AWS_ACCESS_KEY_ID", "ASIAROLEKEY"),
        ("AWS_SECRET_ACCESS_KEY", "role-secret"),
        ("AWS_SESSION_TOKEN", "role-session-token"),
        ("AWS_ENDPOINT_URL", global.as_str()),
        ("AWS_ENDPOINT_URL_SQS", sqs_only.as_str()),
    ] {
        std::env::set_var(name, value);
    }
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        std::env::remove_var(name);
    }

    // When the configuration is built and a client of each service makes a call
    let aws = shared::https::lambda_sdk_config().await;
    let tables = aws_sdk_dynamodb::Client::new(&aws)
        .list_tables()
        .send()
        .await
        .expect("DynamoDB answered");
    aws_sdk_sqs::Client::new(&aws)
        .list_queues()
        .send()
        .await
        .expect("SQS answered");

    // Then the region is Lambda's, DynamoDB went to the global endpoint and SQS to its own
    assert_eq!(aws.region().map(|r| r.as_ref()), Some("eu-central-1"));
    assert_eq!(tables.table_names(), ["users"]);
    let dynamodb_head = dynamodb_request.await.unwrap().expect("a DynamoDB request");
    let sqs_head = sqs_request.await.unwrap().expect("an SQS request");
    assert!(dynamodb_head.contains("x-amz-target: dynamodb_20120810.listtables"));
    assert!(sqs_head.contains("x-amz-target: amazonsqs.listqueues"));
    // And both requests are signed with the role's key and session token for that region
    for head in [&dynamodb_head, &sqs_head] {
        assert!(head.contains("credential=asiarolekey/"), "{head}");
        assert!(head.contains("/eu-central-1/"), "{head}");
        assert!(
            head.contains("x-amz-security-token: role-session-token"),
            "{head}"
        );
    }
}
