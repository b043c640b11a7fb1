//! The S3 and SQS ports against moto's server: the calls, conditions and
//! error kinds the stages rely on, through the real AWS SDK.

use std::time::Duration;

use bytes::Bytes;
use otlp2parquet_aws::{S3Store, SqsQueue, s3_client, sqs_client};
use otlp2parquet_core::ports::{
    FAILURE_REASON_ATTRIBUTE, ObjectStore, ObjectStoreError, Queue, QueueError, SendOptions,
    parquet_metadata,
};
use otlp2parquet_testkit::moto::{Moto, queue_with_dead_letter_queue, sdk_config, unique_name};

async fn bucket(moto: &Moto) -> (aws_sdk_s3::Client, String) {
    let client = s3_client(&sdk_config(&moto.endpoint).await);
    let name = unique_name("bucket");
    client.create_bucket().bucket(&name).send().await.unwrap();
    (client, name)
}

/// A queue with a dead-letter queue after `max_receives` receives.
async fn queue_pair(moto: &Moto, fifo: bool, max_receives: u32) -> (SqsQueue, SqsQueue) {
    let client = sqs_client(&sdk_config(&moto.endpoint).await);
    let (url, dead_letter_url) = queue_with_dead_letter_queue(&client, fifo, max_receives).await;
    (
        SqsQueue::new(client.clone(), url),
        SqsQueue::new(client, dead_letter_url),
    )
}

