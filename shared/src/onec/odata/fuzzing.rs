//! Fuzzing entries of the OData transport (feature `fuzzing`): every answer parser on one body,
//! and the entity round trip.

use super::{
    entities, entity, guid_from_location, has_ref, oldest, parse_error_body, part_result,
    ref_and_version, Cursor, ODataClient, DIALECT,
};
use crate::onec::batch;
use crate::onec::config::{Credentials, OneCConfig, Transport};
use crate::onec::http::{classify, Response};
use crate::onec::Counterparty;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::StatusCode;
use std::sync::OnceLock;

fn client() -> &'static ODataClient {
    static CLIENT: OnceLock<ODataClient> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let config = OneCConfig::new(
            url::Url::parse("https://1c.invalid/trade").expect("a literal URL"),
            Transport::OData,
            Credentials::new("fuzz", "fuzz"),
            false,
        )
        .expect("a literal config");
        ODataClient::new(&config).expect("a client without network")
    })
}

/// Classifies the answer like the HTTP layer, then reads a usable one as every operation would.
pub(crate) fn answer(status: StatusCode, headers: HeaderMap, body: Vec<u8>) {
    let _ = parse_error_body(&body);
    let text = String::from_utf8_lossy(&body);
    let _ = guid_from_location(&text);
    let _ = Cursor::decode(&text);
    // A `$batch` answer: multipart parts, each an HTTP response classified like a single call.
    let multipart = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("multipart/mixed; boundary=batch_1")
        .to_owned();
    if let Ok(sets) = batch::decode(&multipart, &body) {
        for part in sets.into_iter().flatten() {
            if let Ok(part) = part_result(part) {
                let _ = entity(&part).map(|e| ref_and_version(&e, part.status));
                let _ = entities(&part);
            }
        }
    }
    if let Err(error) = classify(status, &headers, &body, &DIALECT) {
        let _ = error.to_string();
        return;
    }
    let client = client();
    let response = Response {
        status,
        headers,
        body,
    };
    if let Ok(one) = entity(&response) {
        let _ = ref_and_version(&one, status);
        if has_ref(&one) {
            let _ = client.read_entity(&one);
        }
        let _ = client.modified_at(&one);
    }
    if let Ok(found) = entities(&response) {
        for e in &found {
            let _ = client.read_entity(e);
            let _ = client.modified_at(e);
        }
        if let Some(first) = oldest(found) {
            let _ = ref_and_version(&first, StatusCode::OK);
        }
    }
}

/// The entity as sent, read back as 1C would return it. Panics when a carried field changes.
pub(crate) fn round_trip(cp: &Counterparty) {
    let client = client();
    let mut body = client.entity_body(cp);
    body.insert(
        "Ref_Key".into(),
        "9a1b6f0e-0000-4000-8000-000000000001".into(),
    );
    body.insert("DataVersion".into(), "AAAAAAAETag=".into());
    let back = client.read_entity(&body);
    let mut expected = cp.clone();
    expected.onec_id = Some("9a1b6f0e-0000-4000-8000-000000000001".into());
    expected.data_version = Some("AAAAAAAETag=".into());
    // OData keeps the name parts in no attribute of its own.
    expected.first_name = None;
    expected.last_name = None;
    assert_eq!(back, expected, "OData round trip");
}
