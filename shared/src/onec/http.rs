//! What the three transports share: one HTTP client, Basic auth, bounded body reads and the
//! classification table of `docs/onec-contract.md`.

use super::config::{OneCConfig, Transport};
use super::OneCError;
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use std::time::{Duration, Instant};
use tracing::Instrument as _;
use url::Url;

/// 1C's own error text is kept in errors, but never more than this many characters.
pub(crate) const MAX_DETAIL_CHARS: usize = 300;
const MAX_TITLE_CHARS: usize = 120;
const MAX_REDIRECTS: usize = 5;
const MAX_CODE_CHARS: usize = 40;

/// 1C's error code and message, extracted from an error body by the transport's hook.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ErrorDetail {
    pub code: Option<String>,
    pub message: Option<String>,
}

impl ErrorDetail {
    /// Cut to length and with contact and tax data masked: 1C's text may echo the request
    /// back, and both parts end up in logs, the sync log and the row's error message.
    pub(crate) fn for_logs(self) -> Self {
        let clean = |text: String, max: usize| truncate(&crate::pii::scrub(&text), max);
        Self {
            code: self.code.map(|c| clean(c, MAX_CODE_CHARS)),
            message: self.message.map(|m| clean(m, MAX_DETAIL_CHARS)),
        }
    }
}

/// The body format a transport expects on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFormat {
    Json,
    Xml,
    /// An OData `$batch` answer.
    Multipart,
}

impl BodyFormat {
    fn accept(self) -> &'static str {
        match self {
            BodyFormat::Json => "application/json",
            BodyFormat::Xml => "application/xml, text/xml",
            BodyFormat::Multipart => "multipart/mixed",
        }
    }

    fn matches(self, essence: &str) -> bool {
        match self {
            BodyFormat::Json => essence == "application/json" || essence.ends_with("+json"),
            BodyFormat::Xml => {
                essence == "application/xml" || essence == "text/xml" || essence.ends_with("+xml")
            }
            BodyFormat::Multipart => essence == "multipart/mixed",
        }
    }
}

/// How one transport differs in what the shared HTTP layer has to know.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    pub transport: Transport,
    pub format: BodyFormat,
    /// The error code that marks a 500 as a business rejection (permanent).
    pub business_code: &'static str,
    /// Extracts 1C's code and message from an error body; `None` when it is not 1C's format.
    pub parse_error: fn(&[u8]) -> Option<ErrorDetail>,
}

/// A successful (2xx) answer whose body is within the size limit.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The HTTP side of one transport: client, base URL, auth header, limits.
#[derive(Debug)]
pub(crate) struct HttpCore {
    client: reqwest::Client,
    base_url: Url,
    authorization: HeaderValue,
    max_response_bytes: usize,
    max_request_bytes: usize,
    dialect: Dialect,
}

