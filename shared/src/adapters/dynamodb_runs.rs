//! DynamoDB adapter of [`SyncRunStore`]: the sync-runs table (pk `run_id`, the template's
//! `SyncRunsTable`).
//!
//! Runs are stored as items of their fields; the control row [`CONTROL_ID`] holds
//! `active_run`, `last_run` and `import_watermark`. Every write is an `UpdateItem` or `PutItem`
//! with a condition, the only actions the function's role has on the table besides `GetItem`.

use super::dynamodb::sdk_error_class;
use crate::sync_run::{
    Conditional, RunControl, RunStatus, SyncRun, SyncRunError, SyncRunStore, CONTROL_ID,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;

/// Partition key of the sync-runs table.
pub const SYNC_RUNS_PARTITION_KEY: &str = "run_id";

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The sync-runs table.
#[derive(Debug, Clone)]
pub struct DynamoDbSyncRunStore {
    client: Client,
    table: String,
}

impl DynamoDbSyncRunStore {
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
            .key(SYNC_RUNS_PARTITION_KEY, s(id))
    }

    fn request_error<E, R>(&self, operation: &'static str, err: SdkError<E, R>) -> SyncRunError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        SyncRunError::Request {
            operation,
            table: self.table.clone(),
            class: sdk_error_class(&err),
            source: Box::new(err),
        }
    }

    /// Sends a conditional update; a failed condition is [`Conditional::Refused`].
    async fn conditional(
        &self,
        operation: &'static str,
        request: UpdateItemFluentBuilder,
    ) -> Result<Conditional<Option<HashMap<String, AttributeValue>>>, SyncRunError> {
        match request.send().await {
            Ok(output) => Ok(Conditional::Applied(output.attributes)),
            Err(err) if is_condition_failure(&err) => Ok(Conditional::Refused),
            Err(err) => Err(self.request_error(operation, err)),
        }
    }

    /// A conditional update that returns the whole new run.
    async fn conditional_run(
        &self,
        operation: &'static str,
        run_id: &str,
        request: UpdateItemFluentBuilder,
    ) -> Result<Conditional<SyncRun>, SyncRunError> {
        let request = request.return_values(ReturnValue::AllNew);
        match self.conditional(operation, request).await? {
            Conditional::Applied(Some(item)) => Ok(Conditional::Applied(decode(run_id, item)?)),
            Conditional::Applied(None) => Err(SyncRunError::Undecodable {
                id: run_id.to_owned(),
                source: "the update returned no attributes".into(),
            }),
            Conditional::Refused => Ok(Conditional::Refused),
        }
    }
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    matches!(err, SdkError::ServiceError(service)
        if service.err().code() == Some("ConditionalCheckFailedException"))
}

fn decode(id: &str, item: HashMap<String, AttributeValue>) -> Result<SyncRun, SyncRunError> {
    serde_dynamo::from_item(item).map_err(|err| SyncRunError::Undecodable {
        id: id.to_owned(),
        source: Box::new(err),
    })
}

fn encode<T: serde::Serialize>(id: &str, value: &T) -> Result<AttributeValue, SyncRunError> {
    serde_dynamo::to_attribute_value(value).map_err(|err| SyncRunError::Encode {
        id: id.to_owned(),
        source: Box::new(err),
    })
}

fn string_attribute(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .filter(|v| !v.is_empty())
        .cloned()
}

/// `SET` for the present optional attributes, `REMOVE` for the absent ones.
struct Expression {
    set: Vec<String>,
    remove: Vec<String>,
    add: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expression {
    fn new() -> Self {
        Self {
            set: Vec::new(),
            remove: Vec::new(),
            add: Vec::new(),
            names: HashMap::new(),
            values: HashMap::new(),
        }
    }

    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    fn set(&mut self, attribute: &str, value: AttributeValue) {
        let name = self.name(attribute);
        let placeholder = format!(":{attribute}");
        self.set.push(format!("{name} = {placeholder}"));
        self.values.insert(placeholder, value);
    }

    fn set_or_remove(&mut self, attribute: &str, value: Option<AttributeValue>) {
        match value {
            Some(value) => self.set(attribute, value),
            None => {
                let name = self.name(attribute);
                self.remove.push(name);
            }
        }
    }

    fn add(&mut self, attribute: &str, value: AttributeValue) {
        let name = self.name(attribute);
        let placeholder = format!(":{attribute}");
        self.add.push(format!("{name} {placeholder}"));
        self.values.insert(placeholder, value);
    }

    fn value(&mut self, placeholder: &str, value: AttributeValue) {
        self.values.insert(placeholder.to_owned(), value);
    }

    fn update_expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            parts.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.remove.is_empty() {
            parts.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        if !self.add.is_empty() {
            parts.push(format!("ADD {}", self.add.join(", ")));
        }
        parts.join(" ")
    }

    fn apply(self, request: UpdateItemFluentBuilder, condition: &str) -> UpdateItemFluentBuilder {
        request
            .update_expression(self.update_expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
    }
}

/// `(:s0, :s1, …)` with the statuses bound.
fn status_list(expr: &mut Expression, statuses: &[RunStatus]) -> String {
    let placeholders: Vec<String> = statuses
        .iter()
        .enumerate()
        .map(|(i, status)| {
            let placeholder = format!(":from{i}");
            expr.value(&placeholder, s(status.as_str()));
            placeholder
        })
        .collect();
    format!("({})", placeholders.join(", "))
}

#[async_trait]
impl SyncRunStore for DynamoDbSyncRunStore {
    async fn control(&self) -> Result<RunControl, SyncRunError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(SYNC_RUNS_PARTITION_KEY, s(CONTROL_ID))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| self.request_error("GetItem(control)", err))?;
        let Some(item) = output.item else {
            return Ok(RunControl::default());
        };
        Ok(RunControl {
            active_run: string_attribute(&item, "active_run"),
            last_run: string_attribute(&item, "last_run"),
            import_watermark: string_attribute(&item, "import_watermark"),
            locked_at: string_attribute(&item, "locked_at")
                .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
                .map(|at| at.with_timezone(&Utc)),
        })
    }

