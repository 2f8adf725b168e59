//! Moving dead letters back to their source queue (issue 5), for the operator's `redrive`.
//!
//! [`redrive`] first asks SQS to do it: `StartMessageMoveTask` with the DLQ as source and no
//! destination, which sends each message back to the queue it was dead-lettered from. The task
//! runs asynchronously inside SQS ([`RedriveStrategy::MoveTask`] carries its handle;
//! `ListMessageMoveTasks` shows its progress). Where SQS does not offer it (moto answers HTTP
//! 500; [`is_move_task_unsupported`]), and for a dry run or a count limit, which the task cannot
//! do, messages are moved by hand:
//!
//! 1. receive up to ten from the DLQ, hidden for [`HOLD_VISIBILITY`];
//! 2. send each to its source queue (body and attributes, minus the exporter's dead-letter
//!    triage attributes);
//! 3. delete it from the DLQ only after that send succeeded.
//!
//! An interruption between 2 and 3 leaves a copy in both queues: a duplicate, never a loss (the
//! exporter is idempotent: it reads the current row and skips versions 1C already holds).
//! Messages that cannot be routed or sent stay in the DLQ and are made visible again at the end.
//!
//! The source queue of a message, in order:
//! - the destination given explicitly ([`Destination::Queue`]; the CLI does not offer one);
//! - the `DeadLetterQueueSourceArn` system attribute, which AWS sets when its redrive policy
//!   moves a message;
//! - the DLQ's only source queue (`ListDeadLetterSourceQueues`: the queues whose
//!   `RedrivePolicy` names it);
//! - with several source queues, the lane of the export message in the body
//!   ([`crate::message::ExportReason::lane`]), matched by queue name suffix
//!   ([`PRIORITY_QUEUE_SUFFIX`], [`BULK_QUEUE_SUFFIX`], as the template names the queues). The
//!   exporter serves both lanes alike, so a lane guess can only cost priority, never correctness.
//!
//! Otherwise the message is reported [`EntryOutcome::Unroutable`] and left where it is.
//! Reports list message ids, customer ids and reasons, never bodies.

use crate::adapters::sqs::sqs_error_class;
use crate::error::{Classify, ErrorClass};
use crate::message::{ExportMessage, Lane};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use aws_sdk_sqs::Client;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long received DLQ messages stay hidden while a manual move or a dry run works through
/// the queue; they become visible again at the end, or by themselves after this.
pub const HOLD_VISIBILITY: Duration = Duration::from_secs(120);

/// Name suffix of the priority export queue (`<stack>-export-priority`).
pub const PRIORITY_QUEUE_SUFFIX: &str = "export-priority";
/// Name suffix of the bulk export queue (`<stack>-export-bulk`).
pub const BULK_QUEUE_SUFFIX: &str = "export-bulk";

/// Attributes the exporter adds when it dead-letters a message; they describe the failure, not
/// the message, so they do not travel back.
const TRIAGE_ATTRIBUTES: &[&str] = &[
    "error_class",
    "error_kind",
    "error_message",
    "original_message_id",
];
/// `reason` values of the exporter's dead letters (the filter's `reason` values are kept).
const DEAD_LETTER_REASONS: &[&str] = &["malformed_message", "permanent_failure"];

/// SQS receives at most ten messages per call.
const RECEIVE_MAX: u64 = 10;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedriveOptions {
    /// Count and list what would move; change nothing.
    pub dry_run: bool,
    /// Handle at most this many messages (forces the manual move).
    pub limit: Option<u64>,
}

/// Where the messages go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Destination {
    /// Each message back to the queue it came from (see the module docs).
    #[default]
    OriginalSource,
    /// Every message to this queue URL.
    Queue(String),
}

/// How the redrive was carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveStrategy {
    /// SQS moves the messages asynchronously.
    MoveTask { task_handle: String },
    /// Received, sent and deleted one by one.
    Manual,
    /// Nothing was changed.
    DryRun,
}

/// What happened to one message (or would happen, in a dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryOutcome {
    WouldMove,
    Moved,
    /// Sent to the source, but the DLQ copy could not be deleted: it will be seen again.
    MovedNotDeleted,
    /// The source queue is unknown; the message stays in the DLQ.
    Unroutable,
    /// Sending failed; the message stays in the DLQ.
    SendFailed(ErrorClass),
}

/// One message of the report: identifiers and reasons only, never the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedriveEntry {
    pub message_id: String,
    pub customer_id: Option<String>,
    /// The exporter's dead-letter reason, or `exhausted_retries` for a message the queue's
    /// redrive policy moved.
    pub reason: String,
    pub error_kind: Option<String>,
    pub destination: Option<String>,
    pub outcome: EntryOutcome,
}

