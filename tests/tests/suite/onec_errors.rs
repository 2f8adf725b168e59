//! Every error class of the contract, for every transport, from real HTTP answers of the 1C
//! emulator (scripted where the answer has to be exact).

use integration_tests::emulator::{
    individual, platform_id, respond, respond_with_headers, Emulator, SHORT_TIMEOUT, TRANSPORTS,
};
use integration_tests::onec_scenarios::assert_error;
use onec_emulator::ScriptedAnswer;
use shared::error::ErrorClass::{Permanent, Transient};
use shared::onec::{OneCError, Transport};
use std::time::Duration;

const HTML: &str = "text/html; charset=utf-8";

fn content_type(transport: Transport) -> &'static str {
    match transport {
        Transport::Json | Transport::OData => "application/json; charset=utf-8",
        Transport::CommerceMl => "application/xml; charset=utf-8",
    }
}

/// An error body in the transport's own shape.
fn error_body(transport: Transport, code: &str, message: &str) -> String {
    match transport {
        Transport::Json => {
            serde_json::json!({"error": {"code": code, "message": message}}).to_string()
        }
        Transport::OData => serde_json::json!({
            "odata.error": {"code": code, "message": {"lang": "ru", "value": message}}
        })
        .to_string(),
        Transport::CommerceMl => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
             <Ошибка><Код>{code}</Код><Сообщение>{message}</Сообщение></Ошибка>"
        ),
    }
}

/// The code 1C uses for a business-rule rejection on each transport.
fn business_code(transport: Transport) -> &'static str {
    match transport {
        Transport::OData => "-1",
        Transport::Json | Transport::CommerceMl => "business",
    }
}

/// Scripts `answers` and runs one upsert of a fresh customer against them.
async fn upsert_against(
    transport: Transport,
    answers: Vec<ScriptedAnswer>,
) -> Result<shared::onec::UpsertOutcome, OneCError> {
    let emulator = Emulator::start().await;
    let client = emulator.client(transport);
    emulator.script(answers);
    let result = client.upsert_customer(&individual(&platform_id())).await;
    emulator.stop().await;
    result
}

#[tokio::test]
async fn a_503_is_transient_unavailability() {
    for transport in TRANSPORTS {
        let answer = respond(503, "text/plain", "Service Unavailable");
        let result = upsert_against(transport, vec![answer]).await;
        let error = assert_error(result, "unavailable", Transient);
        assert_eq!(error.retry_after(), None, "{transport}");
    }
}

