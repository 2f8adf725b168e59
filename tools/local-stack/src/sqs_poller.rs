//! Receives from an SQS queue in moto and feeds a handler the way Lambda's SQS event source
//! mapping does with `ReportBatchItemFailures`:
//! - every message not named in `batchItemFailures` is deleted; a handler error deletes none;
//! - failed messages are left alone: they come back after their visibility timeout (or whatever
//!   the handler set with `ChangeMessageVisibility`), and moto moves them to the DLQ on receive
//!   once `ApproximateReceiveCount` reaches the redrive policy's `maxReceiveCount`;
//! - an unknown or empty item identifier fails the whole batch, as in Lambda.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use aws_sdk_sqs::Client;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How messages are received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqsPollerConfig {
    /// At most 10 (one ReceiveMessage call).
    pub batch_size: i32,
    /// Overrides the queue's visibility timeout for received messages (tests use 1 s so failed
    /// messages come back quickly). `None`: the queue's own.
    pub visibility_timeout: Option<Duration>,
    /// Long-poll wait of one receive.
    pub wait_time: Duration,
}

impl Default for SqsPollerConfig {
    fn default() -> Self {
        Self {
            batch_size: i32::try_from(crate::spec::EXPORT_QUEUE_MAPPING.batch_size)
                .unwrap_or(10)
                .clamp(1, 10),
            visibility_timeout: None,
            wait_time: Duration::ZERO,
        }
    }
}

/// What one receive-and-handle round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqsPollReport {
    pub invocations: usize,
    pub received: usize,
    pub deleted: usize,
    /// Message ids left for redelivery.
    pub failed: Vec<String>,
    /// Rounds whose handler returned an error.
    pub handler_errors: usize,
}

