//! Fuzzing entries of the JSON transport (feature `fuzzing`): every answer parser on one body,
//! and the request/answer round trip of the customer object.

use super::{batch_item, BatchAnswer, Items, UpsertAnswer, DIALECT};
use super::{parse_error_body, parse_json, required, scalar_to_string, Changes, CustomerDto};
use crate::onec::http::{classify, Response};
use crate::onec::Counterparty;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;

/// Classifies the answer like the HTTP layer, then reads a usable one as every operation would.
pub(crate) fn answer(status: StatusCode, headers: HeaderMap, body: Vec<u8>) {
    let _ = parse_error_body(&body);
    if let Err(error) = classify(status, &headers, &body, &DIALECT) {
        let _ = error.to_string();
        return;
    }
    let response = Response {
        status,
        headers,
        body,
    };
    if let Ok(answer) = parse_json::<UpsertAnswer>(&response) {
        let _ = required(answer.onec_id, status, "onec_id");
        let _ = required(answer.data_version, status, "data_version");
    }
    if let Ok(dto) = parse_json::<CustomerDto>(&response) {
        let _ = dto.into_counterparty();
    }
    if let Ok(items) = parse_json::<Items>(&response) {
        let _: Vec<Counterparty> = items
            .items
            .into_iter()
            .map(CustomerDto::into_counterparty)
            .collect();
    }
    if let Ok(batch) = parse_json::<BatchAnswer>(&response) {
        for item in batch.results {
            let platform_id = item.platform_id.clone().unwrap_or_default();
            let _ = batch_item(item, &platform_id, status).map_err(|e| e.to_string());
        }
    }
    if let Ok(changes) = parse_json::<Changes>(&response) {
        let _ = changes.last_seq.and_then(scalar_to_string);
        let _: Vec<Counterparty> = changes
            .items
            .into_iter()
            .map(CustomerDto::into_counterparty)
            .collect();
    }
}

/// The customer object as sent, read back as 1C would echo it. Panics when a field changes.
pub(crate) fn round_trip(cp: &Counterparty) {
    let sent = match serde_json::to_vec(&CustomerDto::from_counterparty(cp)) {
        Ok(bytes) => bytes,
        Err(e) => panic!("a counterparty must always serialise: {e}"),
    };
    let dto: CustomerDto = match serde_json::from_slice(&sent) {
        Ok(dto) => dto,
        Err(e) => panic!("our own request must parse as a customer object: {e}"),
    };
    let mut expected = cp.clone();
    // 1C assigns these; the request never carries them.
    expected.onec_id = None;
    expected.data_version = None;
    assert_eq!(dto.into_counterparty(), expected, "JSON round trip");
}
