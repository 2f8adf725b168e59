//! SQS adapter: enqueue export messages, back off and dead-letter received ones.
//!
//! [`SqsExportQueue`] sends with `SendMessageBatch`, which can answer 200 and still refuse some
//! entries; refused entries that are not the sender's fault are sent again a few times, and
//! whatever is left is reported per message so the stream filter can checkpoint exactly.

use crate::error::ErrorClass;
use crate::message::{ExportMessage, Lane};
use crate::ports::{ExportQueue, QueueError};
use async_trait::async_trait;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use std::time::Duration;

/// SQS accepts at most ten entries per batch call.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// Calls per group of ten: the first and up to two retries of what is still unsent.
const SEND_ROUNDS: u32 = 3;
/// Pause before the first retry, doubled before each further one; short because the stream
/// filter's invocation is waiting and the stream retries the record anyway.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Message attribute with the [`crate::message::ExportReason`] (for routing and DLQ triage).
pub const ATTRIBUTE_REASON: &str = "reason";
/// Message attribute with the customer id (an opaque id, not contact data).
pub const ATTRIBUTE_CUSTOMER_ID: &str = "customer_id";

/// Error codes that retrying cannot fix (the queue is missing, rights or the KMS key are
/// missing, the request is malformed).
const PERMANENT_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "InvalidAddress",
    "InvalidSecurity",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "MissingParameter",
    "InvalidMessageContents",
    "InvalidBatchEntryId",
    "BatchEntryIdsNotDistinct",
    "BatchRequestTooLong",
    "EmptyBatchRequest",
    "TooManyEntriesInBatchRequest",
    "UnsupportedOperation",
    "KmsAccessDenied",
    "KmsDisabled",
    "KmsInvalidKeyUsage",
    "KmsInvalidState",
    "KmsNotFound",
    "KmsOptInRequired",
    "ValidationException",
];

/// Classifies a failed SQS call: throttling, timeouts, 5xx and network failures are transient;
/// access, a missing queue and invalid requests are permanent.
pub fn sqs_error_class<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> ErrorClass {
    match err {
        SdkError::ConstructionFailure(_) => ErrorClass::Permanent,
        SdkError::ServiceError(service) => {
            let code = service.err().code();
            if code.is_some_and(|c| PERMANENT_CODES.contains(&c)) {
                ErrorClass::Permanent
            } else if code.is_some() || service.raw().status().is_server_error() {
                // Named throttling codes (RequestThrottled, KmsThrottled, ThrottlingException)
                // and unknown codes: treat as the service's momentary trouble.
                ErrorClass::Transient
            } else if service.raw().status().is_client_error() {
                ErrorClass::Permanent
            } else {
                ErrorClass::Transient
            }
        }
        // Timeouts, dispatch (network) failures, unreadable responses.
        _ => ErrorClass::Transient,
    }
}

/// The priority and bulk export queues.
#[derive(Debug, Clone)]
pub struct SqsExportQueue {
    client: Client,
    priority_url: String,
    bulk_url: String,
}

impl SqsExportQueue {
    pub fn new(
        client: Client,
        priority_url: impl Into<String>,
        bulk_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            priority_url: priority_url.into(),
            bulk_url: bulk_url.into(),
        }
    }

    /// The queue URL of a lane.
    pub fn url(&self, lane: Lane) -> &str {
        match lane {
            Lane::Priority => &self.priority_url,
            Lane::Bulk => &self.bulk_url,
        }
    }

    /// Sends one group (≤ 10) with bounded retries of the entries SQS did not take.
    /// `results[i]` is `None` until entry `i` is settled.
    async fn send_group(
        &self,
        lane: Lane,
        entries: &[(usize, SendMessageBatchRequestEntry)],
        results: &mut [Option<Result<(), QueueError>>],
    ) -> Result<(), QueueError> {
        let mut unsent: Vec<&(usize, SendMessageBatchRequestEntry)> = entries.iter().collect();
        let mut delay = FIRST_RETRY_DELAY;
        for round in 1..=SEND_ROUNDS {
            let last_round = round == SEND_ROUNDS;
            let request = self
                .client
                .send_message_batch()
                .queue_url(self.url(lane))
                .set_entries(Some(unsent.iter().map(|(_, e)| e.clone()).collect()));
            let output = match request.send().await {
                Ok(output) => output,
                Err(err) => {
                    let class = sqs_error_class(&err);
                    if last_round || !class.is_retryable() {
                        return Err(request_error(lane, class, err));
                    }
                    tracing::warn!(?lane, %class, round, "SendMessageBatch failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    continue;
                }
            };
            for ok in output.successful() {
                if let Some(index) = entry_index(ok.id(), results.len()) {
                    results[index] = Some(Ok(()));
                }
            }
            let mut retry = Vec::new();
            for failed in output.failed() {
                let Some(index) = entry_index(failed.id(), results.len()) else {
                    continue;
                };
                let class = if failed.sender_fault() {
                    ErrorClass::Permanent
                } else {
                    ErrorClass::Transient
                };
                if class.is_retryable() && !last_round {
                    if let Some(entry) = unsent.iter().find(|(i, _)| *i == index) {
                        retry.push(*entry);
                    }
                    continue;
                }
                tracing::warn!(
                    ?lane,
                    code = failed.code(),
                    sender_fault = failed.sender_fault(),
                    "SQS refused an export message"
                );
                results[index] = Some(Err(QueueError::Rejected {
                    lane,
                    code: failed.code().to_owned(),
                    sender_fault: failed.sender_fault(),
                    class,
                }));
            }
            if retry.is_empty() {
                return Ok(());
            }
            tracing::warn!(
                ?lane,
                count = retry.len(),
                round,
                "retrying refused entries"
            );
            unsent = retry;
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        Ok(())
    }
}

fn request_error(
    lane: Lane,
    class: ErrorClass,
    err: SdkError<SendMessageBatchError, HttpResponse>,
) -> QueueError {
    QueueError::Request {
        lane,
        class,
        source: Box::new(err),
    }
}

/// Entry ids are the message's index in the caller's batch: short and within SQS's
/// `[A-Za-z0-9_-]{1,80}`.
fn entry_index(id: &str, len: usize) -> Option<usize> {
    id.parse::<usize>().ok().filter(|i| *i < len)
}

fn encode_error(err: impl std::error::Error + Send + Sync + 'static) -> QueueError {
    QueueError::Encode {
        source: Box::new(err),
    }
}

fn entry(
    index: usize,
    message: &ExportMessage,
) -> Result<SendMessageBatchRequestEntry, QueueError> {
    let body = serde_json::to_string(message).map_err(encode_error)?;
    SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(body)
        .message_attributes(
            ATTRIBUTE_REASON,
            string_attribute(message.reason.as_str()).map_err(encode_error)?,
        )
        .message_attributes(
            ATTRIBUTE_CUSTOMER_ID,
            string_attribute(&message.customer_id).map_err(encode_error)?,
        )
        .build()
        .map_err(encode_error)
}

#[async_trait]
impl ExportQueue for SqsExportQueue {
    async fn enqueue(
        &self,
        lane: Lane,
        batch: &[ExportMessage],
    ) -> Result<Vec<Result<(), QueueError>>, QueueError> {
        let mut results: Vec<Option<Result<(), QueueError>>> =
            std::iter::repeat_with(|| None).take(batch.len()).collect();
        let mut entries = Vec::with_capacity(batch.len());
        for (index, message) in batch.iter().enumerate() {
            match entry(index, message) {
                Ok(e) => entries.push((index, e)),
                Err(err) => results[index] = Some(Err(err)),
            }
        }
        for group in entries.chunks(MAX_BATCH_ENTRIES) {
            self.send_group(lane, group, &mut results).await?;
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(QueueError::MissingResult { lane })))
            .collect())
    }
}

