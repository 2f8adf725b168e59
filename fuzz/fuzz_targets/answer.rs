//! Shared by the three `*_answer` targets: the first two bytes pick the status and the content
//! type, the rest is the body.

use shared::onec::Transport;

const STATUSES: [u16; 16] = [
    200, 201, 204, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504, 302, 418,
];

const CONTENT_TYPES: [Option<&str>; 11] = [
    None,
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("application/xml; charset=utf-8"),
    Some("text/xml"),
    Some("text/html"),
    Some("text/plain"),
    Some("application/atom+xml"),
    Some("application/xhtml+xml"),
    Some("Wed, 21 Oct 2015 07:28:00 GMT"),
    Some("multipart/mixed; boundary=batch_1"),
];

pub fn run(transport: Transport, data: &[u8]) {
    let [status, content_type, body @ ..] = data else {
        return;
    };
    let status = STATUSES[usize::from(*status) % STATUSES.len()];
    let content_type = CONTENT_TYPES[usize::from(*content_type) % CONTENT_TYPES.len()];
    shared::onec::fuzzing::answer(transport, status, content_type, body);
}