#[tokio::test]
async fn s3_store_puts_reads_conditions_lists_and_deletes() {
    let moto = Moto::start();
    let (client, bucket) = bucket(&moto).await;
    let store = S3Store::new(client.clone(), &bucket, "/warehouse/");
    assert_eq!(
        store.uri("a/b.parquet"),
        format!("s3://{bucket}/warehouse/a/b.parquet")
    );

    assert_eq!(store.head("a/missing").await.unwrap(), None);
    assert!(matches!(
        store.get("a/missing").await,
        Err(ObjectStoreError::NotFound { .. })
    ));
    store
        .put("a/one", Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    assert_eq!(store.head("a/one").await.unwrap().unwrap().size, 10);
    assert_eq!(
        store.get("a/one").await.unwrap(),
        Bytes::from_static(b"0123456789")
    );
    assert_eq!(
        store.get_range("a/one", 2..5).await.unwrap(),
        Bytes::from_static(b"234")
    );
    // Past the end: cut at the end, and empty when it starts there.
    assert_eq!(
        store.get_range("a/one", 8..100).await.unwrap(),
        Bytes::from_static(b"89")
    );
    assert_eq!(
        store.get_range("a/one", 10..20).await.unwrap(),
        Bytes::new()
    );

    // Create-only: the second writer learns it lost, and the object is the first's.
    assert!(
        store
            .put_if_absent("claims/x", Bytes::from_static(b"first"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .put_if_absent("claims/x", Bytes::from_static(b"second"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get("claims/x").await.unwrap(),
        Bytes::from_static(b"first")
    );

    // Listing is relative to the store's prefix and pages past S3's 1,000 keys.
    let keys: Vec<String> = (0..1_050).map(|n| format!("many/{n:05}")).collect();
    for key in &keys {
        store.put(key, Bytes::from_static(b"x")).await.unwrap();
    }
    let mut listed = store.list("many/").await.unwrap();
    listed.sort();
    assert_eq!(listed, keys);
    // Nothing outside the prefix is seen.
    client
        .put_object()
        .bucket(&bucket)
        .key("elsewhere/many/1")
        .body(Bytes::from_static(b"x").into())
        .send()
        .await
        .unwrap();
    assert_eq!(store.list("many/").await.unwrap().len(), 1_050);

    // Batch deletes in chunks of S3's 1,000, missing keys included.
    let mut doomed = keys.clone();
    doomed.push("many/never-written".into());
    store.delete_many(&doomed).await.unwrap();
    assert!(store.list("many/").await.unwrap().is_empty());
    store.delete("a/one").await.unwrap();
    store.delete("a/one").await.unwrap();
    assert_eq!(store.head("a/one").await.unwrap(), None);
}

#[tokio::test]
async fn s3_store_uploads_large_files_in_parts_and_reads_footers_by_range() {
    let moto = Moto::start();
    let (client, bucket) = bucket(&moto).await;
    let store = S3Store::new(client, &bucket, "").with_part_bytes(5 * 1024 * 1024);
    let dir = tempfile::tempdir().unwrap();

    // 11 MiB: three parts of at most 5 MiB.
    let path = dir.path().join("big");
    let content: Vec<u8> = (0..11 * 1024 * 1024u32).map(|n| (n % 251) as u8).collect();
    std::fs::write(&path, &content).unwrap();
    store.put_file("big", &path).await.unwrap();
    assert!(!path.exists(), "put_file consumes the local file");
    assert_eq!(store.get("big").await.unwrap().as_ref(), content.as_slice());

    // A real Parquet file: its footer comes back through ranged reads.
    let batch = arrow::record_batch::RecordBatch::try_from_iter([(
        "n",
        std::sync::Arc::new(arrow::array::Int64Array::from_iter_values(0..1000)) as _,
    )])
    .unwrap();
    let mut parquet = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut parquet, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let path = dir.path().join("small.parquet");
    std::fs::write(&path, &parquet).unwrap();
    store.put_file("t/small.parquet", &path).await.unwrap();
    let metadata = parquet_metadata(&store, "t/small.parquet").await.unwrap();
    assert_eq!(metadata.file_metadata().num_rows(), 1000);
}

#[tokio::test]
async fn sqs_queue_delivers_at_least_once_and_dead_letters_with_a_reason() {
    let moto = Moto::start();
    let (queue, dead_letter) = queue_pair(&moto, false, 3).await;
    let options = SendOptions::default().with_attribute("table", "otel.logs");
    let id = queue.send_with(b"{\"n\":1}", &options).await.unwrap();
    queue.send(b"{\"n\":2}").await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), 2);

    let first = queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(first.len(), 2);
    let one = first.iter().find(|m| m.id == id).unwrap();
    assert_eq!(one.body, b"{\"n\":1}");
    assert_eq!(one.receive_count, 1);
    assert_eq!(
        one.attributes.get("table").map(String::as_str),
        Some("otel.logs")
    );
    assert_eq!(one.group_id, None);
    // Hidden while received.
    assert!(
        queue
            .receive(10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );

    // Handed back at once: delivered again, with a new receipt and count.
    assert!(
        queue
            .change_visibility(&one.receipt, Duration::ZERO)
            .await
            .unwrap()
    );
    let again = queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, id);
    assert_eq!(again[0].receive_count, 2);

    // Poison: moved now, with the reason; the other message is deleted.
    assert!(
        queue
            .dead_letter(&again[0], "names data that cannot be found")
            .await
            .unwrap()
    );
    let other = first.iter().find(|m| m.id != id).unwrap();
    assert!(queue.delete(&other.receipt).await.unwrap());
    assert_eq!(queue.depth().await.unwrap(), 0);
    let dead = dead_letter
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, b"{\"n\":1}");
    assert_eq!(
        dead[0]
            .attributes
            .get(FAILURE_REASON_ATTRIBUTE)
            .map(String::as_str),
        Some("names data that cannot be found")
    );
    assert_eq!(
        dead[0].attributes.get("table").map(String::as_str),
        Some("otel.logs")
    );
}

#[tokio::test]
async fn sqs_redrive_moves_a_message_after_its_last_receive() {
    let moto = Moto::start();
    let (queue, dead_letter) = queue_pair(&moto, false, 2).await;
    queue.send(b"poison").await.unwrap();
    for _ in 0..2 {
        let got = queue.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(got.len(), 1);
        queue
            .change_visibility(&got[0].receipt, Duration::ZERO)
            .await
            .unwrap();
    }
    assert!(
        queue
            .receive(10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
    let dead = dead_letter
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, b"poison");
}

#[tokio::test]
async fn sqs_fifo_keeps_groups_and_deduplicates() {
    let moto = Moto::start();
    let (queue, dead_letter) = queue_pair(&moto, true, 5).await;
    let logs = SendOptions::default().with_group_id("otel.logs");
    let first = queue
        .send_with(b"a", &logs.clone().with_deduplication_id("compaction-1"))
        .await
        .unwrap();
    // The same deduplication id again is accepted and dropped.
    queue
        .send_with(b"a", &logs.clone().with_deduplication_id("compaction-1"))
        .await
        .unwrap();
    // Without one, equal bodies are two messages.
    queue.send_with(b"b", &logs).await.unwrap();
    queue.send_with(b"b", &logs).await.unwrap();
    queue
        .send_with(b"c", &SendOptions::default().with_group_id("otel.spans"))
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(queue.receive(10, Duration::from_secs(30)).await.unwrap());
    }
    assert_eq!(got.len(), 4, "one duplicate dropped");
    let logs: Vec<_> = got
        .iter()
        .filter(|m| m.group_id.as_deref() == Some("otel.logs"))
        .collect();
    assert_eq!(logs.len(), 3);
    assert_eq!(logs[0].id, first);
    assert_eq!(
        logs.iter().map(|m| m.body.clone()).collect::<Vec<_>>(),
        [b"a", b"b", b"b"]
    );

    // A FIFO dead-letter queue keeps the group.
    assert!(queue.dead_letter(logs[0], "unreadable").await.unwrap());
    let dead = dead_letter
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].group_id.as_deref(), Some("otel.logs"));
}

#[tokio::test]
async fn sqs_refuses_oversized_bodies_before_sending() {
    let moto = Moto::start();
    let (queue, _) = queue_pair(&moto, false, 3).await;
    let queue = queue.with_max_message_bytes(1024);
    let err = queue.send(&[b'x'; 2048]).await.unwrap_err();
    assert!(matches!(
        err,
        QueueError::TooLarge {
            bytes: 2048,
            limit: 1024,
            ..
        }
    ));
    assert!(!err.retryable());
    assert_eq!(queue.depth().await.unwrap(), 0);
}

#[tokio::test]
async fn a_dead_letter_needs_a_redrive_policy() {
    let moto = Moto::start();
    let client = sqs_client(&sdk_config(&moto.endpoint).await);
    let url = client
        .create_queue()
        .queue_name(unique_name("lonely"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let queue = SqsQueue::new(client, url);
    queue.send(b"x").await.unwrap();
    let got = queue.receive(1, Duration::from_secs(30)).await.unwrap();
    let err = queue.dead_letter(&got[0], "why").await.unwrap_err();
    assert!(err.to_string().contains("redrive policy"), "{err}");
}
