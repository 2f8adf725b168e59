//! Reads a DynamoDB stream from moto and feeds a handler the way Lambda's event source mapping
//! does (moto accepts mappings but cannot invoke without Docker).
//!
//! Semantics copied from Lambda (see `docs` in the shared notes, ESM section):
//! - records of a shard are delivered in order, in batches of at most `batch_size`;
//! - a response with `batchItemFailures` is a checkpoint: everything from the lowest reported
//!   sequence number is delivered again; an empty, missing or unknown identifier, or a handler
//!   error, fails the whole batch;
//! - after `maximum_retry_attempts` failed deliveries of a batch without progress, the batch is
//!   skipped and its metadata (shard, sequence range, size) goes to the on-failure sink, as an SQS
//!   on-failure destination would receive it (records are not included).
//!
//! Not modelled: bisection, record age, parallelisation factor, event filtering.

use aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamRecord, StreamViewType};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use aws_sdk_dynamodbstreams::Client;
use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How batches are formed and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPollerConfig {
    pub batch_size: usize,
    /// In background mode, how long to wait for a batch to fill. `drain` never waits.
    pub batching_window: Duration,
    /// Redeliveries of a failing batch before it is skipped.
    pub maximum_retry_attempts: u32,
    /// Start from the oldest record (`true`) or only new ones.
    pub trim_horizon: bool,
    /// Pause between polls of an idle stream in background mode.
    pub idle_poll_interval: Duration,
}

impl Default for StreamPollerConfig {
    fn default() -> Self {
        let mapping = crate::spec::USERS_STREAM_MAPPING;
        Self {
            batch_size: mapping.batch_size as usize,
            batching_window: Duration::from_secs(u64::from(mapping.maximum_batching_window_secs)),
            maximum_retry_attempts: mapping.maximum_retry_attempts,
            trim_horizon: mapping.starting_position == "TRIM_HORIZON",
            idle_poll_interval: Duration::from_millis(200),
        }
    }
}

/// What an SQS on-failure destination would receive for a skipped batch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedBatch {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub batch_size: usize,
    pub stream_arn: String,
    /// Why the last delivery failed.
    pub condition: String,
    /// Deliveries made (first one plus retries).
    pub attempts: u32,
}

