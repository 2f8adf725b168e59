//! The whole pipeline on this machine: moto (started, or the one `AWS_ENDPOINT_URL*` points at),
//! the 1C emulator, the stack from [`crate::spec`], and the real handlers run the way Lambda
//! runs them:
//!
//! - `stream-filter` behind a [`StreamPoller`] (batch size and window, checkpoint on failure,
//!   the on-failure queue after the retries);
//! - `exporter` behind one [`SqsPoller`] per queue and worker (batch size, the queue's
//!   visibility timeout, partial batch responses; moto redrives to the DLQ);
//! - `full-sync` on its schedule ([`LocalStackOptions::full_sync`], EventBridge Scheduler's
//!   input), or invoked at once with [`LocalStack::invoke_full_sync`]; a run that has to
//!   continue in a fresh invocation does so here too (Lambda: an asynchronous self-invoke), with
//!   the function's timeout as each invocation's deadline; a failed asynchronous invocation is
//!   retried once, then recorded on the full-sync failure queue as Lambda's on-failure
//!   destination would;
//! - anything else scheduled through [`LocalStack::spawn_periodic`].
//!
//! Handlers are configured through the variables they read in AWS ([`LocalStack::function_env`]:
//! the stack's outputs plus `ONEC_*`), passed as a map rather than through the process
//! environment, so several stacks can run in one process (tests).
//!
//! Stopping ([`LocalStack::stop`], or dropping) stops every task, the emulator and moto.

use crate::moto::{MotoError, MotoServer};
use crate::spec::{self, create_stack, sdk_config, unique_prefix, StackError, StackOutputs};
use crate::sqs_poller::{SqsPoller, SqsPollerConfig, SqsPollerError};
use crate::stream_poller::{OnFailureQueue, StreamPoller, StreamPollerConfig};
use aws_config::{Region, SdkConfig};
use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use full_sync::ports::{Continuation, ContinuationError, Deadline};
use full_sync::{FullSyncError, FullSyncInput, RunReport};
use onec_emulator::{EmulatorConfig, EmulatorHandle, FaultPlan};
use shared::adapters::dynamodb::DynamoDbCustomerStore;
use shared::adapters::sqs::SqsExportQueue;
use shared::metrics::Metrics;
use shared::onec::Transport;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long tasks may take to finish their current batch when the stack stops.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Pause after a poller request failed (moto restarting, a connection reset) before polling again.
const POLL_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Where the handlers' CloudWatch EMF lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsOutput {
    /// Dropped: the demo prints its own summary and stdout stays readable.
    #[default]
    Discard,
    /// On stdout, as in Lambda.
    Stdout,
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct LocalStackOptions {
    /// The 1C transport the exporter speaks (`ONEC_TRANSPORT`); the emulator serves all three.
    pub transport: Transport,
    /// The emulator's fault plan.
    pub faults: FaultPlan,
    /// Resource name prefix; a unique one when `None`.
    pub prefix: Option<String>,
    pub stream: StreamPollerConfig,
    pub sqs: SqsPollerConfig,
    /// Concurrent pollers per export queue (Lambda runs several batches at once).
    pub exporter_workers: usize,
    /// Pause between receives on an empty queue.
    pub idle_poll_interval: Duration,
    /// Variables set on top of [`LocalStack::function_env`]'s (e.g. `EXPORT_CONCURRENCY`).
    pub env_overrides: BTreeMap<String, String>,
    pub metrics: MetricsOutput,
    /// The full sync's schedule; `None` runs it only when asked ([`LocalStack::invoke_full_sync`]).
    pub full_sync: Option<FullSyncSchedule>,
}

/// The full sync's schedule (EventBridge Scheduler in AWS): what it sends, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullSyncSchedule {
    /// Nightly in AWS; seconds here, so a demo sees 1C's changes come back.
    pub every: Duration,
    pub input: FullSyncInput,
}

