//! The HTTP server: routing, the fault gate, Basic auth, and the in-process handle.

use crate::config::EmulatorConfig;
use crate::faults::{AfterHandling, Decision, FaultPlan, FaultState, ScriptedAnswer, Stats};
use crate::store::{CounterpartyFields, CounterpartyPatch, CounterpartyRecord, Store, StoreError};
use crate::{admin, commerceml, hs_json, odata, odata_batch};
use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use chrono::NaiveDateTime;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Characters kept verbatim in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Which transport a request path belongs to, for stats and for error shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Json,
    OData,
    CommerceMl,
    Other,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::OData => "odata",
            Self::CommerceMl => "commerceml",
            Self::Other => "other",
        }
    }
}

pub(crate) struct AppState {
    pub config: EmulatorConfig,
    /// `http://127.0.0.1:PORT/base`.
    pub base_url: String,
    /// Raw (percent-encoded) path prefixes of the transports.
    hs_prefix: String,
    odata_prefix: String,
    store: Mutex<Store>,
    faults: Mutex<FaultState>,
    stats: Mutex<Stats>,
    shutdown: watch::Receiver<bool>,
}

/// A poisoned lock only means another request panicked mid-way; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl AppState {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn transport_of(&self, path: &str) -> Transport {
        if let Some(rest) = path.strip_prefix(self.hs_prefix.as_str()) {
            if rest.starts_with("/commerceml/") || rest == "/commerceml" {
                Transport::CommerceMl
            } else {
                Transport::Json
            }
        } else if path.starts_with(self.odata_prefix.as_str()) {
            Transport::OData
        } else {
            Transport::Other
        }
    }

    pub fn counterparties(&self) -> Vec<CounterpartyRecord> {
        self.store().all().into_iter().cloned().collect()
    }

    pub fn create_in_1c(
        &self,
        fields: CounterpartyFields,
    ) -> Result<CounterpartyRecord, StoreError> {
        let mut store = self.store();
        if let Some(pid) = &fields.platform_id {
            store.ensure_platform_id_free(pid, None)?;
        }
        store.create(fields)
    }

    pub fn edit_in_1c(
        &self,
        onec_id: &str,
        patch: CounterpartyPatch,
    ) -> Result<CounterpartyRecord, StoreError> {
        let mut store = self.store();
        let record = store
            .get(onec_id)
            .ok_or_else(|| StoreError::NotFound(onec_id.to_string()))?;
        if let Some(Some(pid)) = &patch.platform_id {
            let own_id = record.onec_id.clone();
            store.ensure_platform_id_free(pid, Some(&own_id))?;
        }
        store.update(onec_id, |fields| patch.apply(fields))
    }

    pub fn backdate(&self, onec_id: &str, modified_at: NaiveDateTime) -> Result<(), StoreError> {
        self.store().backdate(onec_id, modified_at)
    }

    pub fn faults(&self) -> FaultPlan {
        lock(&self.faults).plan().clone()
    }

    pub fn set_faults(&self, plan: FaultPlan) {
        lock(&self.faults).set_plan(plan);
    }

    pub fn script(&self, answers: Vec<ScriptedAnswer>) {
        lock(&self.faults).push_script(answers);
    }

    pub fn stats(&self) -> Stats {
        let mut stats = lock(&self.stats).clone();
        let counters = self.store().counters;
        stats.creates = counters.creates;
        stats.updates = counters.updates;
        stats.deletes = counters.deletes;
        stats
    }

    pub fn reset(&self) {
        self.store().clear();
        *lock(&self.stats) = Stats::default();
        let mut faults = lock(&self.faults);
        faults.set_plan(FaultPlan::default());
        faults.clear_script();
    }

    /// Sleeps, cut short when the server shuts down so a hang never blocks shutdown.
    async fn pause(&self, ms: u64) {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
}

