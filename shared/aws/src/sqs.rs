//! [`SqsQueue`]: an Amazon SQS queue, standard or FIFO.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use tokio::sync::OnceCell;

use otlp2parquet_core::ports::{
    FAILURE_REASON_ATTRIBUTE, Queue, QueueError, ReceivedMessage, SendOptions,
};

use crate::ErrorReport;
use crate::config::DEFAULT_MAX_MESSAGE_BYTES;

/// SQS's limit of messages per `ReceiveMessage`.
const RECEIVE_BATCH: usize = 10;

/// One SQS queue, by URL.
///
/// Its dead-letter queue is the one its redrive policy names, looked up the
/// first time a message is moved there ([`Queue::dead_letter`]: the message is
/// sent to the dead-letter queue with its reason as an attribute, then deleted
/// here). Message attributes travel as SQS `String` attributes.
#[derive(Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
    name: String,
    max_message_bytes: usize,
    wait: Duration,
    dead_letter_url: OnceCell<String>,
}

impl SqsQueue {
    /// The queue at `url` (`https://sqs.<region>.amazonaws.com/<account>/<name>`).
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        let url = url.into();
        let name = crate::common::queue_name(&url);
        SqsQueue {
            client,
            url,
            name,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            wait: Duration::ZERO,
            dead_letter_url: OnceCell::new(),
        }
    }

    /// Refuses bodies over `bytes` before sending (the queue's
    /// `MaximumMessageSize`).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Long polling: a receive waits up to `wait` (at most 20 s) for a message
    /// instead of answering empty at once.
    pub fn with_long_polling(mut self, wait: Duration) -> Self {
        self.wait = wait.min(Duration::from_secs(20));
        self
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn fifo(&self) -> bool {
        self.name.ends_with(".fifo")
    }

    fn error(&self, report: ErrorReport) -> QueueError {
        if report.throttled() {
            QueueError::Throttled {
                queue: self.name.clone(),
                message: report.message,
            }
        } else {
            QueueError::Backend {
                queue: self.name.clone(),
                message: report.message,
            }
        }
    }

    /// The answer to a call made with a receipt handle: whether it took
    /// effect, false when the receipt is stale.
    fn by_receipt<T, E>(
        &self,
        result: Result<T, SdkError<E, HttpResponse>>,
    ) -> Result<bool, QueueError>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match result {
            Ok(_) => Ok(true),
            Err(e) => {
                let report = ErrorReport::of(&e);
                if stale_receipt(&report) {
                    Ok(false)
                } else {
                    Err(self.error(report))
                }
            }
        }
    }

    async fn attributes(&self) -> Result<HashMap<QueueAttributeName, String>, QueueError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| self.error(ErrorReport::of(&e)))?;
        Ok(output.attributes().cloned().unwrap_or_default())
    }

    /// The dead-letter queue's URL, from this queue's redrive policy.
    async fn dead_letter_url(&self) -> Result<&str, QueueError> {
        let url = self
            .dead_letter_url
            .get_or_try_init(|| async {
                let missing = |why: &str| QueueError::Backend {
                    queue: self.name.clone(),
                    message: format!(
                        "no dead-letter queue: {why}; give the queue a redrive policy"
                    ),
                };
                let attributes = self.attributes().await?;
                let policy = attributes
                    .get(&QueueAttributeName::RedrivePolicy)
                    .ok_or_else(|| missing("the queue has no redrive policy"))?;
                let policy: serde_json::Value = serde_json::from_str(policy)
                    .map_err(|e| missing(&format!("unreadable redrive policy: {e}")))?;
                let arn = policy["deadLetterTargetArn"]
                    .as_str()
                    .ok_or_else(|| missing("the redrive policy names no deadLetterTargetArn"))?;
                // arn:aws:sqs:<region>:<account>:<name>
                let parts: Vec<&str> = arn.split(':').collect();
                let [.., account, name] = parts.as_slice() else {
                    return Err(missing(&format!("unreadable queue ARN {arn}")));
                };
                let output = self
                    .client
                    .get_queue_url()
                    .queue_name(*name)
                    .queue_owner_aws_account_id(*account)
                    .send()
                    .await
                    .map_err(|e| self.error(ErrorReport::of(&e)))?;
                output
                    .queue_url()
                    .map(str::to_string)
                    .ok_or_else(|| missing("GetQueueUrl answered no URL"))
            })
            .await?;
        Ok(url)
    }
}

/// Whether SQS refused a receipt handle: the message was redelivered (a newer
/// receipt exists) or is gone.
fn stale_receipt(report: &ErrorReport) -> bool {
    report.code.as_deref().is_some_and(|code| {
        matches!(
            code,
            "ReceiptHandleIsInvalid"
                | "InvalidReceiptHandle"
                | "MessageNotInflight"
                | "AWS.SimpleQueueService.MessageNotInflight"
        )
    })
}