impl FullSyncSchedule {
    /// The template's schedule input (`FullSyncDirection`, `FullSyncChunkSize` defaults), every
    /// `every`.
    pub fn template_input(every: Duration) -> Self {
        let direction = spec::FULL_SYNC_DIRECTION
            .parse()
            .unwrap_or(shared::sync_run::SyncDirection::Both);
        Self {
            every,
            input: FullSyncInput::start(direction, spec::FULL_SYNC_CHUNK_SIZE),
        }
    }
}

impl Default for LocalStackOptions {
    fn default() -> Self {
        Self {
            transport: Transport::Json,
            faults: FaultPlan::default(),
            prefix: None,
            stream: StreamPollerConfig {
                idle_poll_interval: Duration::from_millis(100),
                ..StreamPollerConfig::default()
            },
            sqs: SqsPollerConfig::default(),
            exporter_workers: 2,
            idle_poll_interval: Duration::from_millis(100),
            env_overrides: BTreeMap::new(),
            metrics: MetricsOutput::Discard,
            full_sync: None,
        }
    }
}

/// Why the local stack cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot start moto")]
    Moto(#[from] MotoError),
    #[error("cannot create the stack's tables and queues")]
    Stack(#[from] StackError),
    #[error("cannot start the 1C emulator")]
    Emulator(#[source] BoxError),
    #[error("the stream filter's configuration is invalid")]
    FilterConfig(#[from] stream_filter::FilterConfigError),
    #[error("the exporter's configuration is invalid")]
    ExporterConfig(#[from] shared::config::ConfigError),
    #[error("the exporter cannot start")]
    ExporterStartup(#[from] exporter::wiring::StartupError),
    #[error("cannot attach to an export queue")]
    Queue(#[from] SqsPollerError),
    #[error("the full sync's configuration is invalid")]
    FullSyncConfig(#[source] shared::config::ConfigError),
    #[error("the full sync cannot start")]
    FullSyncStartup(#[from] full_sync::wiring::StartupError),
}

/// Counters of what the event source mappings did, for progress and settling.
#[derive(Debug, Default)]
pub struct PipelineStats {
    pub filter_invocations: AtomicU64,
    pub filter_records: AtomicU64,
    pub filter_enqueued: AtomicU64,
    /// Batches skipped after their retries (sent to the on-failure queue).
    pub filter_failed_batches: AtomicU64,
    pub exporter_invocations: AtomicU64,
    pub exporter_messages: AtomicU64,
    /// Messages reported in `batchItemFailures` (left for redelivery).
    pub exporter_retries: AtomicU64,
    /// Poller requests that failed (the task pauses and carries on).
    pub poll_errors: AtomicU64,
    /// Full-sync invocations (scheduled, continued or asked for) and those that failed.
    pub full_sync_invocations: AtomicU64,
    pub full_sync_failures: AtomicU64,
    /// Asynchronous invocations that failed after their retry (sent to the on-failure queue).
    pub full_sync_dead_letters: AtomicU64,
    last_activity: Mutex<Option<Instant>>,
    last_full_sync: Mutex<Option<RunReport>>,
}

impl PipelineStats {
    fn touch(&self) {
        *self
            .last_activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
    }

    /// Time since a handler last received anything.
    pub fn idle_for(&self) -> Option<Duration> {
        self.last_activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map(|at| at.elapsed())
    }

    /// What the last full-sync invocation that succeeded left behind.
    pub fn last_full_sync(&self) -> Option<RunReport> {
        self.last_full_sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// A running local stack; see the module documentation.
pub struct LocalStack {
    moto: Option<MotoServer>,
    endpoint: String,
    aws: SdkConfig,
    outputs: StackOutputs,
    emulator: Option<EmulatorHandle>,
    transport: Transport,
    env: BTreeMap<String, String>,
    stop: watch::Sender<bool>,
    tasks: Vec<(String, JoinHandle<()>)>,
    stats: Arc<PipelineStats>,
    options: LocalStackOptions,
    full_sync: Arc<FullSyncFunction>,
}

impl std::fmt::Debug for LocalStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStack")
            .field("endpoint", &self.endpoint)
            .field("prefix", &self.outputs.prefix)
            .field("transport", &self.transport)
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

/// The AWS endpoint named by the standard variables, if any: `AWS_ENDPOINT_URL`, else a
/// service-specific one (moto serves every service on one endpoint).
pub fn endpoint_from_env() -> Option<String> {
    [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// An SDK configuration from the standard environment (service-specific endpoints included),
/// with `us-east-1` and test credentials unless the environment names others.
async fn sdk_config_from_env() -> SdkConfig {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned());
    let mut loader = shared::https::aws_config_loader().region(Region::new(region));
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "local-stack",
        ));
    }
    loader.load().await
}

impl LocalStack {
    /// Starts (or connects to) moto, starts the emulator, creates the stack and the handlers'
    /// tasks.
    pub async fn start(options: LocalStackOptions) -> Result<Self, RunnerError> {
        let (moto, endpoint, aws) = match endpoint_from_env() {
            Some(endpoint) => {
                tracing::info!(%endpoint, "using the AWS endpoint from the environment");
                (None, endpoint, sdk_config_from_env().await)
            }
            None => {
                let moto = MotoServer::start().await?;
                let endpoint = moto.endpoint().to_owned();
                let aws = sdk_config(&endpoint).await;
                (Some(moto), endpoint, aws)
            }
        };
        let prefix = options
            .prefix
            .clone()
            .unwrap_or_else(|| unique_prefix("local"));
        let outputs = create_stack(&aws, &prefix).await?;
        let emulator = onec_emulator::spawn(EmulatorConfig {
            faults: options.faults.clone(),
            ..EmulatorConfig::default()
        })
        .await
        .map_err(|e| RunnerError::Emulator(e.into()))?;

        let env = Self::build_env(&outputs, &emulator, options.transport, &endpoint, &options);
        let (stop, _) = watch::channel(false);
        let (full_sync, continuations) =
            FullSyncFunction::build(&env, &aws, &outputs, options.metrics).await?;
        let mut stack = Self {
            moto,
            endpoint,
            aws,
            outputs,
            emulator: Some(emulator),
            transport: options.transport,
            env,
            stop,
            tasks: Vec::new(),
            stats: Arc::new(PipelineStats::default()),
            options,
            full_sync: Arc::new(full_sync),
        };
        stack.spawn_stream_filter()?;
        stack.spawn_exporters().await?;
        stack.spawn_full_sync(continuations);
        Ok(stack)
    }

    fn build_env(
        outputs: &StackOutputs,
        emulator: &EmulatorHandle,
        transport: Transport,
        endpoint: &str,
        options: &LocalStackOptions,
    ) -> BTreeMap<String, String> {
        let login = emulator.config();
        let mut env: BTreeMap<String, String> = outputs
            .function_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let local = [
            ("AWS_ENDPOINT_URL", endpoint.to_owned()),
            ("ONEC_BASE_URL", emulator.base_url()),
            ("ONEC_TRANSPORT", transport.as_str().to_owned()),
            ("ONEC_HS_ROOT", login.hs_root.clone()),
            // Plain credentials instead of a secret; the exporter accepts them only with this.
            ("ONEC_ALLOW_INSECURE_HTTP", "true".to_owned()),
            ("ONEC_USERNAME", login.username.clone()),
            ("ONEC_PASSWORD", login.password.clone()),
            ("MAX_EXPORT_ATTEMPTS", spec::MAX_EXPORT_ATTEMPTS.to_string()),
            // Seconds instead of AWS's minutes, so retries show within a demo.
            ("BACKOFF_BASE_SECS", "1".to_owned()),
            ("BACKOFF_CAP_SECS", "4".to_owned()),
        ];
        env.extend(local.into_iter().map(|(k, v)| (k.to_owned(), v)));
        env.extend(options.env_overrides.clone());
        env
    }

    fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |name| self.env.get(name).cloned()
    }

    fn spawn_stream_filter(&mut self) -> Result<(), RunnerError> {
        let config = stream_filter::FilterConfig::from_lookup(&self.lookup())?;
        let deps = stream_filter::Deps {
            queue: SqsExportQueue::new(
                aws_sdk_sqs::Client::new(&self.aws),
                config.priority_queue_url.clone(),
                config.bulk_queue_url.clone(),
            ),
            marker: DynamoDbCustomerStore::new(
                aws_sdk_dynamodb::Client::new(&self.aws),
                config.users_table.clone(),
            ),
            policy: config.policy.clone(),
            metrics: Metrics::new(config.metrics_namespace.clone(), "stream-filter"),
        };
        let mut poller = StreamPoller::new(
            aws_sdk_dynamodbstreams::Client::new(&self.aws),
            self.outputs.users_stream_arn.clone(),
            self.options.stream,
        )
        .with_on_failure_queue(OnFailureQueue {
            client: aws_sdk_sqs::Client::new(&self.aws),
            queue_url: self.outputs.stream_failure_queue_url.clone(),
        });
        let stats = self.stats.clone();
        let output = self.options.metrics;
        let mut stopped = self.stop.subscribe();
        let task = tokio::spawn(async move {
            loop {
                let mut signal = stopped.clone();
                let stop_signal = async move { until_stopped(&mut signal).await };
                let result = poller
                    .run_until(
                        |event| filter_invocation(&deps, &stats, output, event),
                        stop_signal,
                    )
                    .await;
                match result {
                    Ok(report) => {
                        PipelineStats::add(
                            &stats.filter_failed_batches,
                            report.failed_batches.len(),
                        );
                    }
                    Err(err) => {
                        stats.poll_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %err, "stream polling failed; polling again");
                    }
                }
                if *stopped.borrow_and_update() {
                    return;
                }
                pause(&mut stopped, POLL_ERROR_PAUSE).await;
            }
        });
        self.tasks.push(("stream-filter".to_owned(), task));
        Ok(())
    }

    async fn spawn_exporters(&mut self) -> Result<(), RunnerError> {
        let config = exporter::config::ExporterConfig::from_lookup(&self.lookup())?;
        let deps = Arc::new(exporter::wiring::build_deps(&config, &self.aws).await?);
        let queues = [
            ("priority", config.priority_queue_url.clone()),
            ("bulk", config.bulk_queue_url.clone()),
        ];
        for (lane, url) in queues {
            for worker in 0..self.options.exporter_workers.max(1) {
                let poller =
                    SqsPoller::new(aws_sdk_sqs::Client::new(&self.aws), &url, self.options.sqs)
                        .await?;
                let deps = deps.clone();
                let stats = self.stats.clone();
                let output = self.options.metrics;
                let idle = self.options.idle_poll_interval;
                let mut stopped = self.stop.subscribe();
                let task = tokio::spawn(async move {
                    // A batch in progress is finished; the stop is checked between batches.
                    while !*stopped.borrow_and_update() {
                        match poller
                            .poll_once(|event| exporter::handle(&deps, event))
                            .await
                        {
                            Ok(report) => {
                                emit(&deps.metrics, output);
                                PipelineStats::add(&stats.exporter_invocations, report.invocations);
                                PipelineStats::add(&stats.exporter_messages, report.received);
                                PipelineStats::add(&stats.exporter_retries, report.failed.len());
                                if report.received > 0 {
                                    stats.touch();
                                } else {
                                    pause(&mut stopped, idle).await;
                                }
                            }
                            Err(err) => {
                                stats.poll_errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(error = %err, "queue polling failed; polling again");
                                pause(&mut stopped, POLL_ERROR_PAUSE).await;
                            }
                        }
                    }
                });
                self.tasks.push((format!("exporter-{lane}-{worker}"), task));
            }
        }
        Ok(())
    }

    /// The full sync's invocations: its schedule's ticks and its own continuations, one at a
    /// time (a tick while a run goes on is refused by the function, as in AWS).
    fn spawn_full_sync(&mut self, mut continuations: mpsc::UnboundedReceiver<FullSyncInput>) {
        let function = self.full_sync.clone();
        let stats = self.stats.clone();
        let mut stopped = self.stop.subscribe();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = until_stopped(&mut stopped) => return,
                    input = continuations.recv() => match input {
                        Some(input) => function.invoke_async(&stats, &input).await,
                        None => return,
                    },
                }
            }
        });
        self.tasks.push(("full-sync".to_owned(), task));
        if let Some(schedule) = self.options.full_sync.clone() {
            let function = self.full_sync.clone();
            self.spawn_periodic("full-sync-schedule", schedule.every, move || {
                let function = function.clone();
                let input = schedule.input.clone();
                async move { function.enqueue(input) }
            });
        }
    }

    /// Invokes the full sync now and waits for this invocation (`aws lambda invoke`, or the
    /// CLI's `sync_customers_with_1c run`); a continuation of the run goes on in the background.
    pub async fn invoke_full_sync(
        &self,
        input: &FullSyncInput,
    ) -> Result<RunReport, FullSyncError> {
        self.full_sync.invoke(&self.stats, input).await
    }

    /// Runs `tick` every `interval` (first after one interval, like a schedule) until the stack
    /// stops; a tick still running when the stop comes is allowed to finish within the grace
    /// period.
    pub fn spawn_periodic<F, Fut>(&mut self, name: &str, interval: Duration, mut tick: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut stopped = self.stop.subscribe();
        let task = tokio::spawn(async move {
            let mut timer =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = until_stopped(&mut stopped) => return,
                    _ = timer.tick() => tick().await,
                }
            }
        });
        self.tasks.push((name.to_owned(), task));
    }

    /// The full sync's schedule, if it runs on one.
    pub fn full_sync_schedule(&self) -> Option<&FullSyncSchedule> {
        self.options.full_sync.as_ref()
    }

    /// The moto endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether this stack started moto (rather than using `AWS_ENDPOINT_URL`).
    pub fn owns_moto(&self) -> bool {
        self.moto.is_some()
    }

    /// The moto process, when this stack started it.
    pub fn moto(&self) -> Option<&MotoServer> {
        self.moto.as_ref()
    }

    pub fn aws(&self) -> &SdkConfig {
        &self.aws
    }

    pub fn outputs(&self) -> &StackOutputs {
        &self.outputs
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The running emulator (present until [`LocalStack::stop`]).
    pub fn emulator(&self) -> &EmulatorHandle {
        // Only `shutdown` takes it, and it consumes or drops the stack.
        self.emulator
            .as_ref()
            .unwrap_or_else(|| unreachable!("the emulator lives as long as the stack"))
    }

    /// The variables the functions read, pointing at this stack (includes `ONEC_PASSWORD`:
    /// print with [`LocalStack::function_env_masked`]).
    pub fn function_env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// [`LocalStack::function_env`] with secrets replaced by `***`.
    pub fn function_env_masked(&self) -> BTreeMap<String, String> {
        self.env
            .iter()
            .map(|(k, v)| {
                let secret = k.contains("PASSWORD") || k.contains("SECRET");
                (k.clone(), if secret { "***".to_owned() } else { v.clone() })
            })
            .collect()
    }

    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.stats
    }

    /// Visible, in-flight and delayed messages on a queue.
    pub async fn queue_depth(&self, queue_url: &str) -> Result<u64, SqsPollerError> {
        let poller = SqsPoller::new(
            aws_sdk_sqs::Client::new(&self.aws),
            queue_url,
            SqsPollerConfig::default(),
        )
        .await?;
        poller.approximate_count().await
    }

    /// Both export queues are empty (nothing visible, in flight or delayed) and no handler has
    /// received anything for `quiet`, counted from `since` at the earliest (writes made just
    /// before `since` may not have reached the stream poller yet): nothing more will happen
    /// without a new write.
    pub async fn is_idle(&self, quiet: Duration, since: Instant) -> Result<bool, SqsPollerError> {
        let idle = self
            .stats
            .idle_for()
            .map_or(since.elapsed(), |idle| idle.min(since.elapsed()));
        let quiet_enough = idle >= quiet;
        Ok(quiet_enough
            && self.queue_depth(&self.outputs.priority_queue_url).await? == 0
            && self.queue_depth(&self.outputs.bulk_queue_url).await? == 0)
    }

    /// Waits until both export queues are empty and no handler has received anything for
    /// `quiet` (long enough for the stream poller to have picked up the last writes); `false`
    /// if that did not happen within `timeout`.
    pub async fn settle(&self, quiet: Duration, timeout: Duration) -> Result<bool, SqsPollerError> {
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            if self.is_idle(quiet, started).await? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops every task (letting a batch in progress finish within a grace period), then the
    /// emulator and moto.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        for (name, mut task) in self.tasks.drain(..) {
            match tokio::time::timeout(STOP_GRACE, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) if err.is_panic() => tracing::error!(task = %name, "task panicked"),
                Ok(Err(_)) => {}
                Err(_) => {
                    tracing::warn!(task = %name, "task did not stop in time; aborting it");
                    task.abort();
                }
            }
        }
        if let Some(emulator) = self.emulator.take() {
            if let Err(err) = emulator.stop().await {
                tracing::warn!(error = %err, "the emulator did not stop cleanly");
            }
        }
        if let Some(mut moto) = self.moto.take() {
            moto.stop();
        }
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for (_, task) in &self.tasks {
            task.abort();
        }
        // The emulator and moto stop in their own destructors.
    }
}

