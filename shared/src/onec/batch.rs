//! OData v3 `$batch` bodies (`multipart/mixed` of `application/http` messages), as far as the
//! OData transport uses them: queries, and change sets of one or more writes.
//!
//! Written here rather than with a multipart crate: the subset is small, and the Lambda
//! bootstraps stay free of a second body-streaming stack.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};

/// A part's headers, in order.
type Headers = Vec<(String, String)>;

/// One request inside a batch; `url` is absolute (OData allows absolute or relative URLs).
#[derive(Debug, Clone)]
pub(crate) struct PartRequest {
    pub method: Method,
    pub url: String,
    pub json_body: Option<Vec<u8>>,
}

/// A top-level part: a query runs alone; a change set is atomic and fails as a whole.
#[derive(Debug, Clone)]
pub(crate) enum BatchPart {
    Query(PartRequest),
    ChangeSet(Vec<PartRequest>),
}

/// One response inside a batch answer.
#[derive(Debug, Clone)]
pub(crate) struct PartResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The `Content-Type` (with boundary) and body of a batch request.
pub(crate) fn encode(parts: &[BatchPart]) -> (String, Vec<u8>) {
    let boundary = format!("batch_{}", uuid::Uuid::new_v4().simple());
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match part {
            BatchPart::Query(request) => write_http_part(&mut out, request, None),
            BatchPart::ChangeSet(requests) => {
                let changeset = format!("changeset_{}", uuid::Uuid::new_v4().simple());
                out.extend_from_slice(
                    format!("Content-Type: multipart/mixed; boundary={changeset}\r\n\r\n")
                        .as_bytes(),
                );
                for (i, request) in requests.iter().enumerate() {
                    out.extend_from_slice(format!("--{changeset}\r\n").as_bytes());
                    write_http_part(&mut out, request, Some(i + 1));
                }
                out.extend_from_slice(format!("--{changeset}--\r\n").as_bytes());
            }
        }
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/mixed; boundary={boundary}"), out)
}

