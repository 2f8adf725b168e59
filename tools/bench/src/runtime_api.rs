//! A Lambda Runtime API on 127.0.0.1 (the 2018-06-01 interface a `provided.al2023` bootstrap
//! talks to), recording when the function asks for work and when it answers — exact timings
//! without Docker or `cargo lambda watch`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, Mutex};

/// What the function did, with the time it reached the API.
#[derive(Debug)]
pub enum Observed {
    /// `GET …/invocation/next`.
    Next(Instant),
    /// `POST …/invocation/{id}/response` (`ok`) or `…/error`.
    Answer {
        id: String,
        at: Instant,
        ok: bool,
        body: String,
    },
    InitError {
        body: String,
    },
}

struct Api {
    /// Request id, payload, deadline (epoch ms).
    events: Mutex<VecDeque<(String, String, i64)>>,
    more: tokio::sync::Notify,
    observed: mpsc::UnboundedSender<Observed>,
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    api: Arc<Api>,
    pub observed: mpsc::UnboundedReceiver<Observed>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RuntimeApi {
    pub async fn start() -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let api = Arc::new(Api {
            events: Mutex::new(VecDeque::new()),
            more: tokio::sync::Notify::new(),
            observed: tx,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            api,
            observed: rx,
            shutdown: Some(stop),
        })
    }

    /// Queues an invocation with a 60 s deadline; the function gets it on its next `next`.
    pub async fn invoke(&self, id: &str, payload: String) {
        self.invoke_with_timeout(id, payload, std::time::Duration::from_secs(60))
            .await;
    }

    /// Queues an invocation whose deadline is `timeout` after now (the function's Timeout).
    pub async fn invoke_with_timeout(
        &self,
        id: &str,
        payload: String,
        timeout: std::time::Duration,
    ) {
        let deadline = chrono::Utc::now().timestamp_millis()
            + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX / 2);
        self.api
            .events
            .lock()
            .await
            .push_back((id.to_owned(), payload, deadline));
        self.api.more.notify_one();
    }

    /// The next observation, or an error after `limit`.
    pub async fn observe(&mut self, limit: std::time::Duration) -> anyhow::Result<Observed> {
        match tokio::time::timeout(limit, self.observed.recv()).await {
            Ok(Some(observed)) => Ok(observed),
            Ok(None) => anyhow::bail!("the runtime API stopped"),
            Err(_) => anyhow::bail!("the function did not reach the runtime API within {limit:?}"),
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

async fn next(State(api): State<Arc<Api>>) -> Response {
    let _ = api.observed.send(Observed::Next(Instant::now()));
    loop {
        if let Some((id, payload, deadline)) = api.events.lock().await.pop_front() {
            let mut headers = HeaderMap::new();
            let pairs = [
                ("lambda-runtime-aws-request-id", id),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:bench".to_owned(),
                ),
                (
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0"
                        .to_owned(),
                ),
            ];
            for (name, value) in pairs {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
            return (StatusCode::OK, headers, payload).into_response();
        }
        api.more.notified().await;
    }
}

async fn response(State(api): State<Arc<Api>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&api, id, true, body)
}

async fn error(State(api): State<Arc<Api>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&api, id, false, body)
}

fn answer(api: &Api, id: String, ok: bool, body: Bytes) -> StatusCode {
    let _ = api.observed.send(Observed::Answer {
        id,
        at: Instant::now(),
        ok,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<Arc<Api>>, body: Bytes) -> StatusCode {
    let _ = api.observed.send(Observed::InitError {
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    StatusCode::ACCEPTED
}