// --- Exporter side: control of received messages (owned by the exporter; appended here). ---

/// Backs off and dead-letters messages the exporter received, by lane.
#[derive(Debug, Clone)]
pub struct SqsMessageControl {
    client: aws_sdk_sqs::Client,
    priority_queue_url: String,
    bulk_queue_url: String,
    dlq_url: String,
}

impl SqsMessageControl {
    pub fn new(
        client: aws_sdk_sqs::Client,
        priority_queue_url: impl Into<String>,
        bulk_queue_url: impl Into<String>,
        dlq_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            priority_queue_url: priority_queue_url.into(),
            bulk_queue_url: bulk_queue_url.into(),
            dlq_url: dlq_url.into(),
        }
    }

    fn queue_url(&self, lane: crate::message::Lane) -> &str {
        match lane {
            crate::message::Lane::Priority => &self.priority_queue_url,
            crate::message::Lane::Bulk => &self.bulk_queue_url,
        }
    }
}

fn string_attribute(
    value: &str,
) -> Result<aws_sdk_sqs::types::MessageAttributeValue, aws_sdk_sqs::error::BuildError> {
    aws_sdk_sqs::types::MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
}

#[async_trait::async_trait]
impl crate::ports::MessageControl for SqsMessageControl {
    async fn delay_retry(
        &self,
        lane: crate::message::Lane,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), crate::ports::MessageControlError> {
        let seconds = delay.min(crate::ports::MAX_VISIBILITY).as_secs();
        self.client
            .change_message_visibility()
            .queue_url(self.queue_url(lane))
            .receipt_handle(receipt_handle)
            // Below 43 200 after the cap, so the conversion cannot fail.
            .visibility_timeout(i32::try_from(seconds).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|err| crate::ports::MessageControlError::ChangeVisibility {
                lane,
                class: super::dynamodb::sdk_error_class(&err),
                source: Box::new(err),
            })?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        letter: &crate::ports::DeadLetter,
    ) -> Result<(), crate::ports::MessageControlError> {
        let build_error =
            |err: aws_sdk_sqs::error::BuildError| crate::ports::MessageControlError::DeadLetter {
                class: crate::error::ErrorClass::Permanent,
                source: Box::new(err),
            };
        // SQS rejects empty attribute values.
        let non_empty = |v: &str| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                v.to_owned()
            }
        };
        let mut attributes = vec![
            ("reason", letter.reason.as_str().to_owned()),
            ("error_class", letter.error_class.as_str().to_owned()),
            ("error_kind", non_empty(&letter.error_kind)),
            ("error_message", non_empty(&letter.error_message)),
            (
                "original_message_id",
                non_empty(&letter.original_message_id),
            ),
        ];
        if let Some(id) = letter.customer_id.as_deref().filter(|id| !id.is_empty()) {
            attributes.push(("customer_id", id.to_owned()));
        }
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(&letter.body);
        for (name, value) in attributes {
            request =
                request.message_attributes(name, string_attribute(&value).map_err(build_error)?);
        }
        request
            .send()
            .await
            .map_err(|err| crate::ports::MessageControlError::DeadLetter {
                class: super::dynamodb::sdk_error_class(&err),
                source: Box::new(err),
            })?;
        Ok(())
    }
}
