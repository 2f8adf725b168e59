//! `POST /odata/standard.odata/$batch`: OData v3 batches (`multipart/mixed`).
//!
//! Each top-level part is a query (`application/http`) or a change set (`multipart/mixed`
//! holding writes). Parts run in order through the same handlers as single requests, so one
//! part's failure never touches another; faults, latency and auth apply once, to the batch
//! request itself. A change set fails as a whole: its answer is then the single error
//! response. The emulator runs change sets of exactly one request (all the client sends);
//! a longer one is answered `501` with code `0` ("not supported").

use crate::odata;
use crate::server::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// The most top-level parts one batch may hold.
pub(crate) const MAX_PARTS: usize = 1000;

type Headers = Vec<(String, String)>;

struct PartRequest {
    method: Method,
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

pub(crate) async fn batch(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(boundary) = content_type
        .to_ascii_lowercase()
        .starts_with("multipart/mixed")
        .then(|| boundary(content_type))
        .flatten()
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "2",
            "Неверный формат запроса: ожидается multipart/mixed с boundary",
        );
    };
    let parts = match split(&body, &boundary) {
        Ok(parts) if parts.len() <= MAX_PARTS => parts,
        Ok(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "2",
                &format!("Не более {MAX_PARTS} частей в пакете"),
            )
        }
        Err(reason) => {
            return error(
                StatusCode::BAD_REQUEST,
                "2",
                &format!("Неверный формат пакета: {reason}"),
            )
        }
    };
    let outer = format!("batchresponse_{}", uuid::Uuid::new_v4().simple());
    let mut out = Vec::new();
    for (part_headers, content) in parts {
        out.extend_from_slice(format!("--{outer}\r\n").as_bytes());
        let kind = content_type_of(&part_headers);
        if kind.starts_with("multipart/mixed") {
            out.extend_from_slice(&changeset(&app, &kind, content).await);
        } else if kind.starts_with("application/http") {
            let response = match parse_request(content) {
                Ok(request) if request.method == Method::GET => dispatch(&app, request).await,
                Ok(_) => error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "19",
                    "Изменения данных в пакете передаются только в наборах изменений",
                ),
                Err(reason) => error(StatusCode::BAD_REQUEST, "2", &reason),
            };
            write_http_part(&mut out, response).await;
        } else {
            let response = error(
                StatusCode::BAD_REQUEST,
                "2",
                &format!("Неизвестный тип части пакета: {kind}"),
            );
            write_http_part(&mut out, response).await;
        }
    }
    out.extend_from_slice(format!("--{outer}--\r\n").as_bytes());
    (
        StatusCode::ACCEPTED,
        [
            (
                header::CONTENT_TYPE,
                format!("multipart/mixed; boundary={outer}"),
            ),
            (
                HeaderName::from_static("dataserviceversion"),
                "3.0".to_string(),
            ),
        ],
        Body::from(out),
    )
        .into_response()
}

/// A change set's answer part (headers and content, after the outer delimiter line).
async fn changeset(app: &Arc<AppState>, kind: &str, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let requests = boundary(kind)
        .ok_or_else(|| "набор изменений без boundary".to_string())
        .and_then(|inner| split(content, &inner))
        .and_then(|parts| {
            parts
                .into_iter()
                .map(|(_, message)| parse_request(message))
                .collect::<Result<Vec<_>, _>>()
        });
    let single = match requests {
        Err(reason) => Err(error(StatusCode::BAD_REQUEST, "2", &reason)),
        Ok(mut requests) if requests.len() == 1 => {
            let request = requests.remove(0);
            if request.method == Method::GET {
                Err(error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "19",
                    "Чтение данных в наборе изменений запрещено",
                ))
            } else {
                Ok(dispatch(app, request).await)
            }
        }
        Ok(_) => Err(error(
            StatusCode::NOT_IMPLEMENTED,
            "0",
            "Эмулятор выполняет наборы изменений из одного запроса",
        )),
    };
    match single {
        Ok(response) if response.status().is_success() => {
            let inner = format!("changesetresponse_{}", uuid::Uuid::new_v4().simple());
            out.extend_from_slice(
                format!("Content-Type: multipart/mixed; boundary={inner}\r\n\r\n").as_bytes(),
            );
            out.extend_from_slice(format!("--{inner}\r\n").as_bytes());
            write_http_part(&mut out, response).await;
            out.extend_from_slice(format!("--{inner}--\r\n").as_bytes());
        }
        // A failed change set answers with its error alone.
        Ok(response) | Err(response) => write_http_part(&mut out, response).await,
    }
    out
}

