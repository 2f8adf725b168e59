//! DynamoDB adapter of the import's [`ImportStore`] on the `users` table.
//!
//! Updates are `UpdateItem`s naming only the fields the import writes, conditioned on the row's
//! `version`, so attributes the platform added survive and a concurrent platform edit makes the
//! write fail (the import re-reads) instead of being overwritten. Creation is a `PutItem`
//! conditioned on the id being free.
//!
//! Finding a user by 1C reference uses a global secondary index on `onec_id` when one is
//! configured ([`DynamoDbImportStore::with_onec_id_index`]; the full sync's
//! `USERS_ONEC_ID_INDEX`, the template's `UsersOnecIdIndex`), else a filtered `Scan`: fine for
//! small tables; a large platform table should get the index. The import calls it only for
//! counterparties entered in 1C that it has not created a user for yet.

use super::dynamodb::{sdk_error_class, DynamoDbCustomerStore};
use crate::import::{ImportStore, ImportWrite, NewUser, IMPORT_CHANGE_SOURCE};
use crate::ports::{CustomerStore, StoreError, StoredCustomer, WriteOutcome};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::SecondsFormat;
use std::collections::HashMap;

/// The `users` table as the 1C import writes it.
#[derive(Debug, Clone)]
pub struct DynamoDbImportStore {
    client: Client,
    table: String,
    onec_id_index: Option<String>,
    reader: DynamoDbCustomerStore,
}

impl DynamoDbImportStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        Self {
            reader: DynamoDbCustomerStore::new(client.clone(), table.clone()),
            client,
            table,
            onec_id_index: None,
        }
    }

    /// Look users up by 1C reference through this GSI (partition key `onec_id`).
    pub fn with_onec_id_index(mut self, index: impl Into<String>) -> Self {
        self.onec_id_index = Some(index.into());
        self
    }

    fn request_error<E, R>(&self, operation: &'static str, err: SdkError<E, R>) -> StoreError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        StoreError::Request {
            operation,
            table: self.table.clone(),
            class: sdk_error_class(&err),
            source: Box::new(err),
        }
    }

    /// The id of the first row linked to `onec_id`, by index or scan.
    async fn id_by_onec_id(&self, onec_id: &str) -> Result<Option<String>, StoreError> {
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = match &self.onec_id_index {
                Some(index) => self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(index)
                    .key_condition_expression("#onec_id = :onec_id")
                    .expression_attribute_names("#onec_id", "onec_id")
                    .expression_attribute_names("#id", "id")
                    .expression_attribute_values(":onec_id", AttributeValue::S(onec_id.into()))
                    .projection_expression("#id")
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map(|o| (o.items, o.last_evaluated_key))
                    .map_err(|err| self.request_error("Query(onec_id)", err))?,
                None => self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .filter_expression("#onec_id = :onec_id")
                    .expression_attribute_names("#onec_id", "onec_id")
                    .expression_attribute_names("#id", "id")
                    .expression_attribute_values(":onec_id", AttributeValue::S(onec_id.into()))
                    .projection_expression("#id")
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map(|o| (o.items, o.last_evaluated_key))
                    .map_err(|err| self.request_error("Scan(onec_id)", err))?,
            };
            let (items, last) = page;
            let found = items
                .unwrap_or_default()
                .into_iter()
                .find_map(|item| item.get("id")?.as_s().ok().cloned());
            if found.is_some() {
                return Ok(found);
            }
            match last {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(None),
            }
        }
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

#[async_trait]
impl ImportStore for DynamoDbImportStore {
    async fn load(&self, id: &str) -> Result<Option<StoredCustomer>, StoreError> {
        self.reader.load(id).await
    }

    async fn find_by_onec_id(&self, onec_id: &str) -> Result<Option<StoredCustomer>, StoreError> {
        match self.id_by_onec_id(onec_id).await? {
            // Read again consistently: index and scan results may lag behind.
            Some(id) => self.reader.load(&id).await,
            None => Ok(None),
        }
    }

    async fn create(&self, user: &NewUser) -> Result<WriteOutcome, StoreError> {
        let encode = |err: serde_dynamo::Error| StoreError::Encode {
            what: "user created from 1C",
            table: self.table.clone(),
            source: Box::new(err),
        };
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(&user.customer).map_err(encode)?;
        for (name, value) in &user.extra {
            item.entry(name.clone()).or_insert_with(|| s(value));
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#id)")
            .expression_attribute_names("#id", "id")
            .send()
            .await;
        match result {
            Ok(_) => Ok(WriteOutcome::Applied),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    PutItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(WriteOutcome::Stale)
            }
            Err(err) => Err(self.request_error("PutItem(import_create)", err)),
        }
    }

    async fn apply(&self, id: &str, write: &ImportWrite) -> Result<WriteOutcome, StoreError> {
        let mut sets = vec![
            "#onec_id = :onec_id".to_owned(),
            "#last_sync = :at".to_owned(),
        ];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", s(id))
            .condition_expression("attribute_exists(#id) AND #version = :expected")
            .expression_attribute_names("#id", "id")
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#onec_id", "onec_id")
            .expression_attribute_names("#last_sync", "last_sync_at")
            .expression_attribute_values(":expected", n(write.expected_version))
            .expression_attribute_values(":onec_id", s(&write.onec_id))
            .expression_attribute_values(
                ":at",
                s(write.at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            );
        if let Some(version) = &write.onec_version {
            sets.push("#onec_version = :onec_version".into());
            request = request
                .expression_attribute_names("#onec_version", "onec_version")
                .expression_attribute_values(":onec_version", s(version));
        }
        if !write.fields.is_empty() {
            // Placeholders by position: field names come from the mapping file.
            for (i, (name, value)) in write.fields.iter().enumerate() {
                sets.push(format!("#f{i} = :f{i}"));
                request = request
                    .expression_attribute_names(format!("#f{i}"), name)
                    .expression_attribute_values(format!(":f{i}"), s(value));
            }
            sets.push("#version = :new_version".into());
            sets.push("#source = :source".into());
            request = request
                .expression_attribute_names("#source", "last_change_source")
                .expression_attribute_values(":new_version", n(write.new_version()))
                .expression_attribute_values(":source", s(IMPORT_CHANGE_SOURCE));
        }
        if write.mark_in_sync {
            sets.push("#synced = :synced".into());
            request = request
                .expression_attribute_names("#synced", "synced_version")
                .expression_attribute_values(":synced", n(write.new_version()));
        }
        let result = request
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await;
        match result {
            Ok(_) => Ok(WriteOutcome::Applied),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(WriteOutcome::Stale)
            }
            Err(err) => Err(self.request_error("UpdateItem(import_apply)", err)),
        }
    }
}
