//! Fuzzing entries of the CommerceML transport (feature `fuzzing`): the XML reader and every
//! answer parser on one body, and the exchange message round trip.

use super::DIALECT;
use super::{
    counterparties, exchange_message, parse_document, parse_error_body, read_counterparty,
};
use crate::onec::http::{classify, Response};
use crate::onec::{xml, Counterparty};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;

/// Classifies the answer like the HTTP layer, then reads a usable one as every operation would.
pub(crate) fn answer(status: StatusCode, headers: HeaderMap, body: Vec<u8>) {
    let _ = parse_error_body(&body);
    if let Ok(root) = xml::parse(&body) {
        let _ = read_counterparty(&root);
        let _ = super::parse_comment(&root.text);
    }
    if let Err(error) = classify(status, &headers, &body, &DIALECT) {
        let _ = error.to_string();
        return;
    }
    let response = Response {
        status,
        headers,
        body,
    };
    if let Ok(root) = parse_document(&response) {
        let _ = counterparties(&root, status);
        for result in root.children_named("Контрагент") {
            let _ = read_counterparty(result);
        }
    }
}

/// The exchange message we send, read back by our own reader. Panics when a field changes.
pub(crate) fn round_trip(cp: &Counterparty) {
    let when = chrono::NaiveDate::from_ymd_opt(2026, 11, 28)
        .and_then(|d| d.and_hms_opt(10, 15, 30))
        .expect("a literal date");
    // Refusing a counterparty (too long for CommerceML, characters XML cannot carry) is fine.
    let Ok(message) = exchange_message(std::slice::from_ref(cp), when) else {
        return;
    };
    let root = match xml::parse(&message) {
        Ok(root) => root,
        Err(e) => panic!("our own exchange message must parse: {e}"),
    };
    let sent: Vec<Counterparty> = root
        .children_named("Контрагенты")
        .flat_map(|list| list.children_named("Контрагент"))
        .map(read_counterparty)
        .collect();
    assert_eq!(sent.len(), 1, "one counterparty sent");
    let back = &sent[0];
    assert_eq!(back.platform_id, cp.platform_id, "Ид");
    assert_eq!(back.name, cp.name, "Наименование");
    assert_eq!(back.inn, cp.inn, "ИНН");
    assert_eq!(back.kpp, cp.kpp, "КПП");
    assert_eq!(back.email, cp.email, "e-mail");
    assert_eq!(back.phone, cp.phone, "phone");
    assert_eq!(back.role, cp.role, "role");
    assert_eq!(back.status, cp.status, "status");
}