fn attribute_values(
    queue: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<HashMap<String, MessageAttributeValue>, QueueError> {
    attributes
        .iter()
        .map(|(name, value)| {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| QueueError::Backend {
                    queue: queue.to_string(),
                    message: format!("attribute {name}: {e}"),
                })?;
            Ok((name.clone(), value))
        })
        .collect()
}

#[async_trait]
impl Queue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    async fn send_with(&self, body: &[u8], options: &SendOptions) -> Result<String, QueueError> {
        QueueError::check_size(
            &self.name,
            crate::common::message_bytes(body, options),
            self.max_message_bytes,
        )?;
        let body = std::str::from_utf8(body).map_err(|e| QueueError::Backend {
            queue: self.name.clone(),
            message: format!("SQS takes text bodies only: {e}"),
        })?;
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .set_message_attributes(
                (!options.attributes.is_empty())
                    .then(|| attribute_values(&self.name, &options.attributes))
                    .transpose()?,
            );
        if self.fifo() {
            // A FIFO queue wants a group for every message (one group keeps
            // the order of messages sent without one) and, without
            // content-based deduplication, a deduplication id: a message sent
            // without one must not be taken for another with the same body.
            let deduplication_id = options
                .deduplication_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            send = send
                .message_group_id(options.group_id.as_deref().unwrap_or("default"))
                .message_deduplication_id(deduplication_id);
        }
        let output = send.send().await.map_err(|e| {
            let report = ErrorReport::of(&e);
            if report.message.contains("Message must be shorter than") {
                QueueError::TooLarge {
                    queue: self.name.clone(),
                    bytes: body.len(),
                    limit: self.max_message_bytes,
                }
            } else {
                self.error(report)
            }
        })?;
        Ok(output.message_id().unwrap_or_default().to_string())
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, RECEIVE_BATCH) as i32)
            .visibility_timeout(visibility.as_secs().clamp(1, 43_200) as i32)
            .wait_time_seconds(self.wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| self.error(ErrorReport::of(&e)))?;
        Ok(output
            .messages()
            .iter()
            .map(|message| {
                let system = message.attributes();
                let system = |name: MessageSystemAttributeName| {
                    system.and_then(|attributes| attributes.get(&name)).cloned()
                };
                ReceivedMessage {
                    id: message.message_id().unwrap_or_default().to_string(),
                    receipt: message.receipt_handle().unwrap_or_default().to_string(),
                    body: message.body().unwrap_or_default().as_bytes().to_vec(),
                    receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|count| count.parse().ok())
                        .unwrap_or(1),
                    group_id: system(MessageSystemAttributeName::MessageGroupId),
                    sent_at: system(MessageSystemAttributeName::SentTimestamp)
                        .and_then(|millis| millis.parse().ok())
                        .map(|millis| UNIX_EPOCH + Duration::from_millis(millis)),
                    attributes: message
                        .message_attributes()
                        .into_iter()
                        .flatten()
                        .filter_map(|(name, value)| {
                            Some((name.clone(), value.string_value()?.to_string()))
                        })
                        .collect(),
                }
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<bool, QueueError> {
        let deleted = self
            .client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await;
        self.by_receipt(deleted)
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<bool, QueueError> {
        let changed = self
            .client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility.as_secs().min(43_200) as i32)
            .send()
            .await;
        self.by_receipt(changed)
    }

    async fn dead_letter(
        &self,
        message: &ReceivedMessage,
        reason: &str,
    ) -> Result<bool, QueueError> {
        let dead_letter_url = self.dead_letter_url().await?.to_string();
        let mut attributes = message.attributes.clone();
        // SQS caps an attribute value at the message size; a reason is a
        // sentence, but an error chain can be long.
        let reason: String = reason.chars().take(4096).collect();
        attributes.insert(FAILURE_REASON_ATTRIBUTE.to_string(), reason);
        // A message received from SQS is text; anything else cannot be moved
        // without changing it, so it stays here until its last receive.
        let body = std::str::from_utf8(&message.body).map_err(|e| QueueError::Backend {
            queue: self.name.clone(),
            message: format!("message {} is not text: {e}", message.id),
        })?;
        let mut send = self
            .client
            .send_message()
            .queue_url(&dead_letter_url)
            .message_body(body)
            .set_message_attributes(Some(attribute_values(&self.name, &attributes)?));
        if dead_letter_url.ends_with(".fifo") {
            // Sent first, deleted after: a crash between the two leaves the
            // message in both queues, and the same deduplication id (the
            // message's own id) keeps a second move from doubling it.
            send = send
                .message_group_id(message.group_id.as_deref().unwrap_or("default"))
                .message_deduplication_id(&message.id);
        }
        send.send()
            .await
            .map_err(|e| self.error(ErrorReport::of(&e)))?;
        self.delete(&message.receipt).await
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        let attributes = self.attributes().await?;
        Ok([
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .filter_map(|name| attributes.get(name)?.parse::<u64>().ok())
        .sum())
    }
}
