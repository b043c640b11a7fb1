//! The bodies the stages send each other through their queues.
//!
//! They are JSON, so that a message in a dead-letter queue can be read by a
//! person (`otlp2parquet dlq show`), and strict (`deny_unknown_fields`), so that
//! a message of another stage or version is refused as poison rather than
//! half understood.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::ports::{ObjectStore, ObjectStoreError, Queue, ReceivedMessage, SendOptions};

/// The message the ingest stage sends for each request: every raw file it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilesWritten {
    /// The files, one per table and day the request had records for.
    pub files: Vec<RawFileWritten>,
}

/// One raw file of a [`RawFilesWritten`] message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileWritten {
    /// The destination table (`logs`, `metrics_sum`, …).
    pub table: String,
    /// Object key of the raw file.
    pub key: String,
    /// Day partition of every row in the file (days since the epoch), if any.
    pub day: Option<i32>,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
}

/// The message the compactor sends for each finished compaction: the files to
/// append to one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFilesReady {
    /// The destination table (`logs`, `metrics_sum`, …).
    pub table: String,
    /// Id of the compaction that produced the files. The committer records it in
    /// the snapshot, so a message sent twice is committed once.
    pub compaction: String,
    /// Rows in all the files.
    pub rows: u64,
    /// The files as Iceberg `DataFile`s, in the JSON form of Iceberg's manifest
    /// entries (format version 2): path, size, counts, bounds, partition.
    pub data_files: Vec<String>,
}

/// The attribute of a message whose body was too large for its queue: the key,
/// in the state store, of the object that holds the body.
pub const BODY_OBJECT_ATTRIBUTE: &str = "otlp2parquet-body-object";

/// Where a body too large for `queue` is kept: under `messages/`, named by the
/// deduplication id when there is one, so that a retried send rewrites the
/// same object instead of leaving another behind.
fn body_object_key(queue: &str, options: &SendOptions) -> String {
    let name = options
        .deduplication_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    format!("messages/{queue}/{name}.json")
}

/// Sends `body` to `queue`; a body larger than the queue takes (SQS: 1 MiB;
/// a compaction's `DataFile`s can exceed it) is stored in `state` first and
/// the message carries its key ([`BODY_OBJECT_ATTRIBUTE`]). The object is
/// never deleted by the pipeline: a message may come back from a dead-letter
/// queue days later, so the state store's lifecycle rule removes `messages/`
/// by age, after the queues' retention.
pub async fn send_message(
    queue: &dyn Queue,
    state: &dyn ObjectStore,
    body: &[u8],
    options: SendOptions,
) -> Result<String, Error> {
    if body.len() <= queue.max_message_bytes() {
        return Ok(queue.send_with(body, &options).await?);
    }
    let key = body_object_key(queue.name(), &options);
    state.put(&key, Bytes::copy_from_slice(body)).await?;
    // Readable in `dlq show`; the attribute is what readers act on.
    let pointer = serde_json::json!({ "body_object": key }).to_string();
    let options = options.with_attribute(BODY_OBJECT_ATTRIBUTE, key);
    Ok(queue.send_with(pointer.as_bytes(), &options).await?)
}

/// Why a message's body could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The object holding the body is gone: the message can never be read.
    #[error("the body object {key} of the message does not exist")]
    Missing {
        /// Its key in the state store.
        key: String,
    },
    /// Reading it failed; it may work later.
    #[error("reading the body object of the message: {0}")]
    Store(#[source] ObjectStoreError),
}

/// The body of `message`: its own, or the object it refers to
/// ([`send_message`]).
pub async fn message_body(
    state: &dyn ObjectStore,
    message: &ReceivedMessage,
) -> Result<Bytes, BodyError> {
    let Some(key) = message.attributes.get(BODY_OBJECT_ATTRIBUTE) else {
        return Ok(Bytes::copy_from_slice(&message.body));
    };
    match state.get(key).await {
        Ok(body) => Ok(body),
        Err(ObjectStoreError::NotFound { .. }) => Err(BodyError::Missing { key: key.clone() }),
        Err(e) => Err(BodyError::Store(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MemoryQueues, MemoryStore, QueueError};
    use std::time::Duration;

    // A body over the queue's limit travels as an object in the state store,
    // and the reader gets the same bytes back; a small one goes as it is.
    #[tokio::test]
    async fn large_bodies_go_by_reference() {
        let queue = MemoryQueues::new()
            .queue("commit", "commit-dlq", 3)
            .with_max_message_bytes(100);
        let state = MemoryStore::new();
        let large = vec![b'x'; 1000];
        let options = SendOptions::default().with_deduplication_id("compaction-1");
        send_message(&queue, &state, &large, options.clone())
            .await
            .unwrap();
        send_message(&queue, &state, b"small", SendOptions::default())
            .await
            .unwrap();
        assert_eq!(
            state.list("messages/").await.unwrap(),
            ["messages/commit/compaction-1.json"]
        );
        let received = queue.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(received.len(), 2);
        assert!(received[0].body.len() <= 100);
        assert_eq!(message_body(&state, &received[0]).await.unwrap(), large);
        assert_eq!(message_body(&state, &received[1]).await.unwrap(), "small");

        // Sent again with the same deduplication id: one object, one message.
        send_message(&queue, &state, &large, options).await.unwrap();
        assert_eq!(state.list("messages/").await.unwrap().len(), 1);
        assert_eq!(queue.depth().await.unwrap(), 2);

        state
            .delete("messages/commit/compaction-1.json")
            .await
            .unwrap();
        let err = message_body(&state, &received[0]).await.unwrap_err();
        assert!(matches!(err, BodyError::Missing { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_body_too_large_without_a_store_is_refused_for_good() {
        let queue = MemoryQueues::new()
            .queue("q", "q-dlq", 3)
            .with_max_message_bytes(10);
        let err = queue.send(&[0; 11]).await.unwrap_err();
        assert!(matches!(err, QueueError::TooLarge { .. }) && !err.retryable());
    }
}
