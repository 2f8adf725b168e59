//! Entry points for `fuzz/` (feature `fuzzing`, not part of the API): the answer parsers of
//! every transport and the request round trips, reachable without a server.

use super::config::Transport;
use super::http::{html_title, parse_retry_after, truncate, MAX_DETAIL_CHARS};
use super::{commerceml, json, odata, Counterparty};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;

/// One HTTP answer through the transport's classification and every parser of its operations.
/// Must never panic, whatever the input.
pub fn answer(transport: Transport, status: u16, content_type: Option<&str>, body: &[u8]) {
    let Ok(status) = StatusCode::from_u16(status) else {
        return;
    };
    let mut headers = HeaderMap::new();
    if let Some(value) = content_type.and_then(|ct| HeaderValue::from_str(ct).ok()) {
        headers.insert(CONTENT_TYPE, value.clone());
        headers.insert(RETRY_AFTER, value);
    }
    let text = String::from_utf8_lossy(body);
    let _ = html_title(body);
    let _ = truncate(&text, MAX_DETAIL_CHARS);
    let _ = parse_retry_after(&text, chrono::Utc::now());
    let body = body.to_vec();
    match transport {
        Transport::Json => json::fuzzing::answer(status, headers, body),
        Transport::OData => odata::fuzzing::answer(status, headers, body),
        Transport::CommerceMl => commerceml::fuzzing::answer(status, headers, body),
    }
}

/// What the mapper produced, sent through each transport's request format and read back with
/// the transport's own reader. Panics when a carried field changes.
pub fn round_trip(cp: &Counterparty) {
    json::fuzzing::round_trip(cp);
    odata::fuzzing::round_trip(cp);
    commerceml::fuzzing::round_trip(cp);
}
