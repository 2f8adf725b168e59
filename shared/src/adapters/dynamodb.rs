//! DynamoDB adapters: the users table and the sync log.
//!
//! Users-table writes are `UpdateItem`s that name only bookkeeping attributes and carry a
//! condition, never `PutItem`: attributes the platform added (known to [`Customer`] or not)
//! survive, an old export never overwrites a newer one, and a stale duplicate is a no-op.

use crate::domain::{Customer, SyncStatus};
use crate::error::ErrorClass;
use crate::ports::{
    CustomerStore, ExportFailure, ExportSuccess, FailureStatus, StoreError, StoredCustomer,
    SyncLog, WriteOutcome,
};
use crate::sync_log::{SyncLogEntry, DEFAULT_RETENTION_DAYS};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};

/// Partition key of the sync-log table.
pub const SYNC_LOG_PARTITION_KEY: &str = "customer_id";
/// Sort key of the sync-log table: `<rfc3339 millis>#<uuid>`, so entries sort by time and two
/// entries in the same millisecond do not collide.
pub const SYNC_LOG_SORT_KEY: &str = "sk";
/// TTL attribute of the sync-log table (epoch seconds).
pub const SYNC_LOG_TTL_ATTRIBUTE: &str = "expires_at";

/// Service error codes that say the request itself is wrong; everything else from AWS
/// (throttling, 5xx, network, and also missing tables or rights, which an operator fixes while
/// the messages wait) is worth retrying.
const PERMANENT_CODES: &[&str] = &["ValidationException", "SerializationException"];

/// Classifies an AWS SDK error (any service) for the retry decision.
pub fn sdk_error_class<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> ErrorClass {
    match err {
        SdkError::ConstructionFailure(_) => ErrorClass::Permanent,
        SdkError::ServiceError(service) => match service.err().code() {
            Some(code) if PERMANENT_CODES.contains(&code) => ErrorClass::Permanent,
            _ => ErrorClass::Transient,
        },
        _ => ErrorClass::Transient,
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// String, number and boolean attributes as strings; sets, lists, maps and binaries are not
/// something a 1C attribute can take and are left out.
fn scalar_attributes(
    item: &std::collections::HashMap<String, AttributeValue>,
) -> std::collections::BTreeMap<String, String> {
    item.iter()
        .filter_map(|(name, value)| {
            let text = match value {
                AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
                AttributeValue::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((name.clone(), text))
        })
        .collect()
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The `users` table (partition key `id`).
#[derive(Debug, Clone)]
pub struct DynamoDbCustomerStore {
    client: Client,
    table: String,
}

impl DynamoDbCustomerStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn update(&self, id: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("id", s(id))
            .expression_attribute_names("#id", "id")
    }

    async fn conditional(
        &self,
        operation: &'static str,
        request: UpdateItemFluentBuilder,
    ) -> Result<WriteOutcome, StoreError> {
        match request.send().await {
            Ok(_) => Ok(WriteOutcome::Applied),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(WriteOutcome::Stale)
            }
            Err(err) => Err(self.request_error(operation, err)),
        }
    }

    fn request_error<E, R>(&self, operation: &'static str, err: SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        StoreError::Request {
            operation,
            table: self.table.clone(),
            class: sdk_error_class(&err),
            source: Box::new(err),
        }
    }
}

#[async_trait]
impl CustomerStore for DynamoDbCustomerStore {
    async fn load(&self, id: &str) -> Result<Option<StoredCustomer>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id))
            // The exporter decides on the version it reads; a stale read would re-export or skip
            // wrongly.
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| self.request_error("GetItem", err))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let extra = scalar_attributes(&item);
        let customer: Customer =
            serde_dynamo::from_item(item).map_err(|err| StoreError::Undecodable {
                id: id.to_owned(),
                source: Box::new(err),
            })?;
        Ok(Some(StoredCustomer { customer, extra }))
    }

    async fn mark_pending(&self, id: &str, version: u64) -> Result<WriteOutcome, StoreError> {
        // Only a row no export has touched yet, and not flagged already: a duplicate or full-sync
        // message may have reached the exporter before this stream record reached the filter,
        // and its outcome (synced, error) must not be overwritten with `pending`.
        let request = self
            .update(id)
            .update_expression("SET #needs = :true, #status = :pending")
            .condition_expression(
                "attribute_exists(#id) AND #version = :v AND attribute_not_exists(#synced) \
                 AND (attribute_not_exists(#status) \
                      OR (#status = :pending AND (attribute_not_exists(#needs) OR #needs <> :true)))",
            )
            .expression_attribute_names("#needs", "needs_1c_export")
            .expression_attribute_names("#status", "sync_status")
            .expression_attribute_names("#synced", "synced_version")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":pending", s(SyncStatus::Pending.as_str()))
            .expression_attribute_values(":v", n(version));
        self.conditional("UpdateItem(mark_pending)", request).await
    }

    async fn record_export_success(
        &self,
        id: &str,
        success: &ExportSuccess,
    ) -> Result<WriteOutcome, StoreError> {
        // The row still at the exported version: it is in sync, whatever it said before.
        let request = self
            .update(id)
            .update_expression(
                "SET #synced = :v, #needs = :false, #status = :synced, #error = :empty, \
                 #last = :at, #onec_id = :onec_id, #onec_version = :onec_version, \
                 #attempts = :zero",
            )
            .condition_expression(
                "attribute_exists(#id) AND #version = :v \
                 AND (attribute_not_exists(#synced) OR #synced < :v)",
            )
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#needs", "needs_1c_export")
            .expression_attribute_names("#status", "sync_status")
            .expression_attribute_names("#error", "sync_error_message")
            .expression_attribute_names("#attempts", "export_attempts")
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":synced", s(SyncStatus::Synced.as_str()))
            .expression_attribute_values(":empty", s(""))
            .expression_attribute_values(":zero", n(0));
        let written = self
            .conditional(
                "UpdateItem(record_export_success)",
                exported(request, success),
            )
            .await?;
        if written == WriteOutcome::Applied {
            return Ok(written);
        }
        // The row moved past the exported version meanwhile: record what 1C now holds, but the
        // status, error and flag belong to the newer change, whose own message exports it
        // (synced_version stays below the row's version). Stale either way: the row is not in
        // sync at this version.
        let request = self
            .update(id)
            .update_expression(
                "SET #synced = :v, #last = :at, #onec_id = :onec_id, #onec_version = :onec_version",
            )
            .condition_expression(
                "attribute_exists(#id) AND (attribute_not_exists(#synced) OR #synced < :v)",
            );
        self.conditional(
            "UpdateItem(record_export_success)",
            exported(request, success),
        )
        .await?;
        Ok(WriteOutcome::Stale)
    }

    async fn reopen_export(
        &self,
        id: &str,
        recorded_version: u64,
        held_version: u64,
    ) -> Result<WriteOutcome, StoreError> {
        let request = self
            .update(id)
            .update_expression("SET #synced = :held, #needs = :true, #status = :pending")
            .condition_expression(
                "attribute_exists(#id) AND #version = :recorded AND #synced = :recorded",
            )
            .expression_attribute_names("#synced", "synced_version")
            .expression_attribute_names("#needs", "needs_1c_export")
            .expression_attribute_names("#status", "sync_status")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":held", n(held_version))
            .expression_attribute_values(":recorded", n(recorded_version))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":pending", s(SyncStatus::Pending.as_str()));
        self.conditional("UpdateItem(reopen_export)", request).await
    }

    async fn record_export_failure(
        &self,
        id: &str,
        failure: &ExportFailure,
    ) -> Result<WriteOutcome, StoreError> {
        let status = match failure.status {
            FailureStatus::Retrying => SyncStatus::Retrying,
            FailureStatus::Error => SyncStatus::Error,
        };
        let request = self
            .update(id)
            .update_expression(
                "SET #status = :status, #error = :message, #attempts = :attempts, #failed = :v",
            )
            // The same failure of the same version again (a duplicate delivery failing the same
            // way) is not written again: the row already says it, and the write would be a
            // stream record.
            .condition_expression(
                "attribute_exists(#id) AND (attribute_not_exists(#synced) OR #synced < :v) \
                 AND NOT (#status = :status AND #error = :message AND #failed = :v)",
            )
            .expression_attribute_names("#failed", "failed_version")
            .expression_attribute_names("#synced", "synced_version")
            .expression_attribute_names("#status", "sync_status")
            .expression_attribute_names("#error", "sync_error_message")
            .expression_attribute_names("#attempts", "export_attempts")
            .expression_attribute_values(":v", n(failure.version))
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":message", s(&failure.message))
            .expression_attribute_values(":attempts", n(failure.attempts));
        self.conditional("UpdateItem(record_export_failure)", request)
            .await
    }
}