/// What a redrive did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedriveReport {
    pub strategy: RedriveStrategy,
    /// `ApproximateNumberOfMessages` of the DLQ before the redrive.
    pub approximate_messages: u64,
    /// Moved to their source (including [`EntryOutcome::MovedNotDeleted`]).
    pub moved: u64,
    /// Left in the DLQ (unroutable or not sent).
    pub left: u64,
    /// One per message handled (or, in a dry run, seen).
    pub entries: Vec<RedriveEntry>,
}

/// A redrive could not run.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("cannot read the attributes of queue {queue_url} ({class})")]
    QueueAttributes {
        queue_url: String,
        class: ErrorClass,
        #[source]
        source: BoxError,
    },

    #[error("queue {queue_url} reported no {attribute}")]
    MissingAttribute {
        queue_url: String,
        attribute: &'static str,
    },

    #[error("StartMessageMoveTask on the DLQ failed ({class})")]
    MoveTask {
        class: ErrorClass,
        #[source]
        source: BoxError,
    },

    #[error("cannot list the DLQ's source queues ({class})")]
    SourceQueues {
        class: ErrorClass,
        #[source]
        source: BoxError,
    },

    #[error("cannot receive from the DLQ ({class})")]
    Receive {
        class: ErrorClass,
        #[source]
        source: BoxError,
    },
}

impl RedriveError {
    /// A short stable name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RedriveError::QueueAttributes { .. } => "queue_attributes",
            RedriveError::MissingAttribute { .. } => "missing_attribute",
            RedriveError::MoveTask { .. } => "move_task",
            RedriveError::SourceQueues { .. } => "source_queues",
            RedriveError::Receive { .. } => "receive",
        }
    }
}

impl Classify for RedriveError {
    fn class(&self) -> ErrorClass {
        match self {
            RedriveError::QueueAttributes { class, .. }
            | RedriveError::MoveTask { class, .. }
            | RedriveError::SourceQueues { class, .. }
            | RedriveError::Receive { class, .. } => *class,
            RedriveError::MissingAttribute { .. } => ErrorClass::Permanent,
        }
    }
}

/// Moves the DLQ's messages back to their source queues (see the module docs).
pub async fn redrive(
    sqs: &Client,
    dlq_url: &str,
    options: &RedriveOptions,
) -> Result<RedriveReport, RedriveError> {
    redrive_with(sqs, dlq_url, &Destination::OriginalSource, options).await
}

/// [`redrive`] with an explicit destination.
pub async fn redrive_with(
    sqs: &Client,
    dlq_url: &str,
    destination: &Destination,
    options: &RedriveOptions,
) -> Result<RedriveReport, RedriveError> {
    let dlq = queue_attributes(sqs, dlq_url).await?;
    if !options.dry_run && options.limit.is_none() {
        let destination_arn = match destination {
            Destination::OriginalSource => None,
            Destination::Queue(url) => Some(queue_attributes(sqs, url).await?.arn),
        };
        let started = sqs
            .start_message_move_task()
            .source_arn(&dlq.arn)
            .set_destination_arn(destination_arn)
            .send()
            .await;
        match started {
            Ok(output) => {
                return Ok(RedriveReport {
                    strategy: RedriveStrategy::MoveTask {
                        task_handle: output.task_handle.unwrap_or_default(),
                    },
                    approximate_messages: dlq.approximate_messages,
                    moved: 0,
                    left: 0,
                    entries: Vec::new(),
                })
            }
            Err(err) if is_move_task_unsupported(&err) => {
                tracing::info!("StartMessageMoveTask is not available; moving messages by hand");
            }
            Err(err) => {
                return Err(RedriveError::MoveTask {
                    class: sqs_error_class(&err),
                    source: Box::new(err),
                })
            }
        }
    }
    let mut mover = Mover {
        sqs,
        dlq_url,
        destination,
        sources: None,
        urls_by_arn: HashMap::new(),
    };
    mover.run(options, dlq.approximate_messages).await
}

