//! A message queue with the semantics of Amazon SQS.
//!
//! At-least-once delivery: a received message is hidden for a visibility timeout
//! and comes back unless it is deleted before the timeout ends — a consumer that
//! crashes loses nothing. Each receive counts; a message received more than the
//! queue's maximum number of times goes to its dead-letter queue instead of being
//! delivered again, so one poisonous message cannot block the pipeline.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

/// A message handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Stable id of the message, the same on every delivery.
    pub id: String,
    /// Handle of this delivery: deleting or extending needs it, and it is
    /// invalidated by the next delivery of the same message.
    pub receipt: String,
    /// The message body.
    pub body: Vec<u8>,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
    /// The FIFO message group it was sent in, if the queue keeps groups
    /// (SQS FIFO queues do): a Lambda reporting a failed FIFO message must also
    /// report every later message of the same group.
    pub group_id: Option<String>,
    /// Attributes of the message (SQS message attributes): for a message in a
    /// dead-letter queue, [`FAILURE_REASON_ATTRIBUTE`] says why it is there.
    pub attributes: BTreeMap<String, String>,
    /// When the message was first sent, if the queue records it (SQS's
    /// `SentTimestamp`): `otlp2parquet dlq inspect` shows ages.
    pub sent_at: Option<std::time::SystemTime>,
}

/// The attribute a stage that gave up on a message records its reason in.
pub const FAILURE_REASON_ATTRIBUTE: &str = "otlp2parquet-failure-reason";

/// Errors of a queue backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The message is larger than the queue takes; sending it again cannot
    /// help (a large body must be passed by reference, as an object).
    #[error("queue {queue}: a message of {bytes} bytes is over the limit of {limit}")]
    TooLarge {
        /// The queue.
        queue: String,
        /// The message's size.
        bytes: usize,
        /// The queue's limit.
        limit: usize,
    },
    /// The backend asked us to slow down; retry later.
    #[error("queue {queue}: throttled: {message}")]
    Throttled {
        /// The queue.
        queue: String,
        /// What the backend said.
        message: String,
    },
    /// The backend failed (database, network); the operation may succeed later.
    #[error("queue {queue}: {message}")]
    Backend {
        /// The queue.
        queue: String,
        /// What went wrong.
        message: String,
    },
}

impl QueueError {
    /// [`QueueError::TooLarge`] when a body of `bytes` is over `limit`, as
    /// every queue checks before it sends.
    pub fn check_size(queue: &str, bytes: usize, limit: usize) -> Result<(), QueueError> {
        if bytes > limit {
            return Err(QueueError::TooLarge {
                queue: queue.to_string(),
                bytes,
                limit,
            });
        }
        Ok(())
    }

    /// Whether the same operation may succeed when tried again.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            QueueError::Throttled { .. } | QueueError::Backend { .. }
        )
    }
}

/// SQS's per-message options of a send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendOptions {
    /// FIFO message group: a group's messages are delivered in order, and a
    /// failing one holds back only its own group (the commit queue groups by
    /// table). Queues that deliver everything in one order may ignore it.
    pub group_id: Option<String>,
    /// FIFO deduplication id: another send with the same id while the first
    /// is still known to the queue is accepted and dropped.
    pub deduplication_id: Option<String>,
    /// Message attributes, delivered with the message.
    pub attributes: BTreeMap<String, String>,
}

impl SendOptions {
    /// These options in message group `id`.
    pub fn with_group_id(mut self, id: impl Into<String>) -> Self {
        self.group_id = Some(id.into());
        self
    }

    /// These options with deduplication id `id`.
    pub fn with_deduplication_id(mut self, id: impl Into<String>) -> Self {
        self.deduplication_id = Some(id.into());
        self
    }

    /// These options with the attribute `name` = `value`.
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }
}

/// A queue: see the module docs.
#[async_trait]
pub trait Queue: Send + Sync {
    /// The queue's name, for logs and errors.
    fn name(&self) -> &str;

    /// Enqueues one message durably; returns its id (for a deduplicated
    /// send, the id of the message it duplicates). A body over
    /// [`Queue::max_message_bytes`] is refused with [`QueueError::TooLarge`];
    /// `crate::messages::send_message` passes such bodies by reference.
    async fn send_with(&self, body: &[u8], options: &SendOptions) -> Result<String, QueueError>;
    /// [`Queue::send_with`] without options.
    async fn send(&self, body: &[u8]) -> Result<String, QueueError> {
        self.send_with(body, &SendOptions::default()).await
    }
    /// Largest message body the queue takes, in bytes.
    fn max_message_bytes(&self) -> usize {
        usize::MAX
    }

    /// Receives up to `max` visible messages and hides them for `visibility`.
    /// Messages past the maximum receive count move to the dead-letter queue.
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;

    /// Deletes a received message. Returns false if the receipt is stale (the
    /// message became visible again and was redelivered, or is already deleted).
    async fn delete(&self, receipt: &str) -> Result<bool, QueueError>;

    /// Sets how long a received message stays hidden from now on (SQS
    /// `ChangeMessageVisibility`): a consumer that failed hands it back for a
    /// retry after `visibility` rather than after the whole timeout. Returns false
    /// if the receipt is stale.
    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<bool, QueueError>;

    /// Moves a received message to this queue's dead-letter queue now, recording
    /// `reason` with it (shown by `otlp2parquet dlq show`), instead of letting it
    /// come back until its last receive. Returns false if the receipt is stale.
    async fn dead_letter(
        &self,
        message: &ReceivedMessage,
        reason: &str,
    ) -> Result<bool, QueueError>;

    /// Number of messages in the queue, visible or not (for metrics).
    async fn depth(&self) -> Result<u64, QueueError>;
}