/// The full-sync function: its real dependencies, except that a run continues through a channel
/// to this stack's invoker instead of Lambda's asynchronous invoke.
struct FullSyncFunction {
    deps: full_sync::Deps,
    invoke: mpsc::UnboundedSender<FullSyncInput>,
    output: MetricsOutput,
    sqs: aws_sdk_sqs::Client,
    failure_queue_url: String,
}

/// Lambda waits about a minute before retrying a failed asynchronous invocation; a second here.
const ASYNC_RETRY_PAUSE: Duration = Duration::from_secs(1);

impl FullSyncFunction {
    async fn build(
        env: &BTreeMap<String, String>,
        aws: &SdkConfig,
        outputs: &StackOutputs,
        output: MetricsOutput,
    ) -> Result<(Self, mpsc::UnboundedReceiver<FullSyncInput>), RunnerError> {
        let lookup = |name: &str| env.get(name).cloned();
        let config = full_sync::config::FullSyncConfig::from_lookup(&lookup)
            .map_err(RunnerError::FullSyncConfig)?;
        let mut deps = full_sync::wiring::build_deps(&config, aws).await?;
        let (invoke, invocations) = mpsc::unbounded_channel();
        deps.continuation = Arc::new(ChannelContinuation(invoke.clone()));
        Ok((
            Self {
                deps,
                invoke,
                output,
                sqs: aws_sdk_sqs::Client::new(aws),
                failure_queue_url: outputs.full_sync_failure_queue_url.clone(),
            },
            invocations,
        ))
    }