/// Whether `StartMessageMoveTask` failed because the service does not offer it (rather than
/// because of this request): a 5xx (moto answers 500) or an unsupported-operation code.
pub fn is_move_task_unsupported<E: aws_sdk_sqs::error::ProvideErrorMetadata>(
    err: &aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>,
) -> bool {
    const UNSUPPORTED: &[&str] = &[
        "UnsupportedOperation",
        "AWS.SimpleQueueService.UnsupportedOperation",
        "InvalidAction",
        "NotImplemented",
        "UnknownOperationException",
    ];
    match err {
        aws_sdk_sqs::error::SdkError::ServiceError(service) => {
            service.raw().status().is_server_error()
                || service
                    .err()
                    .code()
                    .is_some_and(|c| UNSUPPORTED.contains(&c))
        }
        _ => false,
    }
}

struct QueueInfo {
    arn: String,
    approximate_messages: u64,
}

async fn queue_attributes(sqs: &Client, queue_url: &str) -> Result<QueueInfo, RedriveError> {
    let output = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|err| RedriveError::QueueAttributes {
            queue_url: queue_url.to_owned(),
            class: sqs_error_class(&err),
            source: Box::new(err),
        })?;
    let attributes = output.attributes.unwrap_or_default();
    let arn = attributes
        .get(&QueueAttributeName::QueueArn)
        .cloned()
        .ok_or_else(|| RedriveError::MissingAttribute {
            queue_url: queue_url.to_owned(),
            attribute: "QueueArn",
        })?;
    let approximate_messages = attributes
        .get(&QueueAttributeName::ApproximateNumberOfMessages)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Ok(QueueInfo {
        arn,
        approximate_messages,
    })
}

/// The manual move (and the dry run).
struct Mover<'a> {
    sqs: &'a Client,
    dlq_url: &'a str,
    destination: &'a Destination,
    /// The DLQ's source queue URLs, listed on first need.
    sources: Option<Vec<String>>,
    urls_by_arn: HashMap<String, Option<String>>,
}