impl HttpCore {
    pub fn new(config: &OneCConfig, dialect: Dialect) -> Result<Self, OneCError> {
        config
            .validate()
            .map_err(|e| OneCError::InvalidRequest(e.to_string()))?;
        let client = crate::https::reqwest_builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("onec-sync/", env!("CARGO_PKG_VERSION")))
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| OneCError::InvalidRequest(format!("cannot build HTTP client: {e}")))?;
        Ok(Self {
            client,
            base_url: config.base_url.clone(),
            authorization: basic_auth(
                &config.credentials.username,
                config.credentials.password.expose(),
            )?,
            max_response_bytes: config.max_response_bytes,
            max_request_bytes: config.max_request_bytes,
            dialect,
        })
    }

    /// The publication URL with `segments` appended, each percent-encoded as one path segment
    /// (Cyrillic becomes `%D0%9A…`; a `/` inside a segment is encoded, not a separator).
    pub fn url<S: AsRef<str>>(&self, segments: &[S]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            for segment in segments {
                path.push(segment.as_ref());
            }
        }
        url
    }

    /// A request with auth and Accept set; the caller adds query and body.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.client
            .request(method, url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, self.dialect.format.accept())
    }

    /// A request with auth and Accept set for a batch answer (`multipart/mixed`).
    pub fn batch_request(&self, method: Method, url: Url) -> RequestBuilder {
        self.client
            .request(method, url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, BodyFormat::Multipart.accept())
    }

    /// Sends the request and returns the 2xx answer, or the classified failure.
    pub async fn send(
        &self,
        operation: &'static str,
        request: RequestBuilder,
    ) -> Result<Response, OneCError> {
        self.send_as(operation, request, self.dialect.format).await
    }

    /// [`HttpCore::send`] for an answer in `format` rather than the transport's own.
    pub async fn send_as(
        &self,
        operation: &'static str,
        request: RequestBuilder,
        format: BodyFormat,
    ) -> Result<Response, OneCError> {
        let span = tracing::info_span!(
            "onec_request",
            transport = self.dialect.transport.as_str(),
            operation,
            status = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self
            .send_inner(request, format)
            .instrument(span.clone())
            .await;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        span.record("elapsed_ms", elapsed_ms);
        let _entered = span.enter();
        match &result {
            Ok(response) => {
                span.record("status", response.status.as_u16());
                tracing::debug!("1C answered");
            }
            Err(error) => {
                if let Some(status) = error_status(error) {
                    span.record("status", status);
                }
                tracing::warn!(
                    error_kind = error.kind(),
                    error_class = %crate::error::Classify::class(error),
                    error = %error,
                    "1C call failed"
                );
            }
        }
        result
    }

    async fn send_inner(
        &self,
        request: RequestBuilder,
        format: BodyFormat,
    ) -> Result<Response, OneCError> {
        let (client, request) = request.build_split();
        let request = request.map_err(map_transport_error)?;
        let size = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .map_or(0, <[u8]>::len);
        if size > self.max_request_bytes {
            return Err(OneCError::InvalidRequest(format!(
                "request body of {size} bytes is larger than {} bytes",
                self.max_request_bytes
            )));
        }
        let mut response = client.execute(request).await.map_err(map_transport_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let limit = if status.is_success() {
            self.max_response_bytes
        } else {
            // An error body is only read for 1C's code and message.
            self.max_response_bytes.min(64 * 1024)
        };
        let (body, truncated) = read_limited(&mut response, limit).await?;
        if status.is_success() && truncated {
            return Err(OneCError::MalformedResponse {
                status: status.as_u16(),
                reason: format!("body larger than {} bytes", self.max_response_bytes),
                source: None,
            });
        }
        let dialect = Dialect {
            format,
            ..self.dialect
        };
        classify(status, &headers, &body, &dialect)?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// 1C's answer to a batch resource it does not have: a 404/405/501 that is not 1C's own
/// "counterparty not found" (OData: code 8 "entity type not found", 6 "invalid URL" or 0
/// "not supported"), so the caller falls back to one request per customer.
pub(crate) fn batch_unsupported(error: &OneCError) -> bool {
    match error {
        OneCError::Rejected {
            status: 404 | 405 | 501,
            code,
            ..
        } => matches!(code.as_deref(), None | Some("0" | "6" | "8" | "19")),
        OneCError::Unavailable { status: 501, .. } => true,
        OneCError::HtmlPage {
            status: 404 | 405, ..
        } => true,
        _ => false,
    }
}

fn error_status(error: &OneCError) -> Option<u16> {
    match error {
        OneCError::RateLimited { .. } => Some(429),
        OneCError::Unavailable { status, .. }
        | OneCError::Unauthorized { status, .. }
        | OneCError::Rejected { status, .. }
        | OneCError::HtmlPage { status, .. }
        | OneCError::MalformedResponse { status, .. } => Some(*status),
        _ => None,
    }
}

fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if same_origin {
            attempt.follow()
        } else {
            // The 3xx itself is returned and classified; credentials never leave the host.
            attempt.stop()
        }
    })
}

