use crate::error::{Classify, ErrorClass};
use std::sync::Arc;
use std::time::Duration;

/// Every way a call to 1C can end badly, classified for retry decisions.
///
/// Messages never contain credentials or customer data: bodies are reduced to 1C's error code
/// and message (1C's own text about the request) or an HTML page title.
#[derive(Debug, thiserror::Error)]
pub enum OneCError {
    /// No TCP/TLS connection could be made.
    #[error("cannot connect to 1C")]
    Connect(#[source] reqwest::Error),

    /// Connected, but no complete answer in time. The request may have been committed.
    #[error("1C did not answer in time")]
    Timeout(#[source] reqwest::Error),

    /// 429; `retry_after` from the Retry-After header.
    #[error("1C is throttling requests (HTTP 429)")]
    RateLimited { retry_after: Option<Duration> },

    /// 502/503/504 or a 500 without a 1C business error code.
    #[error("1C is unavailable (HTTP {status}){}", detail_suffix(.detail))]
    Unavailable {
        status: u16,
        retry_after: Option<Duration>,
        detail: Option<String>,
    },

    /// 401/403: wrong credentials or missing rights. Needs an operator.
    #[error("1C refused access (HTTP {status}){}", detail_suffix(.detail))]
    Unauthorized { status: u16, detail: Option<String> },

    /// 1C rejected the request: 400/404/409/422, or a business error (OData code `-1`).
    #[error("1C rejected the request (HTTP {status}{}): {message}", code_suffix(.code))]
    Rejected {
        status: u16,
        code: Option<String>,
        message: String,
    },

    /// An HTML page where JSON/XML was expected (web server error page, login page…).
    #[error("1C answered with an HTML page (HTTP {status}): {title}")]
    HtmlPage { status: u16, title: String },

    /// The body could not be read as the protocol says.
    #[error("malformed 1C response (HTTP {status}): {reason}")]
    MalformedResponse {
        status: u16,
        reason: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// The request could not be sent for a reason on our side (bad URL, body too large…).
    #[error("invalid request to 1C: {0}")]
    InvalidRequest(String),

    /// Any other transport failure.
    #[error("HTTP error talking to 1C")]
    Http(#[source] reqwest::Error),

    /// A failure of a whole batch request, shared by every customer in it (the transport
    /// errors inside cannot be copied); kind, class and retry-after are the inner error's.
    #[error(transparent)]
    WholeBatch(Arc<OneCError>),
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_ref()
        .map(|c| format!(", code {c}"))
        .unwrap_or_default()
}

impl OneCError {
    /// How long 1C asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OneCError::RateLimited { retry_after } => *retry_after,
            OneCError::Unavailable { retry_after, .. } => *retry_after,
            OneCError::WholeBatch(inner) => inner.retry_after(),
            _ => None,
        }
    }

    /// This failure of a whole batch request as the result of each of its `items`: copies of
    /// it where the error is plain data, a shared reference where it holds a transport error.
    pub fn for_each_item(self, items: usize) -> Vec<OneCError> {
        let copy = |e: &OneCError| -> Option<OneCError> {
            Some(match e {
                OneCError::RateLimited { retry_after } => OneCError::RateLimited {
                    retry_after: *retry_after,
                },
                OneCError::Unavailable {
                    status,
                    retry_after,
                    detail,
                } => OneCError::Unavailable {
                    status: *status,
                    retry_after: *retry_after,
                    detail: detail.clone(),
                },
                OneCError::Unauthorized { status, detail } => OneCError::Unauthorized {
                    status: *status,
                    detail: detail.clone(),
                },
                OneCError::Rejected {
                    status,
                    code,
                    message,
                } => OneCError::Rejected {
                    status: *status,
                    code: code.clone(),
                    message: message.clone(),
                },
                OneCError::HtmlPage { status, title } => OneCError::HtmlPage {
                    status: *status,
                    title: title.clone(),
                },
                OneCError::InvalidRequest(m) => OneCError::InvalidRequest(m.clone()),
                OneCError::WholeBatch(inner) => OneCError::WholeBatch(inner.clone()),
                _ => return None,
            })
        };
        if items == 0 {
            return Vec::new();
        }
        match copy(&self) {
            Some(_) => {
                let mut all: Vec<OneCError> = (1..items).filter_map(|_| copy(&self)).collect();
                all.push(self);
                all
            }
            None => {
                let shared = Arc::new(self);
                (0..items)
                    .map(|_| OneCError::WholeBatch(shared.clone()))
                    .collect()
            }
        }
    }

    /// A short stable name for metrics and the sync log.
    pub fn kind(&self) -> &'static str {
        match self {
            OneCError::Connect(_) => "connect",
            OneCError::Timeout(_) => "timeout",
            OneCError::RateLimited { .. } => "rate_limited",
            OneCError::Unavailable { .. } => "unavailable",
            OneCError::Unauthorized { .. } => "unauthorized",
            OneCError::Rejected { .. } => "rejected",
            OneCError::HtmlPage { .. } => "html_page",
            OneCError::MalformedResponse { .. } => "malformed_response",
            OneCError::InvalidRequest(_) => "invalid_request",
            OneCError::Http(_) => "http",
            OneCError::WholeBatch(inner) => inner.kind(),
        }
    }
}

impl Classify for OneCError {
    fn class(&self) -> ErrorClass {
        match self {
            OneCError::Connect(_)
            | OneCError::Timeout(_)
            | OneCError::RateLimited { .. }
            | OneCError::Unavailable { .. }
            | OneCError::Http(_) => ErrorClass::Transient,
            // An HTML page from a gateway in front of 1C is an outage; from 1C itself on a 4xx
            // it is a wrong URL or publication, which retrying will not fix.
            OneCError::HtmlPage { status, .. } => {
                if *status >= 500 || *status == 429 {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Permanent
                }
            }
            // A 2xx we cannot read may still have been committed; the upsert is idempotent, so
            // trying again is safe and usually gets a well-formed answer.
            OneCError::MalformedResponse { status, .. } => {
                if *status < 400 || *status >= 500 {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Permanent
                }
            }
            OneCError::Unauthorized { .. }
            | OneCError::Rejected { .. }
            | OneCError::InvalidRequest(_) => ErrorClass::Permanent,
            OneCError::WholeBatch(inner) => inner.class(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_whole_batch_failure_becomes_each_items_error_with_its_kind_class_and_wait() {
        // Given a plain-data failure and a transport failure (a timeout) of a batch request
        let throttled = OneCError::RateLimited {
            retry_after: Some(Duration::from_secs(3)),
        };
        let client = crate::https::reqwest_builder()
            .timeout(Duration::from_millis(1))
            .build()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let timeout = OneCError::Timeout(client.get(url).send().await.unwrap_err());

        // When each is spread over three items
        let copies = throttled.for_each_item(3);
        let shared = timeout.for_each_item(3);

        // Then every item carries the same kind, class and Retry-After
        assert_eq!(copies.len(), 3);
        assert!(copies.iter().all(|e| e.kind() == "rate_limited"
            && e.class() == ErrorClass::Transient
            && e.retry_after() == Some(Duration::from_secs(3))));
        assert_eq!(shared.len(), 3);
        assert!(shared
            .iter()
            .all(|e| e.kind() == "timeout" && e.class() == ErrorClass::Transient));
        assert!(matches!(shared[0], OneCError::WholeBatch(_)));
        assert_eq!(shared[0].to_string(), "1C did not answer in time");
        assert!(OneCError::InvalidRequest("x".into())
            .for_each_item(0)
            .is_empty());
    }
}