/// The values both success write-backs name: what 1C holds after the export.
fn exported(request: UpdateItemFluentBuilder, success: &ExportSuccess) -> UpdateItemFluentBuilder {
    request
        .expression_attribute_names("#synced", "synced_version")
        .expression_attribute_names("#last", "last_sync_at")
        .expression_attribute_names("#onec_id", "onec_id")
        .expression_attribute_names("#onec_version", "onec_version")
        .expression_attribute_values(":v", n(success.exported_version))
        .expression_attribute_values(":at", s(timestamp(success.at)))
        .expression_attribute_values(":onec_id", s(&success.onec_id))
        .expression_attribute_values(":onec_version", s(&success.onec_version))
}

/// The sync-log table (`CustomerSyncLog`), entries expiring after the retention period.
#[derive(Debug, Clone)]
pub struct DynamoDbSyncLog {
    client: Client,
    table: String,
    retention_days: u32,
}

impl DynamoDbSyncLog {
    pub fn new(client: Client, table: impl Into<String>, retention_days: u32) -> Self {
        Self {
            client,
            table: table.into(),
            retention_days,
        }
    }

    /// Retention from `SYNC_LOG_RETENTION_DAYS` (default 30).
    pub fn retention_days_from_env() -> Result<u32, crate::config::ConfigError> {
        crate::config::parsed_or("SYNC_LOG_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)
    }
}

#[async_trait]
impl SyncLog for DynamoDbSyncLog {
    async fn append(&self, entry: SyncLogEntry) -> Result<(), StoreError> {
        let details: AttributeValue =
            serde_dynamo::to_attribute_value(&entry.details).map_err(|err| StoreError::Encode {
                what: "sync log details",
                table: self.table.clone(),
                source: Box::new(err),
            })?;
        let expires_at = entry.at.timestamp() + i64::from(self.retention_days) * 24 * 60 * 60;
        let sort_key = format!("{}#{}", timestamp(entry.at), uuid::Uuid::new_v4());
        self.client
            .put_item()
            .table_name(&self.table)
            .item(SYNC_LOG_PARTITION_KEY, s(&entry.customer_id))
            .item(SYNC_LOG_SORT_KEY, s(sort_key))
            .item("operation_type", s(entry.operation_type.as_str()))
            .item("status", s(entry.status.as_str()))
            .item("at", s(timestamp(entry.at)))
            .item("details", details)
            .item(SYNC_LOG_TTL_ATTRIBUTE, n(expires_at))
            .send()
            .await
            .map_err(|err| StoreError::Request {
                operation: "PutItem(sync_log)",
                table: self.table.clone(),
                class: sdk_error_class(&err),
                source: Box::new(err),
            })?;
        Ok(())
    }
}