/// `Basic base64(user:password)` over the UTF-8 bytes, marked sensitive so hyper never logs it.
pub(crate) fn basic_auth(username: &str, password: &str) -> Result<HeaderValue, OneCError> {
    if username.contains(':') {
        return Err(OneCError::InvalidRequest(
            "1C user name must not contain ':' (HTTP Basic auth)".into(),
        ));
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}"))
        .map_err(|_| OneCError::InvalidRequest("invalid authorization header".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

fn map_transport_error(error: reqwest::Error) -> OneCError {
    // The URL may carry a platform id in its query; keep errors free of request data.
    let error = error.without_url();
    if error.is_connect() {
        OneCError::Connect(error)
    } else if error.is_timeout() {
        OneCError::Timeout(error)
    } else if error.is_builder() {
        OneCError::InvalidRequest("cannot build the request".into())
    } else {
        OneCError::Http(error)
    }
}

/// Reads at most `limit` bytes; `true` when the body was longer (the rest is not read).
async fn read_limited(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), OneCError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Ok((Vec::new(), true));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(map_transport_error)? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// The classification table: `Ok(())` for a usable 2xx, the error otherwise.
pub(crate) fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    dialect: &Dialect,
) -> Result<(), OneCError> {
    let code = status.as_u16();
    let content_type = mime_essence(headers);
    if is_html(content_type.as_deref(), body) {
        return Err(OneCError::HtmlPage {
            status: code,
            title: html_title(body),
        });
    }
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, chrono::Utc::now()));

    if status.is_success() {
        if let Some(ct) = content_type.as_deref() {
            if !body.is_empty() && !dialect.format.matches(ct) {
                return Err(OneCError::MalformedResponse {
                    status: code,
                    reason: format!("unexpected content type {}", truncate(ct, 80)),
                    source: None,
                });
            }
        }
        return Ok(());
    }

    let detail = (dialect.parse_error)(body).map(ErrorDetail::for_logs);
    let message_of = |detail: &Option<ErrorDetail>| {
        detail
            .as_ref()
            .and_then(|d| d.message.clone().or_else(|| d.code.clone()))
    };
    Err(match code {
        429 => OneCError::RateLimited { retry_after },
        401 | 403 => OneCError::Unauthorized {
            status: code,
            detail: message_of(&detail),
        },
        500 if detail
            .as_ref()
            .and_then(|d| d.code.as_deref())
            .is_some_and(|c| c == dialect.business_code) =>
        {
            let detail = detail.unwrap_or_default();
            OneCError::Rejected {
                status: code,
                message: detail
                    .message
                    .unwrap_or_else(|| "business rule rejection".into()),
                code: detail.code,
            }
        }
        500..=599 => OneCError::Unavailable {
            status: code,
            retry_after,
            detail: message_of(&detail),
        },
        300..=399 => OneCError::Rejected {
            status: code,
            code: None,
            message: "redirect to another host was not followed".into(),
        },
        _ => {
            let detail = detail.unwrap_or_default();
            OneCError::Rejected {
                status: code,
                message: detail.message.unwrap_or_else(|| {
                    status
                        .canonical_reason()
                        .unwrap_or("unexpected status")
                        .to_owned()
                }),
                code: detail.code,
            }
        }
    })
}

fn mime_essence(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    if content_type.is_some_and(|ct| ct == "text/html" || ct == "application/xhtml+xml") {
        return true;
    }
    let start = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = &start[start
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(start.len())..];
    let head = &start[..start.len().min(16)];
    let head = head.to_ascii_lowercase();
    head.starts_with(b"<!doctype html") || head.starts_with(b"<html")
}

/// The page's `<title>` (whitespace collapsed, truncated), for an operator to recognise it.
pub(crate) fn html_title(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
    // ASCII lower-casing keeps byte offsets valid for slicing the original text.
    let lower = text.to_ascii_lowercase();
    let title = lower.find("<title").and_then(|open| {
        let after_tag = open + lower[open..].find('>')? + 1;
        let close = after_tag + lower[after_tag..].find("</title")?;
        Some(&text[after_tag..close])
    });
    match title {
        Some(t) => {
            let collapsed = crate::pii::scrub(&t.split_whitespace().collect::<Vec<_>>().join(" "));
            if collapsed.is_empty() {
                "untitled page".into()
            } else {
                truncate(&collapsed, MAX_TITLE_CHARS)
            }
        }
        None => "untitled page".into(),
    }
}