fn write_http_part(out: &mut Vec<u8>, request: &PartRequest, content_id: Option<usize>) {
    out.extend_from_slice(
        b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
    );
    if let Some(id) = content_id {
        out.extend_from_slice(format!("Content-ID: {id}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(format!("{} {} HTTP/1.1\r\n", request.method, request.url).as_bytes());
    out.extend_from_slice(b"Accept: application/json\r\n");
    if let Some(body) = &request.json_body {
        out.extend_from_slice(b"Content-Type: application/json;charset=utf-8\r\n");
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The answer to a batch: per top-level part, its responses (one for a query; one per request
/// for a change set that succeeded; a single error response for a change set that failed).
pub(crate) fn decode(content_type: &str, body: &[u8]) -> Result<Vec<Vec<PartResponse>>, String> {
    let outer = boundary(content_type).ok_or("the batch answer has no boundary")?;
    split(body, &outer)?
        .into_iter()
        .map(|(headers, content)| {
            let content_type = content_type_of(&headers);
            // Media types compare case-insensitively; the boundary is case-sensitive (RFC 2046).
            let kind = content_type.to_ascii_lowercase();
            if kind.starts_with("multipart/mixed") {
                let inner = boundary(&content_type).ok_or("a change set answer has no boundary")?;
                split(content, &inner)?
                    .into_iter()
                    .map(|(_, message)| http_response(message))
                    .collect()
            } else if kind.starts_with("application/http") {
                Ok(vec![http_response(content)?])
            } else {
                Err(format!("unexpected part type {kind:?}"))
            }
        })
        .collect()
}

/// The `boundary` parameter of a multipart content type (quotes removed).
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

fn content_type_of(headers: &Headers) -> String {
    headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.clone())
        .unwrap_or_default()
}

/// The parts between `--boundary` delimiter lines: each part's headers and content.
fn split<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<(Headers, &'a [u8])>, String> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    // Delimiters start a line; the line break before one belongs to the delimiter.
    let mut starts = Vec::new();
    let mut at = 0;
    while let Some(found) = find(&body[at..], delimiter) {
        let pos = at + found;
        if pos == 0 || body[pos - 1] == b'\n' {
            starts.push(pos);
        }
        at = pos + delimiter.len();
    }
    let mut parts = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let after = start + delimiter.len();
        if body[after..].starts_with(b"--") {
            return Ok(parts);
        }
        let Some(&next) = starts.get(i + 1) else {
            break;
        };
        let line_end = find(&body[after..next], b"\n").map_or(next, |p| after + p + 1);
        let mut end = next;
        if end > line_end && body[end - 1] == b'\n' {
            end -= 1;
            if end > line_end && body[end - 1] == b'\r' {
                end -= 1;
            }
        }
        let (headers, content) = headers_and_rest(&body[line_end..end])?;
        parts.push((headers, content));
    }
    Err("the batch answer has no closing delimiter".into())
}

/// `Name: value` lines up to the first empty line, and what follows it.
fn headers_and_rest(part: &[u8]) -> Result<(Headers, &[u8]), String> {
    let mut headers = Vec::new();
    let mut rest = part;
    loop {
        let line_end = find(rest, b"\n").ok_or("a part's headers do not end")?;
        let line = &rest[..line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        rest = &rest[line_end + 1..];
        if line.is_empty() {
            return Ok((headers, rest));
        }
        let line = std::str::from_utf8(line).map_err(|_| "a header is not UTF-8")?;
        let (name, value) = line.split_once(':').ok_or("a header line has no colon")?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
}

/// `HTTP/1.1 <status> <reason>`, headers, body.
fn http_response(message: &[u8]) -> Result<PartResponse, String> {
    let line_end = find(message, b"\n").ok_or("a response has no status line")?;
    let status_line = std::str::from_utf8(&message[..line_end])
        .map_err(|_| "a status line is not UTF-8")?
        .trim();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| "a response has no valid status".to_owned())?;
    let (raw_headers, body) = headers_and_rest(&message[line_end + 1..])?;
    let mut headers = HeaderMap::new();
    for (name, value) in &raw_headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    let length = raw_headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse::<usize>().ok());
    let body = match length {
        Some(len) if len <= body.len() => &body[..len],
        _ => body,
    };
    Ok(PartResponse {
        status,
        headers,
        body: body.to_vec(),
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_body_carries_queries_and_change_sets_in_order() {
        // Given a query and a change set with one write
        let parts = vec![
            BatchPart::Query(PartRequest {
                method: Method::GET,
                url: "http://h/b/odata/standard.odata/Catalog_X?$format=json".into(),
                json_body: None,
            }),
            BatchPart::ChangeSet(vec![PartRequest {
                method: Method::POST,
                url: "http://h/b/odata/standard.odata/Catalog_X?$format=json".into(),
                json_body: Some(br#"{"Description":"x"}"#.to_vec()),
            }]),
        ];

        // When they are encoded
        let (content_type, body) = encode(&parts);
        let text = String::from_utf8(body).unwrap();

        // Then the outer boundary frames both, the change set has its own
        let outer = boundary(&content_type).unwrap();
        assert!(text.starts_with(&format!("--{outer}\r\n")));
        assert!(text.ends_with(&format!("--{outer}--\r\n")));
        let get = text.find("GET http://h/b/odata").unwrap();
        let post = text.find("POST http://h/b/odata").unwrap();
        assert!(get < post);
        assert!(text.contains("Content-Type: multipart/mixed; boundary=changeset_"));
        assert!(text.contains("Content-Length: 19\r\n\r\n{\"Description\":\"x\"}"));
    }

    #[test]
    fn an_answer_yields_one_entry_per_part_with_change_set_errors_in_place() {
        // Given a batch answer: a query result, a successful change set, a failed change set
        let body = "--b1\r\n\
            Content-Type: application/http\r\n\r\n\
            HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"value\":[]}\r\n\
            --b1\r\n\
            Content-Type: multipart/mixed; boundary=\"c1\"\r\n\r\n\
            --c1\r\nContent-Type: application/http\r\n\r\n\
            HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}\r\n\
            --c1--\r\n\
            --b1\r\n\
            Content-Type: application/http\r\n\r\n\
            HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\r\n\
            {\"odata.error\":{\"code\":\"-1\"}}\r\n\
            --b1--\r\n";

        // When it is decoded
        let parts = decode("multipart/mixed; boundary=b1", body.as_bytes()).unwrap();

        // Then every part keeps its status and body
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0][0].status, StatusCode::OK);
        assert_eq!(parts[0][0].body, b"{\"value\":[]}");
        assert_eq!(parts[1][0].status, StatusCode::CREATED);
        assert_eq!(parts[1][0].body, b"{}");
        assert_eq!(parts[2][0].status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(parts[2][0].body.starts_with(b"{\"odata.error\""));
    }

    #[test]
    fn a_change_set_boundary_keeps_its_case_while_the_media_type_is_read_in_any_case() {
        // Given a change set answer whose boundary has capitals (boundaries are case-sensitive)
        let body = "--Batch_A\r\n\
            Content-Type: Multipart/Mixed; boundary=changesetresponse_9A0E\r\n\r\n\
            --changesetresponse_9A0E\r\nContent-Type: application/http\r\n\r\n\
            HTTP/1.1 204 No Content\r\n\r\n\r\n\
            --changesetresponse_9A0E--\r\n\
            --Batch_A--\r\n";

        // When it is decoded
        let parts = decode("multipart/mixed; boundary=Batch_A", body.as_bytes()).unwrap();

        // Then the change set's response is found
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0][0].status, StatusCode::NO_CONTENT);
    }

    #[test]
    fn a_truncated_answer_is_refused() {
        let body = "--b1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{}";
        assert!(decode("multipart/mixed; boundary=b1", body.as_bytes()).is_err());
        assert!(decode("multipart/mixed", b"").is_err());
    }
}