impl Mover<'_> {
    async fn run(
        &mut self,
        options: &RedriveOptions,
        approximate_messages: u64,
    ) -> Result<RedriveReport, RedriveError> {
        let mut report = RedriveReport {
            strategy: if options.dry_run {
                RedriveStrategy::DryRun
            } else {
                RedriveStrategy::Manual
            },
            approximate_messages,
            moved: 0,
            left: 0,
            entries: Vec::new(),
        };
        let mut seen: HashSet<String> = HashSet::new();
        // Receipt handles of messages left in the DLQ, made visible again at the end.
        let mut held: Vec<String> = Vec::new();
        let result = self.work(options, &mut report, &mut seen, &mut held).await;
        self.release(&held).await;
        result.map(|()| report)
    }

    async fn work(
        &mut self,
        options: &RedriveOptions,
        report: &mut RedriveReport,
        seen: &mut HashSet<String>,
        held: &mut Vec<String>,
    ) -> Result<(), RedriveError> {
        loop {
            let handled = report.entries.len() as u64;
            let remaining = options
                .limit
                .map_or(RECEIVE_MAX, |l| l.saturating_sub(handled));
            if remaining == 0 {
                return Ok(());
            }
            let messages = self.receive(remaining.min(RECEIVE_MAX)).await?;
            let mut new = 0;
            for message in messages {
                let (Some(id), Some(receipt)) =
                    (message.message_id.clone(), message.receipt_handle.clone())
                else {
                    continue;
                };
                if !seen.insert(id.clone()) {
                    // Its hold ran out while we worked (a long run): already reported.
                    held.push(receipt);
                    continue;
                }
                new += 1;
                let destination = self.destination_of(&message).await?;
                let mut entry = describe(&message, id, destination.clone());
                entry.outcome = match (&destination, options.dry_run) {
                    (None, _) => EntryOutcome::Unroutable,
                    (Some(_), true) => EntryOutcome::WouldMove,
                    (Some(url), false) => self.move_one(&message, url, &receipt).await,
                };
                match entry.outcome {
                    EntryOutcome::Moved | EntryOutcome::MovedNotDeleted => report.moved += 1,
                    EntryOutcome::WouldMove => held.push(receipt),
                    EntryOutcome::Unroutable | EntryOutcome::SendFailed(_) => {
                        report.left += 1;
                        held.push(receipt);
                    }
                }
                report.entries.push(entry);
            }
            if new == 0 {
                return Ok(());
            }
        }
    }

    async fn receive(&self, max: u64) -> Result<Vec<Message>, RedriveError> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(self.dlq_url)
            .max_number_of_messages(i32::try_from(max).unwrap_or(10))
            .visibility_timeout(i32::try_from(HOLD_VISIBILITY.as_secs()).unwrap_or(120))
            // Long polling asks every SQS server, so an empty answer means an empty queue.
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::DeadLetterQueueSourceArn)
            .send()
            .await
            .map_err(|err| RedriveError::Receive {
                class: sqs_error_class(&err),
                source: Box::new(err),
            })?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Sends, then deletes; never deletes what was not sent.
    async fn move_one(&self, message: &Message, url: &str, receipt: &str) -> EntryOutcome {
        let attributes: HashMap<String, MessageAttributeValue> = message
            .message_attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|(name, value)| travels_back(name, value))
            .collect();
        let sent = self
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(message.body.clone().unwrap_or_default())
            .set_message_attributes((!attributes.is_empty()).then_some(attributes))
            .send()
            .await;
        if let Err(err) = sent {
            let class = sqs_error_class(&err);
            tracing::warn!(error = %err, %class, "cannot send a dead letter back; it stays in the DLQ");
            return EntryOutcome::SendFailed(class);
        }
        match self
            .sqs
            .delete_message()
            .queue_url(self.dlq_url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => EntryOutcome::Moved,
            Err(err) => {
                tracing::warn!(error = %err, "sent back but not deleted from the DLQ: a duplicate will follow");
                EntryOutcome::MovedNotDeleted
            }
        }
    }

    /// Makes the messages left in the DLQ visible again (best effort: the hold expires anyway).
    async fn release(&self, receipts: &[String]) {
        for receipt in receipts {
            let released = self
                .sqs
                .change_message_visibility()
                .queue_url(self.dlq_url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await;
            if let Err(err) = released {
                tracing::debug!(error = %err, "cannot release a DLQ message; its hold expires by itself");
            }
        }
    }

    async fn destination_of(&mut self, message: &Message) -> Result<Option<String>, RedriveError> {
        if let Destination::Queue(url) = self.destination {
            return Ok(Some(url.clone()));
        }
        let source_arn = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::DeadLetterQueueSourceArn))
            .cloned();
        if let Some(arn) = source_arn {
            if let Some(url) = self.url_of_arn(&arn).await {
                return Ok(Some(url));
            }
        }
        let sources = self.sources().await?;
        if let [only] = sources {
            return Ok(Some(only.clone()));
        }
        let lane = message
            .body
            .as_deref()
            .and_then(|body| serde_json::from_str::<ExportMessage>(body).ok())
            .map(|m| m.reason.lane());
        let suffix = match lane {
            Some(Lane::Priority) => PRIORITY_QUEUE_SUFFIX,
            Some(Lane::Bulk) => BULK_QUEUE_SUFFIX,
            None => return Ok(None),
        };
        Ok(sources
            .iter()
            .find(|url| queue_name(url).ends_with(suffix))
            .cloned())
    }

    async fn sources(&mut self) -> Result<&[String], RedriveError> {
        if self.sources.is_none() {
            let mut urls = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let output = self
                    .sqs
                    .list_dead_letter_source_queues()
                    .queue_url(self.dlq_url)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|err| RedriveError::SourceQueues {
                        class: sqs_error_class(&err),
                        source: Box::new(err),
                    })?;
                urls.extend(output.queue_urls);
                match output.next_token {
                    Some(next) if !next.is_empty() => token = Some(next),
                    _ => break,
                }
            }
            self.sources = Some(urls);
        }
        Ok(self.sources.as_deref().unwrap_or_default())
    }

    /// `arn:aws:sqs:<region>:<account>:<name>` → its URL, or `None` when it cannot be resolved
    /// (the next rule then decides).
    async fn url_of_arn(&mut self, arn: &str) -> Option<String> {
        if let Some(known) = self.urls_by_arn.get(arn) {
            return known.clone();
        }
        let parts: Vec<&str> = arn.split(':').collect();
        let url = match parts.as_slice() {
            [_, _, _, _, account, name] => self
                .sqs
                .get_queue_url()
                .queue_name(*name)
                .queue_owner_aws_account_id(*account)
                .send()
                .await
                .ok()
                .and_then(|o| o.queue_url),
            _ => None,
        };
        self.urls_by_arn.insert(arn.to_owned(), url.clone());
        url
    }
}

fn queue_name(url_or_arn: &str) -> &str {
    url_or_arn
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(url_or_arn)
}

fn string_attribute(message: &Message, name: &str) -> Option<String> {
    message
        .message_attributes
        .as_ref()?
        .get(name)?
        .string_value
        .clone()
}

fn travels_back(name: &str, value: &MessageAttributeValue) -> bool {
    if TRIAGE_ATTRIBUTES.contains(&name) {
        return false;
    }
    !(name == "reason"
        && value
            .string_value
            .as_deref()
            .is_some_and(|v| DEAD_LETTER_REASONS.contains(&v)))
}