/// `Retry-After` as delta-seconds or an HTTP-date (a date in the past means "now").
pub(crate) fn parse_retry_after(
    value: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = date.with_timezone(&chrono::Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// At most `max` characters, with an ellipsis when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A 2xx body that does not say what the protocol promises.
pub(crate) fn malformed(
    status: StatusCode,
    reason: impl Into<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
) -> OneCError {
    OneCError::MalformedResponse {
        status: status.as_u16(),
        reason: reason.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorClass};
    use chrono::TimeZone as _;

    fn json_error(body: &[u8]) -> Option<ErrorDetail> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let e = v.get("error")?;
        Some(ErrorDetail {
            code: e.get("code").and_then(|c| c.as_str()).map(str::to_owned),
            message: e.get("message").and_then(|c| c.as_str()).map(str::to_owned),
        })
    }

    const DIALECT: Dialect = Dialect {
        transport: Transport::Json,
        format: BodyFormat::Json,
        business_code: "business",
        parse_error: json_error,
    };

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn outcome(status: u16, pairs: &[(&'static str, &str)], body: &str) -> Result<(), OneCError> {
        classify(
            StatusCode::from_u16(status).unwrap(),
            &headers(pairs),
            body.as_bytes(),
            &DIALECT,
        )
    }

    const JSON: (&str, &str) = ("content-type", "application/json; charset=utf-8");

    #[test]
    fn the_classification_table_gives_each_answer_its_kind_and_class() {
        use ErrorClass::*;
        type Case<'a> = (
            u16,
            Vec<(&'static str, &'a str)>,
            &'a str,
            &'a str,
            ErrorClass,
        );
        let cases: Vec<Case> = vec![
            (503, vec![], "", "unavailable", Transient),
            (502, vec![], "", "unavailable", Transient),
            (504, vec![JSON], "{}", "unavailable", Transient),
            (
                429,
                vec![("retry-after", "2")],
                "",
                "rate_limited",
                Transient,
            ),
            (
                500,
                vec![JSON],
                r#"{"error":{"code":"internal","message":"x"}}"#,
                "unavailable",
                Transient,
            ),
            (
                500,
                vec![JSON],
                r#"{"error":{"code":"business","message":"ИНН занят"}}"#,
                "rejected",
                Permanent,
            ),
            (
                400,
                vec![JSON],
                r#"{"error":{"code":"validation","message":"m"}}"#,
                "rejected",
                Permanent,
            ),
            (404, vec![], "", "rejected", Permanent),
            (409, vec![JSON], "{}", "rejected", Permanent),
            (422, vec![JSON], "{}", "rejected", Permanent),
            (401, vec![], "", "unauthorized", Permanent),
            (403, vec![], "", "unauthorized", Permanent),
            (
                502,
                vec![("content-type", "text/html")],
                "<html><title>Bad Gateway</title></html>",
                "html_page",
                Transient,
            ),
            (
                404,
                vec![],
                "<!DOCTYPE html><html><head><title>Not Found</title>",
                "html_page",
                Permanent,
            ),
            (
                200,
                vec![("content-type", "text/plain")],
                "hello",
                "malformed_response",
                Transient,
            ),
            (
                302,
                vec![("location", "https://sso.example/")],
                "",
                "rejected",
                Permanent,
            ),
        ];
        for (status, hdrs, body, kind, class) in cases {
            let err = outcome(status, &hdrs, body).unwrap_err();
            assert_eq!(err.kind(), kind, "{status} {body}");
            assert_eq!(err.class(), class, "{status} {body}");
        }
    }

    #[test]
    fn a_2xx_in_the_expected_format_is_usable() {
        assert!(outcome(200, &[JSON], "{}").is_ok());
        assert!(outcome(201, &[("content-type", "application/json")], "{}").is_ok());
        assert!(outcome(204, &[], "").is_ok());
    }

    #[test]
    fn a_rejection_carries_1cs_code_and_message_not_the_raw_body() {
        let err = outcome(
            422,
            &[JSON],
            r#"{"error":{"code":"validation","message":"Неверный ИНН"},"echo":"ivanov@example.ru"}"#,
        )
        .unwrap_err();
        match &err {
            OneCError::Rejected {
                status,
                code,
                message,
            } => {
                assert_eq!(*status, 422);
                assert_eq!(code.as_deref(), Some("validation"));
                assert_eq!(message, "Неверный ИНН");
            }
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert!(!err.to_string().contains("example.ru"));
    }

    #[test]
    fn a_long_1c_message_is_truncated() {
        let long = "ы".repeat(1000);
        let body = format!(r#"{{"error":{{"code":"validation","message":"{long}"}}}}"#);
        let err = outcome(400, &[JSON], &body).unwrap_err();
        let OneCError::Rejected { message, .. } = err else {
            panic!("expected Rejected")
        };
        assert_eq!(message.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn rate_limiting_honours_retry_after_in_seconds() {
        let err = outcome(429, &[("retry-after", "2")], "").unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn unavailable_keeps_retry_after_when_present() {
        let err = outcome(503, &[("retry-after", "7")], "").unwrap_err();
        assert_eq!(err.kind(), "unavailable");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = chrono::Utc
            .with_ymd_and_hms(2015, 10, 21, 7, 28, 0)
            .unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn an_html_page_is_recognised_by_its_body_even_without_a_content_type() {
        let err = outcome(
            200,
            &[],
            "\n  <!doctype HTML><html><head><title>\n Вход в  систему </title></head></html>",
        )
        .unwrap_err();
        match err {
            OneCError::HtmlPage { status, title } => {
                assert_eq!(status, 200);
                assert_eq!(title, "Вход в систему");
            }
            other => panic!("expected HtmlPage, got {other:?}"),
        }
    }

    #[test]
    fn an_html_title_is_truncated_and_a_missing_one_is_named() {
        let long = format!("<html><title>{}</title>", "A".repeat(500));
        assert_eq!(
            html_title(long.as_bytes()).chars().count(),
            MAX_TITLE_CHARS + 1
        );
        assert_eq!(html_title(b"<html><body>x</body></html>"), "untitled page");
    }

    #[test]
    fn basic_auth_encodes_the_utf8_bytes_of_user_and_password() {
        let value = basic_auth("Администратор", "пароль").unwrap();
        let token = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "Администратор:пароль");
        assert!(value.is_sensitive());
        assert!(basic_auth("a:b", "c").is_err());
    }
}
