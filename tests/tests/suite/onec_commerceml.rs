//! The CommerceML 2.10 transport against the 1C emulator over real HTTP.

use integration_tests::emulator;
use shared::onec::{commerceml_exchange_message, Counterparty, OneCError, Transport};

const TRANSPORT: Transport = Transport::CommerceMl;

integration_tests::every_transport_scenario!(TRANSPORT);

/// The official CommerceML 2.10 XSD and the customers-only wrapper, copied into the repo so a
/// clean clone validates without the reference folder.
fn schema_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/commerceml/customers-exchange.xsd")
}

/// `xmllint --noout --schema customers-exchange.xsd <message>`; `None` when xmllint is absent.
fn xmllint_validate(message: &[u8], name: &str) -> Option<Result<(), String>> {
    let dir = std::env::temp_dir().join(format!("onec-cml-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a temp dir can be created");
    let file = dir.join(format!("{name}.xml"));
    std::fs::write(&file, message).expect("the message can be written");
    let output = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema_path())
        .arg(&file)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(format!("xmllint could not run: {e}"))),
        Ok(out) if out.status.success() => Some(Ok(())),
        Ok(out) => Some(Err(String::from_utf8_lossy(&out.stderr).into_owned())),
    }
}

#[test]
fn the_message_the_client_builds_validates_against_the_commerceml_schema() {
    // Given the messages for a legal entity (with a contact person) and an individual
    let id = emulator::platform_id();
    let when = chrono_like_now();
    let cases = [
        ("legal_entity", emulator::legal_entity(&id)),
        ("individual", emulator::individual(&id)),
        ("special_characters", special_characters(&id)),
    ];
    for (name, cp) in cases {
        let message = commerceml_exchange_message(std::slice::from_ref(&cp), when)
            .expect("the message builds");

        // When xmllint validates it against customers-exchange.xsd
        let Some(verdict) = xmllint_validate(&message, name) else {
            println!(
                "SKIPPED: xmllint is not installed (Debian: apt-get install libxml2-utils); \
                 CommerceML schema validation did not run"
            );
            return;
        };

        // Then it is valid
        if let Err(errors) = verdict {
            panic!(
                "{name} does not validate:\n{errors}\n{}",
                String::from_utf8_lossy(&message)
            );
        }
    }
}

#[tokio::test]
async fn a_name_with_xml_special_characters_and_cyrillic_survives_a_round_trip() {
    // Given a legal entity whose names hold & < > " ' and Cyrillic
    let emulator = emulator::Emulator::start().await;
    let client = emulator.client(TRANSPORT);
    let cp = special_characters(&emulator::platform_id());

    // When it is exported and read back
    let out = client.upsert_customer(&cp).await.expect("upsert succeeds");
    let read = client
        .fetch_customer(&out.onec_id)
        .await
        .expect("fetch succeeds")
        .expect("the counterparty exists");

    // Then 1C stored the text exactly, and the client read it back exactly
    let stored = emulator
        .handle
        .counterparty(&out.onec_id)
        .expect("the emulator holds it");
    assert_eq!(stored.fields.name, cp.name);
    assert_eq!(stored.fields.full_name, cp.full_name);
    assert_eq!(read.name, cp.name);
    assert_eq!(read.full_name, cp.full_name);
    assert_eq!(read.contact_person, cp.contact_person);
    emulator.stop().await;
}

#[tokio::test]
async fn a_platform_id_longer_than_40_characters_is_refused_before_sending() {
    let emulator = emulator::Emulator::start().await;
    let client = emulator.client(TRANSPORT);
    let cp = emulator::individual(&"x".repeat(41));

    let result = client.upsert_customer(&cp).await;

    assert!(
        matches!(result, Err(OneCError::InvalidRequest(_))),
        "{result:?}"
    );
    assert_eq!(emulator.handle.stats().requests_total(), 0);
    emulator.stop().await;
}

fn special_characters(platform_id: &str) -> Counterparty {
    let mut cp = emulator::legal_entity(platform_id);
    cp.name = "Рога & Копыта <Север> \"Ёж\" 'Юг'".into();
    cp.full_name = "ООО \"Рога & Копыта\" <Север>".into();
    cp.contact_person = Some("O'Брайен & сыновья".into());
    cp
}

fn chrono_like_now() -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 28)
        .and_then(|d| d.and_hms_opt(15, 4, 5))
        .expect("a valid date")
}
