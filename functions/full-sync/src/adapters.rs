//! AWS adapters of the full-sync ports: the users scan (DynamoDB) and the continuation
//! (Lambda asynchronous invoke).

use crate::export::DECISION_ATTRIBUTES;
use crate::ports::{
    Continuation, ContinuationError, ScanError, ScanPage, ScanSegment, UserScanner,
};
use crate::FullSyncInput;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use serde_json::{Map, Value};
use shared::adapters::dynamodb::sdk_error_class;
use shared::domain::Customer;
use std::collections::HashMap;

/// Scans the users table with a projection of what the export decision reads.
#[derive(Debug, Clone)]
pub struct DynamoDbUserScanner {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDbUserScanner {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The table's approximate item count (DynamoDB refreshes it about every six hours); the
    /// CLI's progress estimate. Needs `dynamodb:DescribeTable`, which the function's role does
    /// not have.
    pub async fn approximate_count(&self) -> Result<Option<u64>, ScanError> {
        let output = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|err| ScanError::Request {
                table: self.table.clone(),
                class: sdk_error_class(&err),
                source: Box::new(err),
            })?;
        Ok(output
            .table
            .and_then(|t| t.item_count)
            .and_then(|n| u64::try_from(n).ok()))
    }
}

#[async_trait]
impl UserScanner for DynamoDbUserScanner {
    async fn scan_page(
        &self,
        segment: ScanSegment,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ScanPage, ScanError> {
        let names: HashMap<String, String> = DECISION_ATTRIBUTES
            .iter()
            .enumerate()
            .map(|(i, name)| (format!("#a{i}"), (*name).to_owned()))
            .collect();
        let projection = (0..DECISION_ATTRIBUTES.len())
            .map(|i| format!("#a{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut request = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .projection_expression(projection)
            .set_expression_attribute_names(Some(names))
            .set_exclusive_start_key(cursor.map(decode_cursor).transpose()?);
        if segment.total > 1 {
            request = request
                .segment(i32::try_from(segment.index).unwrap_or(i32::MAX))
                .total_segments(i32::try_from(segment.total).unwrap_or(i32::MAX));
        }
        let output = request.send().await.map_err(|err| ScanError::Request {
            table: self.table.clone(),
            class: sdk_error_class(&err),
            source: Box::new(err),
        })?;
        let mut page = ScanPage::default();
        for item in output.items.unwrap_or_default() {
            match serde_dynamo::from_item::<_, Customer>(item) {
                Ok(user) => page.users.push(user),
                Err(_) => {
                    // Neither the serde message (it may quote a value) nor the id (it may be
                    // the unreadable part) is logged; the count shows up as errors.
                    page.undecodable += 1;
                    tracing::warn!(
                        error_kind = "undecodable_row",
                        "a users row cannot be read; skipped"
                    );
                }
            }
        }
        page.next_cursor = output
            .last_evaluated_key
            .filter(|key| !key.is_empty())
            .map(|key| encode_cursor(&key))
            .transpose()?;
        Ok(page)
    }
}

/// A `LastEvaluatedKey` as JSON in DynamoDB's own typed form (`{"id":{"S":"…"}}`); keys are
/// strings, numbers or binaries only.
pub fn encode_cursor(key: &HashMap<String, AttributeValue>) -> Result<String, ScanError> {
    let mut object = Map::new();
    for (name, value) in key {
        let typed = match value {
            AttributeValue::S(s) => ("S", s.clone()),
            AttributeValue::N(n) => ("N", n.clone()),
            AttributeValue::B(b) => (
                "B",
                base64::engine::general_purpose::STANDARD.encode(b.as_ref()),
            ),
            _ => {
                return Err(ScanError::Cursor {
                    source: format!("key attribute {name} is not a string, number or binary")
                        .into(),
                })
            }
        };
        object.insert(
            name.clone(),
            Value::Object(Map::from_iter([(
                typed.0.to_owned(),
                Value::String(typed.1),
            )])),
        );
    }
    Ok(Value::Object(object).to_string())
}

/// The inverse of [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Result<HashMap<String, AttributeValue>, ScanError> {
    let bad = |reason: &str| ScanError::Cursor {
        source: reason.to_owned().into(),
    };
    let Value::Object(object) = serde_json::from_str(cursor).map_err(|err| ScanError::Cursor {
        source: Box::new(err),
    })?
    else {
        return Err(bad("not a JSON object"));
    };
    let mut key = HashMap::new();
    for (name, typed) in object {
        let Value::Object(typed) = typed else {
            return Err(bad("a key attribute is not typed"));
        };
        let value = match typed.iter().next() {
            Some((t, Value::String(v))) if t == "S" => AttributeValue::S(v.clone()),
            Some((t, Value::String(v))) if t == "N" => AttributeValue::N(v.clone()),
            Some((t, Value::String(v))) if t == "B" => AttributeValue::B(
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map_err(|err| ScanError::Cursor {
                        source: Box::new(err),
                    })?
                    .into(),
            ),
            _ => return Err(bad("a key attribute has an unknown type")),
        };
        key.insert(name, value);
    }
    Ok(key)
}

/// Invokes this function again, asynchronously (`InvocationType=Event`), with
/// `{"continue_run": id}`. Lambda's async retry and the on-failure destination apply to it.
#[derive(Debug, Clone)]
pub struct LambdaContinuation {
    client: aws_sdk_lambda::Client,
    function_name: Option<String>,
}

impl LambdaContinuation {
    /// `function_name` is `AWS_LAMBDA_FUNCTION_NAME` (absent outside Lambda).
    pub fn new(client: aws_sdk_lambda::Client, function_name: Option<String>) -> Self {
        Self {
            client,
            function_name,
        }
    }
}

#[async_trait]
impl Continuation for LambdaContinuation {
    async fn continue_run(&self, run_id: &str) -> Result<(), ContinuationError> {
        let function = self
            .function_name
            .as_deref()
            .ok_or(ContinuationError::Unavailable)?;
        let invoke_error = |class, source| ContinuationError::Invoke {
            function: function.to_owned(),
            class,
            source,
        };
        let payload = serde_json::to_vec(&FullSyncInput::continuation(run_id))
            .map_err(|err| invoke_error(shared::error::ErrorClass::Permanent, Box::new(err)))?;
        self.client
            .invoke()
            .function_name(function)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(|err| invoke_error(sdk_error_class(&err), Box::new(err)))?;
        Ok(())
    }
}

/// The import port served by `shared::import::ImportService`.
#[async_trait]
impl crate::ports::PageImporter for shared::import::ImportService {
    async fn import_page(
        &self,
        watermark: Option<&str>,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<crate::ports::ImportedPage, crate::ports::ImportFailure> {
        use shared::error::Classify as _;
        let report = shared::import::ImportService::import_page(self, watermark, cursor, page_size)
            .await
            .map_err(|err| crate::ports::ImportFailure {
                class: err.class(),
                kind: err.kind(),
                source: Box::new(err),
            })?;
        Ok(crate::ports::ImportedPage {
            imported: report.imported,
            updated: report.updated,
            conflicts: report.conflicts,
            errors: report.errors,
            unchanged: report.unchanged,
            next_cursor: report.next_cursor,
            watermark: report.watermark,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_with_its_types() {
        // Given a key with each key type
        let key = HashMap::from([
            ("id".to_owned(), AttributeValue::S("a\"b".into())),
            ("n".to_owned(), AttributeValue::N("42".into())),
            ("b".to_owned(), AttributeValue::B(vec![0u8, 255].into())),
        ]);
        // When it is encoded and decoded
        let back = decode_cursor(&encode_cursor(&key).expect("encodes")).expect("decodes");
        // Then it is the same key
        assert_eq!(back, key);
    }

    #[test]
    fn a_foreign_cursor_is_refused_as_permanent() {
        use shared::error::Classify;
        for bad in ["", "[1]", r#"{"id":"x"}"#, r#"{"id":{"L":"x"}}"#] {
            let err = decode_cursor(bad).expect_err("refused");
            assert!(!err.is_retryable(), "{bad}");
        }
    }
}