/// Counts of one drain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamDrainReport {
    pub invocations: usize,
    /// Records delivered, counting redeliveries.
    pub records_delivered: usize,
    /// Records acknowledged (not redelivered).
    pub records_processed: usize,
    pub failed_batches: Vec<FailedBatch>,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamPollerError {
    #[error("{operation} on the stream failed")]
    Request {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("the stream has no shards")]
    NoShards,
    #[error("sending the failed-batch notice failed")]
    OnFailure(#[source] BoxError),
}

fn request_error(operation: &'static str) -> impl FnOnce(BoxError) -> StreamPollerError {
    move |source| StreamPollerError::Request { operation, source }
}

struct Shard {
    id: String,
    /// `None` once the shard is closed and read to its end.
    iterator: Option<String>,
    /// Read but not yet acknowledged, in order.
    buffer: VecDeque<EventRecord>,
    /// Failed deliveries of the batch at the front of `buffer`.
    failures: u32,
}

/// Where skipped batches are reported besides [`StreamDrainReport::failed_batches`].
#[derive(Debug, Clone)]
pub struct OnFailureQueue {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

/// A Lambda-like reader of one stream.
pub struct StreamPoller {
    client: Client,
    stream_arn: String,
    config: StreamPollerConfig,
    shards: Vec<Shard>,
    on_failure: Option<OnFailureQueue>,
}

impl StreamPoller {
    pub fn new(client: Client, stream_arn: impl Into<String>, config: StreamPollerConfig) -> Self {
        Self {
            client,
            stream_arn: stream_arn.into(),
            config,
            shards: Vec::new(),
            on_failure: None,
        }
    }

    /// Also sends failed-batch notices (JSON) to an SQS queue, like an on-failure destination.
    pub fn with_on_failure_queue(mut self, queue: OnFailureQueue) -> Self {
        self.on_failure = Some(queue);
        self
    }

    pub fn config(&self) -> &StreamPollerConfig {
        &self.config
    }

    /// Delivers batches until the stream has nothing new and nothing left to retry.
    pub async fn drain<F, Fut, E>(
        &mut self,
        mut handler: F,
    ) -> Result<StreamDrainReport, StreamPollerError>
    where
        F: FnMut(Event) -> Fut,
        Fut: Future<Output = Result<DynamoDbEventResponse, E>>,
        E: std::fmt::Display,
    {
        let mut report = StreamDrainReport::default();
        while self.step(&mut handler, &mut report, false).await? {}
        Ok(report)
    }

    /// One round: reads what the stream has now and delivers at most one batch per shard.
    pub async fn poll_once<F, Fut, E>(
        &mut self,
        mut handler: F,
    ) -> Result<StreamDrainReport, StreamPollerError>
    where
        F: FnMut(Event) -> Fut,
        Fut: Future<Output = Result<DynamoDbEventResponse, E>>,
        E: std::fmt::Display,
    {
        let mut report = StreamDrainReport::default();
        self.step(&mut handler, &mut report, false).await?;
        Ok(report)
    }

    /// Polls until `stop` resolves (checking it between batches), then returns what happened.
    pub async fn run_until<F, Fut, E, S>(
        &mut self,
        mut handler: F,
        stop: S,
    ) -> Result<StreamDrainReport, StreamPollerError>
    where
        F: FnMut(Event) -> Fut,
        Fut: Future<Output = Result<DynamoDbEventResponse, E>>,
        E: std::fmt::Display,
        S: Future<Output = ()>,
    {
        let mut report = StreamDrainReport::default();
        tokio::pin!(stop);
        loop {
            let step = self.step(&mut handler, &mut report, true);
            let delivered = tokio::select! {
                _ = &mut stop => return Ok(report),
                delivered = step => delivered?,
            };
            if !delivered {
                tokio::select! {
                    _ = &mut stop => return Ok(report),
                    _ = tokio::time::sleep(self.config.idle_poll_interval) => {}
                }
            }
        }
    }

    /// One round over the shards: fill buffers, deliver one batch per shard that has records.
    /// Returns whether anything was delivered.
    async fn step<F, Fut, E>(
        &mut self,
        handler: &mut F,
        report: &mut StreamDrainReport,
        wait_for_window: bool,
    ) -> Result<bool, StreamPollerError>
    where
        F: FnMut(Event) -> Fut,
        Fut: Future<Output = Result<DynamoDbEventResponse, E>>,
        E: std::fmt::Display,
    {
        if self.shards.is_empty() {
            self.discover_shards().await?;
        }
        let mut delivered = false;
        for index in 0..self.shards.len() {
            self.fill(index).await?;
            if wait_for_window
                && self.shards[index].buffer.len() < self.config.batch_size
                && !self.config.batching_window.is_zero()
                && !self.shards[index].buffer.is_empty()
            {
                tokio::time::sleep(self.config.batching_window).await;
                self.fill(index).await?;
            }
            if self.shards[index].buffer.is_empty() {
                continue;
            }
            delivered = true;
            self.deliver(index, handler, report).await?;
        }
        Ok(delivered)
    }

    async fn discover_shards(&mut self) -> Result<(), StreamPollerError> {
        let description = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .map_err(|e| request_error("DescribeStream")(Box::new(e)))?;
        let shard_ids: Vec<String> = description
            .stream_description()
            .map(|d| d.shards())
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.shard_id().map(str::to_owned))
            .collect();
        if shard_ids.is_empty() {
            return Err(StreamPollerError::NoShards);
        }
        let iterator_type = if self.config.trim_horizon {
            ShardIteratorType::TrimHorizon
        } else {
            ShardIteratorType::Latest
        };
        for id in shard_ids {
            let iterator = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(&id)
                .shard_iterator_type(iterator_type.clone())
                .send()
                .await
                .map_err(|e| request_error("GetShardIterator")(Box::new(e)))?
                .shard_iterator;
            self.shards.push(Shard {
                id,
                iterator,
                buffer: VecDeque::new(),
                failures: 0,
            });
        }
        Ok(())
    }

    /// Reads until the shard's buffer holds a batch or the shard has nothing more for now.
    async fn fill(&mut self, index: usize) -> Result<(), StreamPollerError> {
        let batch_size = self.config.batch_size;
        let stream_arn = self.stream_arn.clone();
        let shard = &mut self.shards[index];
        while shard.buffer.len() < batch_size {
            let Some(iterator) = shard.iterator.clone() else {
                return Ok(());
            };
            let limit = i32::try_from(batch_size - shard.buffer.len())
                .unwrap_or(1000)
                .clamp(1, 1000);
            let output = self
                .client
                .get_records()
                .shard_iterator(iterator)
                .limit(limit)
                .send()
                .await
                .map_err(|e| request_error("GetRecords")(Box::new(e)))?;
            shard.iterator = output.next_shard_iterator.clone();
            let records = output.records.unwrap_or_default();
            if records.is_empty() {
                return Ok(());
            }
            shard
                .buffer
                .extend(records.iter().map(|r| to_event_record(r, &stream_arn)));
        }
        Ok(())
    }

    async fn deliver<F, Fut, E>(
        &mut self,
        index: usize,
        handler: &mut F,
        report: &mut StreamDrainReport,
    ) -> Result<(), StreamPollerError>
    where
        F: FnMut(Event) -> Fut,
        Fut: Future<Output = Result<DynamoDbEventResponse, E>>,
        E: std::fmt::Display,
    {
        let batch_size = self.config.batch_size;
        let shard = &mut self.shards[index];
        let batch: Vec<EventRecord> = shard.buffer.iter().take(batch_size).cloned().collect();
        let mut event = Event::default();
        event.records = batch.clone();
        report.invocations += 1;
        report.records_delivered += batch.len();

        let (acknowledged, condition) = match handler(event).await {
            Ok(response) => match checkpoint(&batch, &response) {
                Checkpoint::All => (batch.len(), None),
                Checkpoint::At(position) => (position, Some("checkpoint".to_owned())),
                Checkpoint::Invalid(why) => (0, Some(why)),
            },
            Err(err) => (0, Some(format!("handler error: {err}"))),
        };
        shard.buffer.drain(..acknowledged);
        report.records_processed += acknowledged;
        let Some(condition) = condition else {
            shard.failures = 0;
            return Ok(());
        };
        if acknowledged > 0 {
            // Progress: the retry budget applies to the new batch head.
            shard.failures = 0;
            return Ok(());
        }
        shard.failures += 1;
        tracing::debug!(shard = %shard.id, failures = shard.failures, %condition, "batch failed");
        if shard.failures <= self.config.maximum_retry_attempts {
            return Ok(());
        }
        let skipped: Vec<EventRecord> = shard
            .buffer
            .drain(..batch.len().min(shard.buffer.len()))
            .collect();
        let failed = FailedBatch {
            shard_id: shard.id.clone(),
            start_sequence_number: sequence_number(skipped.first()),
            end_sequence_number: sequence_number(skipped.last()),
            batch_size: skipped.len(),
            stream_arn: self.stream_arn.clone(),
            condition,
            attempts: shard.failures,
        };
        shard.failures = 0;
        tracing::warn!(?failed, "skipping a batch after its retries");
        if let Some(queue) = &self.on_failure {
            let body = serde_json::json!({"DDBStreamBatchInfo": &failed}).to_string();
            queue
                .client
                .send_message()
                .queue_url(&queue.queue_url)
                .message_body(body)
                .send()
                .await
                .map_err(|e| StreamPollerError::OnFailure(Box::new(e)))?;
        }
        report.failed_batches.push(failed);
        Ok(())
    }
}

enum Checkpoint {
    All,
    /// Records before this position are done.
    At(usize),
    Invalid(String),
}

/// Lambda's reading of a response: the lowest reported sequence number is the checkpoint.
fn checkpoint(batch: &[EventRecord], response: &DynamoDbEventResponse) -> Checkpoint {
    let mut lowest: Option<usize> = None;
    for failure in &response.batch_item_failures {
        let Some(id) = failure.item_identifier.as_deref().filter(|s| !s.is_empty()) else {
            return Checkpoint::Invalid("empty itemIdentifier".into());
        };
        let Some(position) = batch
            .iter()
            .position(|r| r.change.sequence_number.as_deref() == Some(id))
        else {
            return Checkpoint::Invalid(format!("itemIdentifier {id} is not in the batch"));
        };
        lowest = Some(lowest.map_or(position, |p| p.min(position)));
    }
    match lowest {
        None => Checkpoint::All,
        Some(position) => Checkpoint::At(position),
    }
}

fn sequence_number(record: Option<&EventRecord>) -> String {
    record
        .and_then(|r| r.change.sequence_number.clone())
        .unwrap_or_default()
}

fn item(
    image: Option<
        &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
    >,
) -> serde_dynamo::Item {
    image
        .map(|m| serde_dynamo::Item::from(m.clone()))
        .unwrap_or_default()
}

/// Converts an SDK stream record into the Lambda event record the handler receives.
pub fn to_event_record(record: &Record, stream_arn: &str) -> EventRecord {
    let mut event = EventRecord::default();
    event.event_id = record.event_id().unwrap_or_default().to_owned();
    event.event_name = record
        .event_name()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    event.event_source = Some(record.event_source().unwrap_or("aws:dynamodb").to_owned());
    event.event_version = record.event_version().map(str::to_owned);
    event.aws_region = record.aws_region().unwrap_or("us-east-1").to_owned();
    event.event_source_arn = Some(stream_arn.to_owned());
    event.table_name = stream_arn
        .split(":table/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(str::to_owned);
    let mut change = StreamRecord::default();
    if let Some(ddb) = record.dynamodb() {
        // Lambda delivers whole seconds; moto's fraction would be misread anyway.
        if let Some(at) = ddb.approximate_creation_date_time() {
            change.approximate_creation_date_time =
                chrono::DateTime::from_timestamp(at.secs(), 0).unwrap_or_default();
        }
        change.keys = item(ddb.keys());
        change.new_image = item(ddb.new_image());
        change.old_image = item(ddb.old_image());
        change.sequence_number = ddb.sequence_number().map(str::to_owned);
        change.size_bytes = ddb.size_bytes().unwrap_or_default();
        change.stream_view_type = ddb.stream_view_type().map(|t| match t.as_str() {
            "NEW_IMAGE" => StreamViewType::NewImage,
            "OLD_IMAGE" => StreamViewType::OldImage,
            "KEYS_ONLY" => StreamViewType::KeysOnly,
            _ => StreamViewType::NewAndOldImages,
        });
    }
    event.change = change;
    event
}