    /// An asynchronous invocation (the schedule's): runs when the invoker gets to it.
    fn enqueue(&self, input: FullSyncInput) {
        // Only fails once the stack is stopping.
        let _ = self.invoke.send(input);
    }

    /// An asynchronous invocation as Lambda runs one: retried after a failure, then recorded
    /// on the on-failure queue (Lambda's destination record: the request, the error).
    async fn invoke_async(&self, stats: &PipelineStats, input: &FullSyncInput) {
        let mut attempts = 0;
        let err = loop {
            attempts += 1;
            match self.invoke(stats, input).await {
                Ok(_) => return,
                Err(err) if attempts <= spec::FULL_SYNC_ASYNC_RETRIES => {
                    tracing::info!(error = %err, "retrying the full-sync invocation");
                    tokio::time::sleep(ASYNC_RETRY_PAUSE).await;
                }
                Err(err) => break err,
            }
        };
        let record = serde_json::json!({
            "version": "1.0",
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "requestContext": {
                "requestId": uuid::Uuid::new_v4().to_string(),
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:full-sync:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": input,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {
                "errorType": std::any::type_name::<FullSyncError>(),
                "errorMessage": err.to_string(),
            },
        });
        stats.full_sync_dead_letters.fetch_add(1, Ordering::Relaxed);
        if let Err(send) = self
            .sqs
            .send_message()
            .queue_url(&self.failure_queue_url)
            .message_body(record.to_string())
            .send()
            .await
        {
            tracing::error!(error = %send, "cannot record a failed full-sync invocation");
        }
    }

