//! The two operations the ingest stage needs of its ports: put an object,
//! send a message.
//!
//! Every [`ObjectStore`] is an [`ObjectSink`] and every [`Queue`] a
//! [`MessageSink`]. The traits exist for a backend that offers only these
//! two operations: the ingest Lambda's signed-HTTP S3 and SQS clients
//! (`otlp2parquet_aws::signed`) stand in for the AWS SDK there, because
//! the function has a size goal and needs nothing else of either service.

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectStore, ObjectStoreError, Queue, QueueError, SendOptions};

/// Somewhere objects can be written: [`ObjectStore::put`] alone.
#[async_trait]
pub trait ObjectSink: Send + Sync {
    /// Writes `bytes` at `key` durably, replacing any object there.
    async fn put_object(&self, key: &str, bytes: Bytes) -> Result<(), ObjectStoreError>;
}

#[async_trait]
impl<T: ObjectStore + ?Sized> ObjectSink for T {
    async fn put_object(&self, key: &str, bytes: Bytes) -> Result<(), ObjectStoreError> {
        self.put(key, bytes).await
    }
}

/// Somewhere messages can be sent: [`Queue::send_with`] alone.
#[async_trait]
pub trait MessageSink: Send + Sync {
    /// Enqueues one message durably and returns its id; see
    /// [`Queue::send_with`].
    async fn send_message(&self, body: &[u8], options: &SendOptions) -> Result<String, QueueError>;
}

#[async_trait]
impl<T: Queue + ?Sized> MessageSink for T {
    async fn send_message(&self, body: &[u8], options: &SendOptions) -> Result<String, QueueError> {
        self.send_with(body, options).await
    }
}
