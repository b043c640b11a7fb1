//! Lambda's SQS event source, mapped onto the stages' types: the messages an
//! `SqsEvent` hands a function, and the `SqsBatchResponse` that reports the
//! ones that failed (the event source mapping's `ReportBatchItemFailures`).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use otlp2parquet_core::ports::ReceivedMessage;
use tracing_subscriber::filter::{LevelFilter, Targets};

/// Logging as a function's should be: no timestamps (CloudWatch adds its own),
/// no colours (it does not render them), and Lambda's advanced logging
/// controls honoured — JSON lines when the function's log format is JSON
/// (`AWS_LAMBDA_LOG_FORMAT`), its application log level
/// (`AWS_LAMBDA_LOG_LEVEL`) before `RUST_LOG`, `info` when neither is set.
/// Lines go to standard error, which Lambda sends to CloudWatch as it does
/// standard output, and which is not buffered.
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = log_filter(
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let lines = tracing_subscriber::fmt::layer()
        .without_time()
        .with_ansi(false)
        .with_writer(std::io::stderr);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT")
        .is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(lines.json()).init();
    } else {
        registry.with(lines).init();
    }
}

/// Which events are logged: Lambda's level (`TRACE` … `FATAL`) when the
/// function has one, else `RUST_LOG`'s directives (`info`,
/// `warn,otlp2parquet_http=debug`), else `info`. Per-target directives, not
/// `EnvFilter`'s span and field matching: that one needs regular expressions,
/// which the ingest function's size cannot afford for a feature no one uses
/// here.
fn log_filter(lambda_level: Option<&str>, rust_log: Option<&str>) -> Targets {
    let from_lambda = lambda_level.and_then(|level| {
        // Lambda's FATAL is tracing's ERROR.
        let level = if level.eq_ignore_ascii_case("fatal") {
            "error"
        } else {
            level
        };
        let level: LevelFilter = level.parse().ok()?;
        Some(Targets::new().with_default(level))
    });
    from_lambda
        .or_else(|| rust_log.and_then(|directives| directives.parse().ok()))
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// The messages of `event`, as a stage takes them.
pub fn received_messages(event: &SqsEvent) -> Vec<ReceivedMessage> {
    event.records.iter().map(received_message).collect()
}

/// One record of an `SqsEvent`. The event carries the same system attributes
/// a `ReceiveMessage` asks for (`ApproximateReceiveCount`, and
/// `MessageGroupId` on a FIFO queue) and the message's string attributes.
pub fn received_message(message: &SqsMessage) -> ReceivedMessage {
    ReceivedMessage {
        id: message.message_id.clone().unwrap_or_default(),
        receipt: message.receipt_handle.clone().unwrap_or_default(),
        body: message.body.clone().unwrap_or_default().into_bytes(),
        receive_count: message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
            .unwrap_or(1),
        group_id: message.attributes.get("MessageGroupId").cloned(),
        sent_at: message
            .attributes
            .get("SentTimestamp")
            .and_then(|millis| millis.parse().ok())
            .map(|millis| std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis)),
        attributes: message
            .message_attributes
            .iter()
            .filter_map(|(name, value)| Some((name.clone(), value.string_value.clone()?)))
            .collect(),
    }
}

/// The response that hands the messages `failed` (by id) back to the queue;
/// the others of the batch are deleted by the event source mapping.
pub fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    #[test]
    fn the_log_level_comes_from_lambda_then_rust_log_then_info() {
        let at = |filter: &Targets, target: &str, level: Level| filter.would_enable(target, &level);
        let lambda = log_filter(Some("WARN"), Some("trace"));
        assert!(at(&lambda, "otlp2parquet_core", Level::WARN));
        assert!(!at(&lambda, "otlp2parquet_core", Level::INFO));
        let fatal = log_filter(Some("FATAL"), None);
        assert!(at(&fatal, "x", Level::ERROR) && !at(&fatal, "x", Level::WARN));
        let directives = log_filter(None, Some("warn,otlp2parquet_http=debug"));
        assert!(at(&directives, "otlp2parquet_http::router", Level::DEBUG));
        assert!(!at(&directives, "hyper", Level::INFO));
        let neither = log_filter(None, None);
        assert!(at(&neither, "x", Level::INFO) && !at(&neither, "x", Level::DEBUG));
        let garbage = log_filter(Some("loud"), Some("=?="));
        assert!(at(&garbage, "x", Level::INFO) && !at(&garbage, "x", Level::DEBUG));
    }

    use super::*;

    #[test]
    fn records_of_an_event_become_received_messages() {
        // Abridged from the SQS event AWS documents for Lambda, FIFO queue.
        let event: SqsEvent = serde_json::from_value(serde_json::json!({
            "Records": [{
                "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
                "body": "{\"files\":[]}",
                "attributes": {
                    "ApproximateReceiveCount": "3",
                    "SentTimestamp": "1545082649183",
                    "MessageGroupId": "logs",
                    "MessageDeduplicationId": "c0ffee"
                },
                "messageAttributes": {
                    "otlp2parquet-failure-reason": {
                        "stringValue": "unreadable",
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": "String"
                    }
                },
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:commit.fifo",
                "awsRegion": "us-east-2"
            }]
        }))
        .unwrap();
        let messages = received_messages(&event);
        assert_eq!(messages.len(), 1);
        let message = &messages[0];
        assert_eq!(message.id, "059f36b4-87a3-44ab-83d2-661975830a7d");
        assert_eq!(message.receipt, "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a");
        assert_eq!(message.body, b"{\"files\":[]}");
        assert_eq!(message.receive_count, 3);
        assert_eq!(message.group_id.as_deref(), Some("logs"));
        assert_eq!(
            message
                .attributes
                .get("otlp2parquet-failure-reason")
                .map(String::as_str),
            Some("unreadable")
        );
    }

    #[test]
    fn the_response_names_the_failed_messages() {
        let response = batch_response(vec!["a".into(), "b".into()]);
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            serde_json::json!({
                "batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]
            })
        );
        assert_eq!(
            serde_json::to_value(batch_response(Vec::new())).unwrap(),
            serde_json::json!({"batchItemFailures": []})
        );
    }
}
