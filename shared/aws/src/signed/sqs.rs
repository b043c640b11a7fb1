//! [`SqsSink`]: SendMessage to one queue, in SQS's JSON protocol.

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use otlp2parquet_core::ports::{MessageSink, QueueError, SendOptions};
use serde_json::{Map, Value, json};

use super::{CallError, CallErrorKind, Endpoint, SignedCall, SignedClient, dns_suffix};
use crate::config::DEFAULT_MAX_MESSAGE_BYTES;

/// Messages sent to the queue at `url` (standard or FIFO), as
/// [`crate::SqsQueue::send_with`] sends them.
#[derive(Debug, Clone)]
pub struct SqsSink {
    client: SignedClient,
    url: String,
    name: String,
    max_message_bytes: usize,
}

impl SqsSink {
    /// A sink into the queue at `url`.
    pub fn new(client: SignedClient, url: impl Into<String>) -> Self {
        let url = url.into();
        let name = crate::common::queue_name(&url);
        SqsSink {
            client,
            url,
            name,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// Refuses bodies over `bytes` before sending (the queue's
    /// `MaximumMessageSize`).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Where SQS's JSON protocol takes requests: the service's endpoint
    /// (the queue is named in the body).
    fn endpoint(&self) -> String {
        match &self.client.inner.sqs_endpoint {
            Endpoint::Overridden { url, .. } => format!("{url}/"),
            Endpoint::Regional => {
                let region = &self.client.inner.region;
                format!("https://sqs.{region}.{}/", dns_suffix(region))
            }
        }
    }

    /// SendMessage's request body.
    fn request(&self, body: &str, options: &SendOptions) -> Value {
        let mut request = Map::new();
        request.insert("QueueUrl".into(), json!(self.url));
        request.insert("MessageBody".into(), json!(body));
        if !options.attributes.is_empty() {
            let attributes: Map<String, Value> = options
                .attributes
                .iter()
                .map(|(name, value)| {
                    let value = json!({ "DataType": "String", "StringValue": value });
                    (name.clone(), value)
                })
                .collect();
            request.insert("MessageAttributes".into(), Value::Object(attributes));
        }
        if self.name.ends_with(".fifo") {
            // As `SqsQueue` sends to FIFO queues: a group for every message,
            // and a deduplication id unless the caller chose one, so that a
            // message is never taken for another with the same body.
            let group = options.group_id.as_deref().unwrap_or("default");
            let deduplication = options
                .deduplication_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            request.insert("MessageGroupId".into(), json!(group));
            request.insert("MessageDeduplicationId".into(), json!(deduplication));
        }
        Value::Object(request)
    }

    fn error(&self, bytes: usize, error: CallError) -> QueueError {
        if let CallErrorKind::Service { message, .. } = &error.kind
            && message.contains("Message must be shorter than")
        {
            return QueueError::TooLarge {
                queue: self.name.clone(),
                bytes,
                limit: self.max_message_bytes,
            };
        }
        let message = format!("SQS SendMessage: {error}");
        if error.kind.throttled() {
            QueueError::Throttled {
                queue: self.name.clone(),
                message,
            }
        } else {
            QueueError::Backend {
                queue: self.name.clone(),
                message,
            }
        }
    }
}

#[async_trait]
impl MessageSink for SqsSink {
    async fn send_message(&self, body: &[u8], options: &SendOptions) -> Result<String, QueueError> {
        let bytes = crate::common::message_bytes(body, options);
        QueueError::check_size(&self.name, bytes, self.max_message_bytes)?;
        let text = std::str::from_utf8(body).map_err(|e| QueueError::Backend {
            queue: self.name.clone(),
            message: format!("SQS takes text bodies only: {e}"),
        })?;
        let request = self.request(text, options).to_string();
        let call = SignedCall {
            operation: "SQS.SendMessage",
            service: "sqs",
            method: Method::POST,
            url: self.endpoint(),
            headers: vec![
                ("content-type", "application/x-amz-json-1.0".to_string()),
                ("x-amz-target", "AmazonSQS.SendMessage".to_string()),
            ],
            body: Bytes::from(request),
            unsigned_payload: false,
            parse_error: json_error,
        };
        let reply = self
            .client
            .send(&call)
            .await
            .map_err(|e| self.error(bytes, e))?;
        let reply: Value = serde_json::from_slice(&reply).map_err(|e| QueueError::Backend {
            queue: self.name.clone(),
            message: format!("SQS SendMessage: a reply that is not JSON: {e}"),
        })?;
        Ok(reply
            .get("MessageId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }
}

/// The code and message of a JSON-protocol error body:
/// `{"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "…"}`.
fn json_error(body: &[u8]) -> (Option<String>, String) {
    let Ok(Value::Object(error)) = serde_json::from_slice::<Value>(body) else {
        return (None, String::from_utf8_lossy(body).trim().to_string());
    };
    let code = error
        .get("__type")
        .or_else(|| error.get("code"))
        .and_then(Value::as_str)
        .map(|code| code.rsplit('#').next().unwrap_or(code).to_string());
    let message = error
        .get("message")
        .or_else(|| error.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Variables;

    fn sink(url: &str) -> SqsSink {
        let client = SignedClient::from_variables(&Variables::from_pairs(&[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_REGION", "eu-west-1"),
        ]))
        .unwrap();
        SqsSink::new(client, url)
    }

    #[test]
    fn fifo_messages_carry_a_group_and_a_deduplication_id() {
        let fifo = sink("https://sqs.eu-west-1.amazonaws.com/1/commits.fifo");
        assert_eq!(fifo.endpoint(), "https://sqs.eu-west-1.amazonaws.com/");
        let options = SendOptions::default()
            .with_group_id("otel.logs")
            .with_deduplication_id("c1")
            .with_attribute("reason", "why");
        assert_eq!(
            fifo.request("{}", &options),
            json!({
                "QueueUrl": "https://sqs.eu-west-1.amazonaws.com/1/commits.fifo",
                "MessageBody": "{}",
                "MessageAttributes": {"reason": {"DataType": "String", "StringValue": "why"}},
                "MessageGroupId": "otel.logs",
                "MessageDeduplicationId": "c1",
            })
        );
        let generated = fifo.request("{}", &SendOptions::default());
        assert_eq!(generated["MessageGroupId"], "default");
        assert!(generated["MessageDeduplicationId"].as_str().is_some());
        let standard = sink("https://sqs.eu-west-1.amazonaws.com/1/raw");
        assert_eq!(
            standard.request("{}", &SendOptions::default()),
            json!({"QueueUrl": "https://sqs.eu-west-1.amazonaws.com/1/raw", "MessageBody": "{}"})
        );
    }

    #[test]
    fn json_error_bodies_give_their_code_and_message() {
        assert_eq!(
            json_error(
                br#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}"#
            ),
            (
                Some("QueueDoesNotExist".to_string()),
                "The specified queue does not exist.".to_string()
            )
        );
        assert_eq!(
            json_error(b"Bad Gateway"),
            (None, "Bad Gateway".to_string())
        );
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused_before_sending() {
        let queue = sink("https://sqs.eu-west-1.amazonaws.com/1/raw").with_max_message_bytes(10);
        let error = queue
            .send_message(&[b'x'; 11], &SendOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(error, QueueError::TooLarge { bytes: 11, .. }),
            "{error}"
        );
    }
}