    async fn invoke(
        &self,
        stats: &PipelineStats,
        input: &FullSyncInput,
    ) -> Result<RunReport, FullSyncError> {
        stats.full_sync_invocations.fetch_add(1, Ordering::Relaxed);
        let deadline = Deadline(
            std::time::SystemTime::now()
                + Duration::from_secs(u64::from(spec::FULL_SYNC_TIMEOUT_SECS)),
        );
        // Boxed as `Send` here, at concrete lifetimes: the handler's future is, but the
        // compiler cannot prove it for every lifetime inside a spawned task.
        let run: std::pin::Pin<
            Box<dyn Future<Output = Result<RunReport, FullSyncError>> + Send + '_>,
        > = Box::pin(full_sync::handle(&self.deps, input, &deadline));
        let result = run.await;
        emit(&self.deps.metrics, self.output);
        match &result {
            Ok(report) => {
                *stats
                    .last_full_sync
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report.clone());
            }
            Err(err) => {
                stats.full_sync_failures.fetch_add(1, Ordering::Relaxed);
                // In AWS: a failed asynchronous invocation, retried once, then the on-failure
                // queue. A refused start while a run goes on is the common case here.
                tracing::warn!(error = %err, "full-sync invocation failed");
            }
        }
        result
    }
}

/// Continues a run by invoking the local full sync again.
struct ChannelContinuation(mpsc::UnboundedSender<FullSyncInput>);

