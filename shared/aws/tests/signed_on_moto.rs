//! The signed-HTTP sinks (`otlp2parquet_aws::signed`, the ingest
//! function's S3 and SQS calls) against moto, behind a front that checks
//! every signature with botocore's signer and injects failures: what they
//! write is read back through the SDK's ports, as the compactor reads it.

use std::time::Duration;

use bytes::Bytes;
use otlp2parquet_aws::config::Variables;
use otlp2parquet_aws::signed::{S3Sink, SignedClient, SqsSink};
use otlp2parquet_aws::{S3Store, SqsQueue, s3_client, sqs_client};
use otlp2parquet_core::ports::{
    MessageSink, ObjectSink, ObjectStore, ObjectStoreError, Queue, QueueError, SendOptions,
};
use otlp2parquet_testkit::fault_front::FaultFront;
use otlp2parquet_testkit::moto::{Moto, queue_with_dead_letter_queue, sdk_config, unique_name};
use serde_json::json;

fn signed_client(endpoint: &str, secret: &str) -> SignedClient {
    SignedClient::from_variables(&Variables::from_pairs(&[
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_SESSION_TOKEN", "session"),
        ("AWS_ENDPOINT_URL", endpoint),
    ]))
    .unwrap()
}

#[tokio::test]
async fn puts_and_sends_are_signed_as_aws_signs_them_and_read_back_whole() {
    let moto = Moto::start();
    let front = FaultFront::start_verifying_signatures(&moto.endpoint);
    // The SDK's own requests pass the same check: the front checks right.
    let sdk = sdk_config(&front.endpoint).await;
    let (s3, sqs) = (s3_client(&sdk), sqs_client(&sdk));
    let bucket = unique_name("bucket");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let (standard, _) = queue_with_dead_letter_queue(&sqs, false, 3).await;
    let (fifo, _) = queue_with_dead_letter_queue(&sqs, true, 3).await;
    assert_eq!(front.refused(), 0, "the SDK's requests were refused");

    let client = signed_client(&front.endpoint, "testing");
    let sink = S3Sink::new(client.clone(), &bucket, "/warehouse/");
    // Keys as ingest names them, and worse: '=', spaces, '+', non-ASCII.
    let keys = [
        "otel/logs/day=2026-12-07/0193a1b2.parquet",
        "otel/odd key+plus/ümlaut~tilde*star.parquet",
    ];
    let body = Bytes::from((0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    for key in keys {
        sink.put_object(key, body.clone()).await.unwrap();
    }
    let store = S3Store::new(s3.clone(), &bucket, "warehouse");
    for key in keys {
        assert_eq!(store.get(key).await.unwrap(), body, "{key}");
    }

    let options = SendOptions::default().with_attribute("reason", "a test");
    let id = SqsSink::new(client.clone(), &standard)
        .send_message(br#"{"files":[]}"#, &options)
        .await
        .unwrap();
    assert!(!id.is_empty());
    let received = SqsQueue::new(sqs.clone(), &standard)
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].id, id);
    assert_eq!(received[0].body, br#"{"files":[]}"#);
    assert_eq!(received[0].attributes["reason"], "a test");

    let fifo_sink = SqsSink::new(client, &fifo);
    let grouped = SendOptions::default()
        .with_group_id("otel.logs")
        .with_deduplication_id("compaction-1");
    // Sent twice with one deduplication id, within SQS's window: delivered once.
    for _ in 0..2 {
        fifo_sink.send_message(b"one", &grouped).await.unwrap();
    }
    let received = SqsQueue::new(sqs, &fifo)
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].group_id.as_deref(), Some("otel.logs"));
    assert_eq!(front.refused(), 0, "a signed request was refused");

    // A wrong secret is caught by the front: its check is not a formality,
    // and a refusal is an error that names its code, not retried.
    let wrong = signed_client(&front.endpoint, "not-the-secret");
    let error = S3Sink::new(wrong, &bucket, "")
        .put_object("k", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ObjectStoreError::Backend { message, .. }
            if message.contains("403 SignatureDoesNotMatch") && !message.contains("attempts")),
        "{error}"
    );
    assert_eq!(front.refused(), 1);
}

#[tokio::test]
async fn failures_are_retried_as_the_sdk_retries_them_and_then_reported() {
    let moto = Moto::start();
    let front = FaultFront::start(&moto.endpoint, 0.0);
    let sdk = sdk_config(&moto.endpoint).await;
    let bucket = unique_name("bucket");
    s3_client(&sdk)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let (queue, _) = queue_with_dead_letter_queue(&sqs_client(&sdk), false, 3).await;
    let client = signed_client(&front.endpoint, "testing");
    let sink = S3Sink::new(client.clone(), &bucket, "");
    let queue_sink = SqsSink::new(client.clone(), &queue);

    // Two 503s, and an answer lost after moto stored the object: the third
    // attempt of each call gets through.
    front.set_rules(json!([
        {"method": "PUT", "path": "/retried", "when": "before", "status": 503, "times": 2},
        {"method": "POST", "target": "SendMessage", "when": "after", "status": 500, "times": 2},
    ]));
    sink.put_object("retried", Bytes::from_static(b"data"))
        .await
        .unwrap();
    queue_sink
        .send_message(b"{}", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(front.injected(), 4);

    // Throttled three times: given up after AWS_MAX_ATTEMPTS (3), as a
    // throttling error the router answers 503 for.
    front.set_rules(json!([
        {"method": "PUT", "path": "/throttled", "when": "before", "status": 503, "times": 3},
    ]));
    let error = sink
        .put_object("throttled", Bytes::from_static(b"data"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ObjectStoreError::Throttled { message, .. }
            if message.contains("503 SlowDown") && message.contains("after 3 attempts")),
        "{error}"
    );

    // What no retry mends fails at once, with the service's own words.
    let error = S3Sink::new(client.clone(), unique_name("missing"), "")
        .put_object("k", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ObjectStoreError::Backend { message, .. }
            if message.contains("NoSuchBucket") && !message.contains("attempts")),
        "{error}"
    );
    let missing_queue = format!("{}/000000000000/{}", moto.endpoint, unique_name("missing"));
    let error = SqsSink::new(client, missing_queue)
        .send_message(b"{}", &SendOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, QueueError::Backend { message, .. }
            if message.contains("400") && !message.contains("attempts")),
        "{error}"
    );

    // The store saw the retried object once, whole.
    let store = S3Store::new(s3_client(&sdk), &bucket, "");
    assert_eq!(
        store.get("retried").await.unwrap(),
        Bytes::from_static(b"data")
    );
}