/// Runs one part through the handler a single request would reach.
async fn dispatch(app: &Arc<AppState>, request: PartRequest) -> Response {
    let Some((resource, query)) = resource_of(app, &request.target) else {
        return error(StatusCode::NOT_FOUND, "6", "Неправильный URL части пакета");
    };
    let state = State(app.clone());
    let (path, query) = (Path(resource), RawQuery(query));
    match request.method {
        Method::GET => odata::get(state, path, query, request.headers).await,
        Method::POST => odata::post(state, path, query, request.headers, request.body).await,
        Method::PATCH => odata::patch(state, path, query, request.headers, request.body).await,
        Method::DELETE => odata::delete(state, path).await,
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "19",
            "Метод HTTP запрещен в данном контексте",
        ),
    }
}

/// The resource (decoded) and raw query of an absolute URL or one relative to the service root.
fn resource_of(app: &AppState, target: &str) -> Option<(String, Option<String>)> {
    let root = format!("{}/odata/standard.odata/", app.base_url);
    let base = url::Url::parse(&root).ok()?;
    let url = base.join(target).ok()?;
    let root_path = base.path();
    let rest = url.path().strip_prefix(root_path)?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    let resource = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .ok()?
        .into_owned();
    Some((resource, url.query().map(str::to_owned)))
}

/// `METHOD target HTTP/1.1`, headers, body (by `Content-Length` when given).
fn parse_request(message: &[u8]) -> Result<PartRequest, String> {
    let (line, rest) = next_line(message).ok_or("часть пакета без строки запроса")?;
    let line = std::str::from_utf8(line).map_err(|_| "строка запроса не в UTF-8")?;
    let mut words = line.split_whitespace();
    let method = words
        .next()
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or("нет метода в строке запроса")?;
    let target = words.next().ok_or("нет URL в строке запроса")?.to_owned();
    let (raw_headers, body) = headers_and_rest(rest)?;
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
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let body = match length {
        Some(len) if len <= body.len() => &body[..len],
        Some(_) => return Err("тело части короче Content-Length".into()),
        None => body,
    };
    Ok(PartRequest {
        method,
        target,
        headers,
        body: Bytes::copy_from_slice(body),
    })
}

async fn write_http_part(out: &mut Vec<u8>, response: Response) {
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    out.extend_from_slice(
        b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n",
    );
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            parts.status.as_u16(),
            parts.status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(b"\r\n");
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"odata.error": {"code": code, "message": {"lang": "ru", "value": message}}});
    (
        status,
        [(
            header::CONTENT_TYPE,
            "application/json;odata=minimalmetadata;charset=utf-8",
        )],
        body.to_string(),
    )
        .into_response()
}

fn boundary(content_type: &str) -> Option<String> {
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
        .map(|(_, value)| value.to_ascii_lowercase())
        .unwrap_or_default()
}

fn next_line(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = data.iter().position(|&b| b == b'\n')?;
    let line = &data[..end];
    Some((line.strip_suffix(b"\r").unwrap_or(line), &data[end + 1..]))
}

fn headers_and_rest(mut data: &[u8]) -> Result<(Headers, &[u8]), String> {
    let mut headers = Vec::new();
    loop {
        let (line, rest) = next_line(data).ok_or("заголовки части не завершены")?;
        data = rest;
        if line.is_empty() {
            return Ok((headers, data));
        }
        let line = std::str::from_utf8(line).map_err(|_| "заголовок не в UTF-8")?;
        let (name, value) = line
            .split_once(':')
            .ok_or("строка заголовка без двоеточия")?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
}

/// The parts between `--boundary` lines, up to the closing `--boundary--`.
fn split<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<(Headers, &'a [u8])>, String> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let starts: Vec<usize> = body
        .windows(delimiter.len())
        .enumerate()
        .filter(|(pos, window)| *window == delimiter && (*pos == 0 || body[pos - 1] == b'\n'))
        .map(|(pos, _)| pos)
        .collect();
    let mut parts = Vec::new();
    for (i, &start) in starts.iter().enumerate() {
        let after = start + delimiter.len();
        if body[after..].starts_with(b"--") {
            return Ok(parts);
        }
        let next = *starts.get(i + 1).ok_or("нет закрывающего разделителя")?;
        let (_, content) = next_line(&body[after..next]).ok_or("пустая часть")?;
        let mut content = content;
        content = content.strip_suffix(b"\n").unwrap_or(content);
        content = content.strip_suffix(b"\r").unwrap_or(content);
        parts.push(headers_and_rest(content)?);
    }
    Err("нет закрывающего разделителя".into())
}