#[async_trait::async_trait]
impl Continuation for ChannelContinuation {
    async fn continue_run(&self, run_id: &str) -> Result<(), ContinuationError> {
        self.0
            .send(FullSyncInput::continuation(run_id))
            .map_err(|err| ContinuationError::Invoke {
                function: "local full-sync".to_owned(),
                class: shared::error::ErrorClass::Transient,
                source: Box::new(err),
            })
    }
}

/// One stream-filter invocation: the function's `handle`, except that EMF lines go where
/// [`MetricsOutput`] says instead of always to stdout.
async fn filter_invocation(
    deps: &stream_filter::Deps<SqsExportQueue, DynamoDbCustomerStore>,
    stats: &PipelineStats,
    output: MetricsOutput,
    event: Event,
) -> Result<DynamoDbEventResponse, stream_filter::FilterError> {
    stats.touch();
    PipelineStats::add(&stats.filter_invocations, 1);
    PipelineStats::add(&stats.filter_records, event.records.len());
    let result = stream_filter::process(deps, &event).await;
    if let Ok(outcome) = &result {
        outcome.record(&deps.metrics);
        PipelineStats::add(
            &stats.filter_enqueued,
            usize::try_from(outcome.enqueued.values().sum::<u64>()).unwrap_or(usize::MAX),
        );
    }
    emit(&deps.metrics, output);
    result.map(|outcome| outcome.response())
}

fn emit(metrics: &Metrics, output: MetricsOutput) {
    let written = match output {
        MetricsOutput::Discard => metrics.flush(&mut std::io::sink()),
        MetricsOutput::Stdout => metrics.flush_to_stdout(),
    };
    if let Err(err) = written {
        tracing::warn!(error = %err, "cannot write metrics");
    }
}

/// Sleeps for `duration` unless the stack stops first.
async fn pause(stopped: &mut watch::Receiver<bool>, duration: Duration) {
    tokio::select! {
        _ = until_stopped(stopped) => {}
        _ = tokio::time::sleep(duration) => {}
    }
}

/// Resolves once the stack stops (or its sender is gone, which means the same).
pub(crate) async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; it must not live across an await.
    let _ = stopped.wait_for(|s| *s).await;
}
