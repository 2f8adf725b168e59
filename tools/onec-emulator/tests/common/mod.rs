//! Helpers shared by the emulator's HTTP tests.
#![allow(dead_code)]

use onec_emulator::{spawn, EmulatorConfig, EmulatorHandle};
use serde_json::{json, Value};
use std::time::Duration;

pub const USER: &str = "Обмен";
pub const PASSWORD: &str = "пароль-1С";

pub async fn start() -> EmulatorHandle {
    start_with(EmulatorConfig::default()).await
}

pub async fn start_with(config: EmulatorConfig) -> EmulatorHandle {
    spawn(config).await.expect("emulator starts")
}

pub fn client() -> reqwest::Client {
    shared::https::reqwest_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client builds")
}

pub fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    shared::https::reqwest_builder()
        .timeout(timeout)
        .build()
        .expect("client builds")
}

/// An authenticated request to a path below the publication URL.
pub fn request(
    client: &reqwest::Client,
    emulator: &EmulatorHandle,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    client
        .request(method, format!("{}{path}", emulator.base_url()))
        .basic_auth(USER, Some(PASSWORD))
}

pub fn customer(platform_id: &str) -> Value {
    json!({
        "platform_id": platform_id,
        "kind": "individual",
        "name": "Иванов Иван",
        "full_name": "Иванов Иван Иванович",
        "first_name": "Иван",
        "last_name": "Иванов",
        "inn": "500100732259",
        "email": "ivanov@example.ru",
        "phone": "+79123456789",
        "role": "Опт",
        "status": "Активен",
        "deletion_mark": false,
        "extra": {"Город": "Казань"}
    })
}

pub async fn post_customer(
    client: &reqwest::Client,
    emulator: &EmulatorHandle,
    body: &Value,
) -> (u16, Value) {
    let response = request(
        client,
        emulator,
        reqwest::Method::POST,
        "/hs/site/customers",
    )
    .json(body)
    .send()
    .await
    .expect("request is answered");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}