/// A running emulator; dropping it (or [`EmulatorHandle::stop`]) shuts the server down.
pub struct EmulatorHandle {
    addr: SocketAddr,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl EmulatorHandle {
    /// The infobase publication URL, e.g. `http://127.0.0.1:PORT/base`.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// `http://127.0.0.1:PORT/admin`.
    pub fn admin_url(&self) -> String {
        format!("http://{}/admin", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.state.config
    }

    /// Everything the catalogue holds, in `Code` order.
    pub fn counterparties(&self) -> Vec<CounterpartyRecord> {
        self.state.counterparties()
    }

    pub fn counterparty(&self, onec_id: &str) -> Option<CounterpartyRecord> {
        self.state.store().get(onec_id).cloned()
    }

    /// Every counterparty storing this platform id (more than one means a duplicate).
    pub fn find_by_platform_id(&self, platform_id: &str) -> Vec<CounterpartyRecord> {
        self.state
            .store()
            .find_by_platform_id(platform_id)
            .into_iter()
            .cloned()
            .collect()
    }

    pub fn faults(&self) -> FaultPlan {
        self.state.faults()
    }

    /// Replaces the fault plan; reseeds and restarts the outage request count.
    pub fn set_faults(&self, plan: FaultPlan) {
        self.state.set_faults(plan);
    }

    /// Queues exact answers for the next non-admin requests.
    pub fn script(&self, answers: Vec<ScriptedAnswer>) {
        self.state.script(answers);
    }

    pub fn stats(&self) -> Stats {
        self.state.stats()
    }

    /// Forgets counterparties, stats, the fault plan and scripted answers.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// An operator edits the counterparty in 1C: new `DataVersion` and change number.
    pub fn edit_in_1c(
        &self,
        onec_id: &str,
        patch: CounterpartyPatch,
    ) -> Result<CounterpartyRecord, StoreError> {
        self.state.edit_in_1c(onec_id, patch)
    }

    /// Sets a counterparty's modification date as if it was last changed then (whole seconds
    /// make most changes in a test share one; this spreads them).
    pub fn backdate(&self, onec_id: &str, modified_at: NaiveDateTime) -> Result<(), StoreError> {
        self.state.backdate(onec_id, modified_at)
    }

    /// An operator enters a counterparty in 1C (no platform id needed).
    pub fn create_in_1c(
        &self,
        fields: CounterpartyFields,
    ) -> Result<CounterpartyRecord, StoreError> {
        self.state.create_in_1c(fields)
    }

    /// Shuts down gracefully and waits for the server task.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.await
                .context("emulator task panicked")?
                .context("emulator server failed")?;
        }
        Ok(())
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Starts the emulator on `config.bind` (default `127.0.0.1:0`, a free port).
pub async fn spawn(config: EmulatorConfig) -> anyhow::Result<EmulatorHandle> {
    anyhow::ensure!(
        config.bind.ip().is_loopback(),
        "the emulator only listens on loopback, not {}",
        config.bind.ip()
    );
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let addr = listener.local_addr().context("reading the bound address")?;

    let base: String = config
        .normalized_base_path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/{}", encode_segment(s)))
        .collect();
    let hs_prefix = format!("{base}/hs/{}", encode_segment(&config.hs_root));
    let odata_prefix = format!("{base}/odata/standard.odata");
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = Arc::new(AppState {
        base_url: format!("http://{addr}{base}"),
        hs_prefix,
        odata_prefix,
        store: Mutex::new(Store::new(config.utc_offset_hours)),
        faults: Mutex::new(FaultState::new(config.faults.clone())),
        stats: Mutex::new(Stats::default()),
        shutdown: shutdown_rx.clone(),
        config,
    });

    let app = router(state.clone());
    let mut stop = shutdown_rx;
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // Also resolves when the handle (the sender) is gone.
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .await
    });
    tracing::info!(%addr, "1C emulator listening");
    Ok(EmulatorHandle {
        addr,
        state,
        shutdown: shutdown_tx,
        task: Some(task),
    })
}

fn router(state: Arc<AppState>) -> Router {
    let hs = state.hs_prefix.clone();
    let odata = state.odata_prefix.clone();
    let limit = state.config.body_limit_bytes;
    Router::new()
        .route(
            &format!("{hs}/customers"),
            get(hs_json::find).post(hs_json::upsert),
        )
        .route(&format!("{hs}/customers/batch"), post(hs_json::batch))
        .route(&format!("{hs}/customers/{{onec_id}}"), get(hs_json::fetch))
        .route(&format!("{hs}/changes"), get(hs_json::changes))
        .route(
            &format!("{hs}/commerceml/customers"),
            get(commerceml::find).post(commerceml::upsert),
        )
        .route(
            &format!("{hs}/commerceml/customers/{{onec_id}}"),
            get(commerceml::fetch),
        )
        .route(
            &format!("{hs}/commerceml/changes"),
            get(commerceml::changes),
        )
        .route(&format!("{odata}/$batch"), post(odata_batch::batch))
        .route(
            &format!("{odata}/{{resource}}"),
            get(odata::get)
                .post(odata::post)
                .patch(odata::patch)
                .delete(odata::delete),
        )
        .merge(admin::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "Not Found")
}

