//! A real S3, SQS and S3 Tables emulator for tests: moto's server (PyPI
//! `moto[server]`, installed into the project's `.venv` by `scripts/test.sh`).
//!
//! `scripts/test.sh` starts one server for the whole run and exports its
//! address as `OTLP2PARQUET_TEST_MOTO_URL`; tests then share it and keep apart
//! by naming their own buckets and queues ([`unique_name`]). Run alone (`cargo
//! test` with the virtualenv in place), a test starts a server of its own.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server, stopped on drop if this test started it.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: Option<Child>,
}

impl Moto {
    /// The shared server, or a new one.
    ///
    /// # Panics
    /// When there is no shared server and moto cannot be found or
    /// does not come up: the message says how to get it.
    pub fn start() -> Moto {
        if let Ok(endpoint) = std::env::var("OTLP2PARQUET_TEST_MOTO_URL") {
            return Moto {
                endpoint,
                child: None,
            };
        }
        // moto from the project's virtualenv, started through our launcher,
        // which fixes two S3 Tables replies the Rust SDK refuses (see it).
        let python = venv_python();
        let launcher = concat!(env!("CARGO_MANIFEST_DIR"), "/moto_server.py");
        let port = free_port();
        let child = Command::new(&python)
            .args([launcher, "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {launcher} with {python}: {e}"));
        let moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        };
        wait_listening(port, "moto_server");
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port nothing listens on now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until something accepts connections on `port`.
///
/// # Panics
/// After 60 s.
pub(crate) fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.0 request to a test helper's control path on `port` (the
/// front door's and the fault front's own paths); the answer's body.
///
/// # Panics
/// When the helper cannot be reached.
pub(crate) fn http_control(port: u16, method: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to a test helper");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("asking a test helper");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("its answer");
    reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// The project's virtualenv Python (moto, botocore, PyIceberg), or
/// `OTLP2PARQUET_MOTO_PYTHON`.
///
/// # Panics
/// When there is none: the message says how to get it.
pub fn venv_python() -> String {
    let python = std::env::var("OTLP2PARQUET_MOTO_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python").to_string()
    });
    assert!(
        std::path::Path::new(&python).exists(),
        "no Python with moto at {python}: run scripts/test.sh once (it installs \
         tests/requirements.txt into .venv), or set OTLP2PARQUET_MOTO_PYTHON or \
         OTLP2PARQUET_TEST_MOTO_URL"
    );
    python
}

/// A name no other test uses: `prefix` and a random suffix, lower case,
/// valid for S3 buckets and SQS queues.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// An AWS SDK configuration for the emulator at `endpoint`: fixed test
/// credentials, `us-east-1`.
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(otlp2parquet_aws::https_client())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await
}

/// Creates a queue (FIFO when `fifo`) whose redrive policy moves a message to
/// a dead-letter queue of its own after `max_receives` receives, as every
/// queue of a deployment has; returns the two URLs.
pub async fn queue_with_dead_letter_queue(
    client: &aws_sdk_sqs::Client,
    fifo: bool,
    max_receives: u32,
) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let suffix = if fifo { ".fifo" } else { "" };
    let create = |name: String| {
        let mut request = client.create_queue().queue_name(name);
        if fifo {
            request = request.attributes(QueueAttributeName::FifoQueue, "true");
        }
        async move {
            request
                .send()
                .await
                .expect("creating a queue on moto")
                .queue_url()
                .expect("a queue URL")
                .to_string()
        }
    };
    let dead_letter_url = create(format!("{}{suffix}", unique_name("dlq"))).await;
    let dead_letter_arn = client
        .get_queue_attributes()
        .queue_url(&dead_letter_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("the dead-letter queue's attributes")
        .attributes()
        .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn).cloned())
        .expect("the dead-letter queue's ARN");
    let url = create(format!("{}{suffix}", unique_name("queue"))).await;
    let policy = serde_json::json!({
        "deadLetterTargetArn": dead_letter_arn,
        "maxReceiveCount": max_receives.to_string(),
    });
    client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        .send()
        .await
        .expect("setting the redrive policy");
    (url, dead_letter_url)
}

/// Receives `expected` messages of `queue_url` (hidden for a minute, as the
/// event source mapping does) and builds the `SqsEvent` that Lambda's SQS
/// event source would hand a function: system and message attributes
/// included.
///
/// # Panics
/// When fewer arrive within 30 s.
pub async fn sqs_event(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    expected: usize,
) -> serde_json::Value {
    use serde_json::{Value, json};
    use std::time::Duration;
    let mut records = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while records.len() < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {expected} messages arrived",
            records.len()
        );
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        for message in received.messages() {
            let attributes: serde_json::Map<String, Value> = message
                .attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.as_str().to_string(), json!(value)))
                .collect();
            let message_attributes: serde_json::Map<String, Value> = message
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| {
                    (
                        name.clone(),
                        json!({
                            "stringValue": value.string_value(),
                            "stringListValues": [],
                            "binaryListValues": [],
                            "dataType": value.data_type(),
                        }),
                    )
                })
                .collect();
            records.push(json!({
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "body": message.body(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": message.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{}", queue_url.rsplit('/').next().unwrap_or_default()),
                "awsRegion": "us-east-1"
            }));
        }
    }
    json!({ "Records": records })
}