fn describe(message: &Message, message_id: String, destination: Option<String>) -> RedriveEntry {
    let reason = string_attribute(message, "reason")
        .filter(|r| DEAD_LETTER_REASONS.contains(&r.as_str()))
        .unwrap_or_else(|| "exhausted_retries".to_owned());
    let customer_id = string_attribute(message, "customer_id").or_else(|| {
        message
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str::<ExportMessage>(b).ok())
            .map(|m| m.customer_id)
    });
    RedriveEntry {
        message_id,
        customer_id,
        reason,
        error_kind: string_attribute(message, "error_kind"),
        destination,
        outcome: EntryOutcome::WouldMove,
    }
}

/// Counts of a report by reason, for a summary line.
pub fn reasons(report: &RedriveReport) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for entry in &report.entries {
        *counts.entry(entry.reason.clone()).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(value: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("a string attribute builds")
    }

    #[test]
    fn the_exporters_triage_attributes_stay_behind_and_the_filters_reason_travels() {
        assert!(!travels_back("error_message", &attribute("1C rejected")));
        assert!(!travels_back("reason", &attribute("permanent_failure")));
        assert!(travels_back("reason", &attribute("registration")));
        assert!(travels_back("customer_id", &attribute("u-1")));
    }

    #[test]
    fn a_message_without_a_dead_letter_reason_exhausted_its_retries() {
        // Given a message moved by the queue's redrive policy, with the filter's attributes
        let message = Message::builder()
            .message_id("m-1")
            .body(r#"{"customer_id":"u-1","reason":"registration","version":1,"changed_at":"2026-11-28T10:00:00Z"}"#)
            .message_attributes("reason", attribute("registration"))
            .build();
        // When described
        let entry = describe(&message, "m-1".into(), None);
        // Then its reason is exhausted retries and the customer comes from the body
        assert_eq!(entry.reason, "exhausted_retries");
        assert_eq!(entry.customer_id.as_deref(), Some("u-1"));
    }

    fn move_task_error(
        status: u16,
        code: &str,
    ) -> aws_sdk_sqs::error::SdkError<
        aws_sdk_sqs::operation::start_message_move_task::StartMessageMoveTaskError,
        aws_sdk_sqs::config::http::HttpResponse,
    > {
        let err =
            aws_sdk_sqs::operation::start_message_move_task::StartMessageMoveTaskError::generic(
                aws_sdk_sqs::error::ErrorMetadata::builder()
                    .code(code)
                    .build(),
            );
        let raw = aws_sdk_sqs::config::http::HttpResponse::new(
            status.try_into().expect("a valid status"),
            "".into(),
        );
        aws_sdk_sqs::error::SdkError::service_error(err, raw)
    }

    #[test]
    fn a_missing_move_task_falls_back_and_a_refused_one_does_not() {
        // moto answers 500; an SQS without the API an unsupported-operation code
        assert!(is_move_task_unsupported(&move_task_error(
            500,
            "InternalFailure"
        )));
        assert!(is_move_task_unsupported(&move_task_error(
            400,
            "UnsupportedOperation"
        )));
        // Missing rights or a task already running are the operator's to fix
        assert!(!is_move_task_unsupported(&move_task_error(
            403,
            "AccessDenied"
        )));
        assert!(!is_move_task_unsupported(&move_task_error(
            400,
            "InvalidParameterValue"
        )));
    }

    #[test]
    fn queue_names_come_from_urls_and_arns() {
        assert_eq!(
            queue_name("http://127.0.0.1:5000/123456789012/s-export-bulk"),
            "s-export-bulk"
        );
        assert_eq!(
            queue_name("arn:aws:sqs:us-east-1:123456789012:s-export-priority"),
            "s-export-priority"
        );
    }

    #[test]
    fn reasons_are_counted() {
        let entry = |reason: &str| RedriveEntry {
            message_id: "m".into(),
            customer_id: None,
            reason: reason.into(),
            error_kind: None,
            destination: None,
            outcome: EntryOutcome::WouldMove,
        };
        let report = RedriveReport {
            strategy: RedriveStrategy::DryRun,
            approximate_messages: 3,
            moved: 0,
            left: 0,
            entries: vec![
                entry("permanent_failure"),
                entry("exhausted_retries"),
                entry("permanent_failure"),
            ],
        };
        assert_eq!(
            reasons(&report),
            BTreeMap::from([
                ("exhausted_retries".to_owned(), 1),
                ("permanent_failure".to_owned(), 2)
            ])
        );
    }
}