#[tokio::test]
async fn a_502_html_page_is_a_transient_html_page_with_its_title() {
    for transport in TRANSPORTS {
        let page = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>\
                    <body>nginx</body></html>";
        let result = upsert_against(transport, vec![respond(502, HTML, page)]).await;
        match assert_error(result, "html_page", Transient) {
            OneCError::HtmlPage { status, title } => {
                assert_eq!(status, 502);
                assert_eq!(title, "502 Bad Gateway");
            }
            other => panic!("{transport}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_429_is_rate_limiting_that_honours_retry_after() {
    for transport in TRANSPORTS {
        let answer = respond_with_headers(
            429,
            "text/plain",
            "Too Many Requests",
            &[("Retry-After", "2")],
        );
        let result = upsert_against(transport, vec![answer]).await;
        let error = assert_error(result, "rate_limited", Transient);
        assert_eq!(
            error.retry_after(),
            Some(Duration::from_secs(2)),
            "{transport}"
        );
    }
}

#[tokio::test]
async fn an_answer_slower_than_the_request_timeout_is_a_transient_timeout() {
    for transport in TRANSPORTS {
        // Given 1C that hangs far longer than the client waits
        let emulator = Emulator::start().await;
        let client = emulator.client_with(transport, |c| c.request_timeout = SHORT_TIMEOUT);
        emulator.script(vec![ScriptedAnswer::Hang { hang_ms: 10_000 }]);

        // When a customer is exported
        let started = std::time::Instant::now();
        let result = client.upsert_customer(&individual(&platform_id())).await;

        // Then the call gives up after about the timeout, as a transient timeout
        assert_error(result, "timeout", Transient);
        assert!(started.elapsed() < Duration::from_secs(5), "{transport}");
        emulator.stop().await;
    }
}

#[tokio::test]
async fn a_400_is_a_permanent_rejection_with_1cs_code_and_message() {
    for transport in TRANSPORTS {
        let body = error_body(transport, "validation", "Неверный ИНН");
        let answer = respond(400, content_type(transport), &body);
        let result = upsert_against(transport, vec![answer]).await;
        match assert_error(result, "rejected", Permanent) {
            OneCError::Rejected {
                status,
                code,
                message,
            } => {
                assert_eq!(status, 400);
                assert_eq!(code.as_deref(), Some("validation"), "{transport}");
                assert_eq!(message, "Неверный ИНН", "{transport}");
            }
            other => panic!("{transport}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_wrong_password_is_a_permanent_unauthorized() {
    for transport in TRANSPORTS {
        // Given a client with the wrong password (and 1C answering every request for real)
        let emulator = Emulator::start().await;
        let client = emulator.client_with(transport, |c| {
            c.credentials.password = "не-тот-пароль".into();
        });

        // When a customer is exported
        let result = client.upsert_customer(&individual(&platform_id())).await;

        // Then the error says unauthorized, permanent, and does not echo the password
        let error = assert_error(result, "unauthorized", Permanent);
        assert!(!format!("{error} {error:?}").contains("не-тот-пароль"));
        assert!(emulator.handle.counterparties().is_empty());
        emulator.stop().await;
    }
}

#[tokio::test]
async fn a_business_rejection_is_permanent_with_1cs_message() {
    for transport in TRANSPORTS {
        let message = "Контрагент с таким ИНН уже существует";
        let body = error_body(transport, business_code(transport), message);
        let answer = respond(500, content_type(transport), &body);
        let result = upsert_against(transport, vec![answer]).await;
        match assert_error(result, "rejected", Permanent) {
            OneCError::Rejected {
                status,
                message: got,
                ..
            } => {
                assert_eq!(status, 500);
                assert_eq!(got, message, "{transport}");
            }
            other => panic!("{transport}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_500_without_a_business_code_is_transient() {
    for transport in TRANSPORTS {
        let body = error_body(transport, "internal", "Ошибка СУБД: блокировка");
        let answer = respond(500, content_type(transport), &body);
        let result = upsert_against(transport, vec![answer]).await;
        assert_error(result, "unavailable", Transient);
    }
}

#[tokio::test]
async fn an_html_404_page_is_permanent() {
    for transport in TRANSPORTS {
        let page = "<html><head><title>404 Not Found</title></head><body></body></html>";
        let result = upsert_against(transport, vec![respond(404, HTML, page)]).await;
        assert_error(result, "html_page", Permanent);
    }
}

#[tokio::test]
async fn an_html_404_page_on_a_fetch_is_an_error_not_an_absent_counterparty() {
    for transport in TRANSPORTS {
        let emulator = Emulator::start().await;
        let client = emulator.client(transport);
        let page = "<html><head><title>404 Not Found</title></head></html>";
        emulator.script(vec![respond(404, HTML, page)]);

        let result = client
            .fetch_customer(&uuid::Uuid::new_v4().to_string())
            .await;

        assert_error(result, "html_page", Permanent);
        emulator.stop().await;
    }
}

/// The answers that make one upsert end in a 200 whose body is `body`.
fn ok_answers(transport: Transport, status: u16, body: &str) -> Vec<ScriptedAnswer> {
    let mut answers = Vec::new();
    if transport == Transport::OData {
        answers.push(respond(200, "application/json", r#"{"value":[]}"#));
    }
    answers.push(respond(status, content_type(transport), body));
    answers
}

#[tokio::test]
async fn a_malformed_2xx_body_is_a_transient_malformed_response() {
    for transport in TRANSPORTS {
        let body = match transport {
            Transport::Json | Transport::OData => r#"{"onec_id": "1fa1a135-"#,
            Transport::CommerceMl => "<РезультатОбмена><Контрагент><Ид>x</Ид>",
        };
        let result = upsert_against(transport, ok_answers(transport, 200, body)).await;
        assert_error(result, "malformed_response", Transient);
    }
}

#[tokio::test]
async fn a_2xx_without_an_id_is_a_transient_malformed_response() {
    for transport in TRANSPORTS {
        let body = match transport {
            Transport::Json => r#"{"data_version":"AAAAAAAETag=","created":true}"#.to_owned(),
            Transport::OData => r#"{"DataVersion":"AAAAAAAETag=","Description":"x"}"#.to_owned(),
            Transport::CommerceMl => "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                <РезультатОбмена xmlns=\"urn:1C.ru:commerceml_2\"><Контрагент>\
                <НомерВерсии>AAAAAAAETag=</НомерВерсии><Создан>true</Создан>\
                </Контрагент></РезультатОбмена>"
                .to_owned(),
        };
        let status = if transport == Transport::OData {
            201
        } else {
            200
        };
        let result = upsert_against(transport, ok_answers(transport, status, &body)).await;
        assert_error(result, "malformed_response", Transient);
    }
}

#[tokio::test]
async fn a_2xx_in_the_wrong_content_type_is_a_malformed_response() {
    for transport in TRANSPORTS {
        let mut answers = ok_answers(transport, 200, "");
        answers.pop();
        answers.push(respond(200, "text/plain", "OK"));
        let result = upsert_against(transport, answers).await;
        assert_error(result, "malformed_response", Transient);
    }
}

#[tokio::test]
async fn a_response_above_the_size_limit_is_refused() {
    for transport in TRANSPORTS {
        // Given a client that accepts at most 1 KiB and 1C answering a 4 KiB lookup
        let emulator = Emulator::start().await;
        let client = emulator.client_with(transport, |c| c.max_response_bytes = 1024);
        let padding = "Ж".repeat(2048);
        let body = match transport {
            Transport::Json => format!(r#"{{"items":[],"padding":"{padding}"}}"#),
            Transport::OData => format!(r#"{{"value":[],"padding":"{padding}"}}"#),
            Transport::CommerceMl => format!(
                "<ОбменКонтрагентами xmlns=\"urn:1C.ru:commerceml_2\"><!-- {padding} -->\
                 </ОбменКонтрагентами>"
            ),
        };
        emulator.script(vec![respond(200, content_type(transport), &body)]);

        // When a customer is looked up
        let result = client.find_by_platform_id(&platform_id()).await;

        // Then the body is refused, not buffered
        match assert_error(result, "malformed_response", Transient) {
            OneCError::MalformedResponse { reason, .. } => {
                assert!(reason.contains("larger than 1024"), "{transport}: {reason}");
            }
            other => panic!("{transport}: {other:?}"),
        }
        emulator.stop().await;
    }
}

#[tokio::test]
async fn a_commerceml_answer_with_a_doctype_is_refused_without_expanding_entities() {
    // Given 1C (or something in between) answering with entity declarations
    let emulator = Emulator::start().await;
    let client = emulator.client(Transport::CommerceMl);
    let billion_laughs = "<?xml version=\"1.0\"?>\
        <!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\
        <!ENTITY x SYSTEM \"file:///etc/passwd\">]>\
        <ОбменКонтрагентами xmlns=\"urn:1C.ru:commerceml_2\"><Контрагенты><Контрагент>\
        <Ид>&b;</Ид><Наименование>&x;</Наименование><Ссылка>&b;</Ссылка>\
        </Контрагент></Контрагенты></ОбменКонтрагентами>";
    emulator.script(vec![respond(200, "application/xml", billion_laughs)]);

    // When a customer is looked up
    let result = client.find_by_platform_id(&platform_id()).await;

    // Then the answer is refused as malformed
    assert_error(result, "malformed_response", Transient);
    emulator.stop().await;
}

#[tokio::test]
async fn a_refused_connection_is_a_transient_connect_error() {
    for transport in TRANSPORTS {
        // Given an emulator that has been stopped, so its port refuses connections
        let emulator = Emulator::start().await;
        let client = emulator.client(transport);
        emulator.stop().await;

        // When a customer is exported
        let result = client.upsert_customer(&individual(&platform_id())).await;

        // Then the failure is a transient connect error
        assert_error(result, "connect", Transient);
    }
}
