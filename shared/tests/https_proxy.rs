//! The SDK's HTTPS client honours the proxy the environment names, as the SDK's default client
//! does. Its own test binary: it sets process-wide environment variables, which no other test
//! may see.

use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

#[tokio::test]
async fn an_sdk_client_from_the_loader_goes_through_the_proxy_the_environment_names() {
    // Given a proxy on loopback named by HTTPS_PROXY, and no exemption for the endpoint
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    std::env::set_var("HTTPS_PROXY", &proxy_url);
    std::env::remove_var("NO_PROXY");
    std::env::remove_var("no_proxy");
    let aws = shared::https::aws_config_loader()
        .endpoint_url("https://dynamodb.example.invalid")
        .region(aws_config::Region::new("eu-central-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "id", "secret", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let first_line = tokio::spawn(async move {
        // A client that bypasses the proxy never connects: give up instead of hanging.
        let accepted = tokio::time::timeout(Duration::from_secs(10), proxy.accept()).await;
        let (mut tcp, _) = accepted.ok()?.ok()?;
        let mut head = vec![0u8; 256];
        let read = tcp.read(&mut head).await.ok()?;
        String::from_utf8_lossy(&head[..read])
            .lines()
            .next()
            .map(str::to_owned)
    });

    // When a DynamoDB call is made (the proxy hangs up, so the call fails)
    let result = aws_sdk_dynamodb::Client::new(&aws)
        .list_tables()
        .send()
        .await;

    // Then the client asked the proxy for a tunnel to the endpoint
    assert!(result.is_err());
    assert_eq!(
        first_line.await.unwrap().as_deref(),
        Some("CONNECT dynamodb.example.invalid:443 HTTP/1.1")
    );
}