    async fn acquire_lock(
        &self,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Conditional<()>, SyncRunError> {
        let mut expr = Expression::new();
        expr.set("active_run", s(run_id));
        expr.set("last_run", s(run_id));
        expr.set("locked_at", s(timestamp(now)));
        let request = expr.apply(self.update(CONTROL_ID), "attribute_not_exists(#active_run)");
        Ok(match self.conditional("UpdateItem(lock)", request).await? {
            Conditional::Applied(_) => Conditional::Applied(()),
            Conditional::Refused => Conditional::Refused,
        })
    }

    async fn release_lock(&self, run_id: &str) -> Result<Conditional<()>, SyncRunError> {
        let request = self
            .update(CONTROL_ID)
            .update_expression("REMOVE #active_run")
            .condition_expression("#active_run = :run")
            .expression_attribute_names("#active_run", "active_run")
            .expression_attribute_values(":run", s(run_id));
        Ok(
            match self.conditional("UpdateItem(unlock)", request).await? {
                Conditional::Applied(_) => Conditional::Applied(()),
                Conditional::Refused => Conditional::Refused,
            },
        )
    }

    async fn release_lock_taken_at(
        &self,
        run_id: &str,
        locked_at: Option<DateTime<Utc>>,
    ) -> Result<Conditional<()>, SyncRunError> {
        let request = self
            .update(CONTROL_ID)
            .update_expression("REMOVE #active_run")
            .expression_attribute_names("#active_run", "active_run")
            .expression_attribute_names("#locked_at", "locked_at")
            .expression_attribute_values(":run", s(run_id));
        let request = match locked_at {
            Some(at) => request
                .condition_expression("#active_run = :run AND #locked_at = :at")
                .expression_attribute_values(":at", s(timestamp(at))),
            None => request
                .condition_expression("#active_run = :run AND attribute_not_exists(#locked_at)"),
        };
        Ok(
            match self.conditional("UpdateItem(unlock)", request).await? {
                Conditional::Applied(_) => Conditional::Applied(()),
                Conditional::Refused => Conditional::Refused,
            },
        )
    }

    async fn set_import_watermark(&self, watermark: &str) -> Result<(), SyncRunError> {
        self.update(CONTROL_ID)
            .update_expression("SET #w = :w")
            .expression_attribute_names("#w", "import_watermark")
            .expression_attribute_values(":w", s(watermark))
            .send()
            .await
            .map_err(|err| self.request_error("UpdateItem(import_watermark)", err))?;
        Ok(())
    }

    async fn create(&self, run: &SyncRun) -> Result<Conditional<()>, SyncRunError> {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(run).map_err(|err| SyncRunError::Encode {
                id: run.run_id.clone(),
                source: Box::new(err),
            })?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", SYNC_RUNS_PARTITION_KEY)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Conditional::Applied(())),
            Err(err) if is_condition_failure(&err) => Ok(Conditional::Refused),
            Err(err) => Err(self.request_error("PutItem(run)", err)),
        }
    }

    async fn get(&self, run_id: &str) -> Result<Option<SyncRun>, SyncRunError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(SYNC_RUNS_PARTITION_KEY, s(run_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| self.request_error("GetItem(run)", err))?;
        output.item.map(|item| decode(run_id, item)).transpose()
    }

    async fn save_progress(&self, run: &SyncRun) -> Result<Conditional<SyncRun>, SyncRunError> {
        let id = run.run_id.as_str();
        let mut expr = Expression::new();
        expr.set("counters", encode(id, &run.counters)?);
        expr.set("export_segments", encode(id, &run.export_segments)?);
        expr.set("phase", encode(id, &run.phase)?);
        expr.set_or_remove("import_since", run.import_since.clone().map(s));
        expr.set_or_remove("import_cursor", run.import_cursor.clone().map(s));
        expr.set_or_remove("import_watermark", run.import_watermark.clone().map(s));
        expr.set("invocations", encode(id, &run.invocations)?);
        expr.set("updated_at", encode(id, &run.updated_at)?);
        expr.set("seq", encode(id, &(run.seq + 1))?);
        expr.value(":expected", encode(id, &run.seq)?);
        let statuses = status_list(&mut expr, &[RunStatus::Running, RunStatus::Cancelling]);
        let status = expr.name("status");
        let condition = format!("#seq = :expected AND {status} IN {statuses}");
        let request = expr.apply(self.update(id), &condition);
        self.conditional_run("UpdateItem(progress)", id, request)
            .await
    }

    async fn transition(
        &self,
        run_id: &str,
        from: &[RunStatus],
        to: RunStatus,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Conditional<SyncRun>, SyncRunError> {
        let mut expr = Expression::new();
        expr.set("status", encode(run_id, &to)?);
        expr.set("updated_at", encode(run_id, &now)?);
        expr.set_or_remove("error", error.map(s));
        let finished = if to.is_final() {
            Some(encode(run_id, &now)?)
        } else {
            None
        };
        expr.set_or_remove("finished_at", finished);
        if to == RunStatus::Running {
            expr.add("invocations", AttributeValue::N("1".into()));
        }
        let statuses = status_list(&mut expr, from);
        let condition = format!("#status IN {statuses}");
        let request = expr.apply(self.update(run_id), &condition);
        self.conditional_run("UpdateItem(transition)", run_id, request)
            .await
    }
}