impl SqsPollReport {
    fn add(&mut self, other: SqsPollReport) {
        self.invocations += other.invocations;
        self.received += other.received;
        self.deleted += other.deleted;
        self.failed.extend(other.failed);
        self.handler_errors += other.handler_errors;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SqsPollerError {
    #[error("{operation} on {queue_url} failed")]
    Request {
        operation: &'static str,
        queue_url: String,
        #[source]
        source: BoxError,
    },
    #[error("{queue_url} still had {remaining} messages after {waited:?}")]
    NotDrained {
        queue_url: String,
        remaining: u64,
        waited: Duration,
    },
}

/// A Lambda-like consumer of one queue.
#[derive(Debug, Clone)]
pub struct SqsPoller {
    client: Client,
    queue_url: String,
    queue_arn: String,
    config: SqsPollerConfig,
}

impl SqsPoller {
    /// Looks up the queue's ARN (the events carry it as `eventSourceARN`).
    pub async fn new(
        client: Client,
        queue_url: impl Into<String>,
        config: SqsPollerConfig,
    ) -> Result<Self, SqsPollerError> {
        let queue_url = queue_url.into();
        let queue_arn = client
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| SqsPollerError::Request {
                operation: "GetQueueAttributes",
                queue_url: queue_url.clone(),
                source: Box::new(e),
            })?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_default();
        Ok(Self {
            client,
            queue_url,
            queue_arn,
            config,
        })
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    fn error(&self, operation: &'static str) -> impl FnOnce(BoxError) -> SqsPollerError + '_ {
        move |source| SqsPollerError::Request {
            operation,
            queue_url: self.queue_url.clone(),
            source,
        }
    }

    /// One ReceiveMessage; if anything arrived, one handler call and the deletes.
    pub async fn poll_once<F, Fut, E>(&self, handler: F) -> Result<SqsPollReport, SqsPollerError>
    where
        F: FnOnce(SqsEvent) -> Fut,
        Fut: Future<Output = Result<SqsBatchResponse, E>>,
        E: std::fmt::Display,
    {
        let mut request = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.config.batch_size.clamp(1, 10))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .wait_time_seconds(secs(self.config.wait_time));
        if let Some(visibility) = self.config.visibility_timeout {
            request = request.visibility_timeout(secs(visibility));
        }
        let messages = request
            .send()
            .await
            .map_err(|e| self.error("ReceiveMessage")(Box::new(e)))?
            .messages
            .unwrap_or_default();
        let mut report = SqsPollReport::default();
        if messages.is_empty() {
            return Ok(report);
        }
        report.invocations = 1;
        report.received = messages.len();

        let mut event = SqsEvent::default();
        event.records = messages.iter().map(|m| self.to_sqs_message(m)).collect();
        let ids: Vec<String> = messages
            .iter()
            .map(|m| m.message_id().unwrap_or_default().to_owned())
            .collect();

        let failed: BTreeSet<String> = match handler(event).await {
            Ok(response) => {
                let named: BTreeSet<String> = response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.clone())
                    .collect();
                if named.iter().any(|id| id.is_empty() || !ids.contains(id)) {
                    tracing::warn!("invalid itemIdentifier; the whole batch fails");
                    ids.iter().cloned().collect()
                } else {
                    named
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "handler failed; the whole batch stays");
                report.handler_errors = 1;
                ids.iter().cloned().collect()
            }
        };

        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !failed.contains(m.message_id().unwrap_or_default()))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        if !entries.is_empty() {
            let output = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| self.error("DeleteMessageBatch")(Box::new(e)))?;
            report.deleted = output.successful().len();
            for failure in output.failed() {
                tracing::warn!(
                    code = failure.code(),
                    "delete failed; the message will return"
                );
            }
        }
        report.failed = failed.into_iter().collect();
        Ok(report)
    }

    /// Polls until the queue holds no message, visible or in flight, calling `handler` for each
    /// batch; gives up after `max_wait` with [`SqsPollerError::NotDrained`].
    pub async fn drain<F, Fut, E>(
        &self,
        mut handler: F,
        max_wait: Duration,
    ) -> Result<SqsPollReport, SqsPollerError>
    where
        F: FnMut(SqsEvent) -> Fut,
        Fut: Future<Output = Result<SqsBatchResponse, E>>,
        E: std::fmt::Display,
    {
        let started = Instant::now();
        let mut report = SqsPollReport::default();
        loop {
            let round = self.poll_once(&mut handler).await?;
            let received = round.received;
            report.add(round);
            if received > 0 {
                continue;
            }
            let remaining = self.approximate_count().await?;
            if remaining == 0 {
                return Ok(report);
            }
            if started.elapsed() >= max_wait {
                return Err(SqsPollerError::NotDrained {
                    queue_url: self.queue_url.clone(),
                    remaining,
                    waited: started.elapsed(),
                });
            }
            // In-flight messages come back after their visibility timeout.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Visible + in flight + delayed.
    pub async fn approximate_count(&self) -> Result<u64, SqsPollerError> {
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| self.error("GetQueueAttributes")(Box::new(e)))?
            .attributes
            .unwrap_or_default();
        Ok(attributes
            .values()
            .filter_map(|v| v.parse::<u64>().ok())
            .sum())
    }

    fn to_sqs_message(&self, message: &Message) -> SqsMessage {
        let mut out = SqsMessage::default();
        out.message_id = message.message_id().map(str::to_owned);
        out.receipt_handle = message.receipt_handle().map(str::to_owned);
        out.body = message.body().map(str::to_owned);
        out.md5_of_body = message.md5_of_body().map(str::to_owned);
        out.md5_of_message_attributes = message.md5_of_message_attributes().map(str::to_owned);
        out.attributes = message
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        out.message_attributes = message
            .message_attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| {
                        let mut attribute = SqsMessageAttribute::default();
                        attribute.data_type = Some(v.data_type().to_owned());
                        attribute.string_value = v.string_value().map(str::to_owned);
                        attribute.string_list_values = v.string_list_values().to_vec();
                        (k.clone(), attribute)
                    })
                    .collect::<HashMap<_, _>>()
            })
            .unwrap_or_default();
        out.event_source = Some("aws:sqs".to_owned());
        out.event_source_arn = Some(self.queue_arn.clone());
        out.aws_region = Some("us-east-1".to_owned());
        out
    }
}

fn secs(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}
