//! SQS adapter: enqueue export messages, back off and dead-letter received ones.

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
            // At most 43 200 after the cap, so the conversion cannot fail.
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