/// Applies, to every non-admin request: the fault plan, then Basic auth, then the handler.
async fn gate(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/admin" || path.starts_with("/admin/") {
        return next.run(request).await;
    }
    let transport = app.transport_of(path);
    let (decision, kinds) = lock(&app.faults).decide();
    {
        let mut stats = lock(&app.stats);
        for kind in kinds {
            stats.count_fault(kind);
        }
    }
    let response = match decision {
        Decision::Unavailable => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "1C:Enterprise server is unavailable",
        ),
        Decision::Scripted(answer) => scripted(&app, answer, request, next).await,
        Decision::ServiceUnavailable { html: true } => html_page(StatusCode::SERVICE_UNAVAILABLE),
        Decision::ServiceUnavailable { html: false } => {
            native_unavailable(transport, StatusCode::SERVICE_UNAVAILABLE)
        }
        Decision::TooManyRequests { retry_after_secs } => {
            let mut response = text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Decision::Hang { ms } => {
            app.pause(ms).await;
            text(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout")
        }
        Decision::Handle { latency_ms, after } => {
            if latency_ms > 0 {
                app.pause(latency_ms).await;
            }
            let response = authenticated(&app, request, next).await;
            match after {
                AfterHandling::Answer => response,
                AfterHandling::HangThenAnswer { ms } => {
                    app.pause(ms).await;
                    response
                }
            }
        }
    };
    let status = response.status().as_u16().to_string();
    *lock(&app.stats)
        .requests
        .entry(transport.as_str().to_string())
        .or_default()
        .entry(status)
        .or_default() += 1;
    response
}

async fn scripted(
    app: &AppState,
    answer: ScriptedAnswer,
    request: Request,
    next: Next,
) -> Response {
    match answer {
        ScriptedAnswer::Respond {
            status,
            content_type,
            body,
            headers,
        } => {
            let mut response = (status_or_500(status), body).into_response();
            if let Some(ct) = content_type.and_then(|ct| HeaderValue::from_str(&ct).ok()) {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            for (name, value) in headers {
                match (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    (Ok(name), Ok(value)) => {
                        response.headers_mut().insert(name, value);
                    }
                    _ => tracing::warn!(header = %name, "scripted header is not valid HTTP"),
                }
            }
            response
        }
        ScriptedAnswer::Hang { hang_ms } => {
            app.pause(hang_ms).await;
            text(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout")
        }
        ScriptedAnswer::CommitThenStatus { commit_then_status } => {
            let _committed = authenticated(app, request, next).await;
            html_page(status_or_500(commit_then_status))
        }
    }
}

async fn authenticated(app: &AppState, request: Request, next: Next) -> Response {
    if credentials_match(request.headers(), &app.config) {
        next.run(request).await
    } else {
        let mut response = text(StatusCode::UNAUTHORIZED, "Unauthorized");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"1C:Enterprise\""),
        );
        response
    }
}

/// Basic auth over the UTF-8 bytes of `user:password`, as 1C's web extension expects.
fn credentials_match(headers: &HeaderMap, config: &EmulatorConfig) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    decoded
        .split_once(':')
        .is_some_and(|(user, password)| user == config.username && password == config.password)
}

fn status_or_500(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

pub(crate) fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// The kind of page a web server or proxy in front of 1C answers with.
fn html_page(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let code = status.as_u16();
    let body = format!(
        "<html><head><title>{code} {reason}</title></head><body><h1>{code} {reason}</h1><hr><p>Apache</p></body></html>"
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// An "infobase unavailable" error in the transport's own error shape.
fn native_unavailable(transport: Transport, status: StatusCode) -> Response {
    let message = "Информационная база временно недоступна";
    match transport {
        Transport::Json => hs_json::error(status, "unavailable", message),
        Transport::CommerceMl => commerceml::error(status, "unavailable", message),
        Transport::OData | Transport::Other => text(status, message),
    }
}

/// Small helpers shared by the transports.
pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            Body::from(bytes),
        )
            .into_response(),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "serialisation failed"),
    }
}

/// Query parameters, decoded as a browser form would (`+` is a space).
pub(crate) fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

pub(crate) fn query_param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// An optional unsigned integer parameter; empty counts as absent.
pub(crate) fn query_pair_u64(
    pairs: &[(String, String)],
    name: &str,
) -> Result<Option<u64>, String> {
    match query_param(pairs, name).map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) => raw
            .parse()
            .map(Some)
            .map_err(|_| format!("{name} must be a non-negative integer, not {raw:?}")),
    }
}
