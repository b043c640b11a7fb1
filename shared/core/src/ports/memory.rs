//! In-memory implementations of the ports, for tests: no directory, no
//! database, and the same semantics as the real ones (create-only puts,
//! visibility timeouts, receive counts, dead-letter queues).

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::object_store::{ObjectMeta, ObjectStore, ObjectStoreError};
use super::queue::{FAILURE_REASON_ATTRIBUTE, Queue, QueueError, ReceivedMessage, SendOptions};

/// An object store in a map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        // A panic while holding the lock leaves the map as it was: keep going.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), ObjectStoreError> {
        self.objects().insert(key.to_string(), bytes);
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<bool, ObjectStoreError> {
        let mut objects = self.objects();
        if objects.contains_key(key) {
            return Ok(false);
        }
        objects.insert(key.to_string(), bytes);
        Ok(true)
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), ObjectStoreError> {
        let backend = |e: std::io::Error| ObjectStoreError::Backend {
            key: key.to_string(),
            message: e.to_string(),
        };
        let bytes = std::fs::read(path).map_err(backend)?;
        std::fs::remove_file(path).map_err(backend)?;
        self.put(key, bytes.into()).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, ObjectStoreError> {
        Ok(self.objects().get(key).map(|b| ObjectMeta {
            size: b.len() as u64,
        }))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError> {
        let object = self.get(key).await?;
        let end = (range.end as usize).min(object.len());
        let start = (range.start as usize).min(end);
        Ok(object.slice(start..end))
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        self.objects()
            .get(key)
            .cloned()
            .ok_or_else(|| ObjectStoreError::NotFound {
                key: key.to_string(),
            })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError> {
        Ok(self
            .objects()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        self.objects().remove(key);
        Ok(())
    }

    fn uri(&self, key: &str) -> String {
        format!("memory:///{key}")
    }
}

#[derive(Debug)]
struct Stored {
    id: String,
    body: Vec<u8>,
    receive_count: u32,
    visible_at: Instant,
    receipt: Option<String>,
    attributes: BTreeMap<String, String>,
    group_id: Option<String>,
}

#[derive(Debug, Default)]
struct Queues {
    /// Messages by queue name, oldest first.
    messages: BTreeMap<String, VecDeque<Stored>>,
    /// Message ids by (queue, deduplication id), while the message exists.
    deduplication: BTreeMap<(String, String), String>,
    next: u64,
}

/// In-memory queues with the semantics of SQS; [`MemoryQueues::queue`] hands
/// out a named queue with its dead-letter queue.
#[derive(Debug, Default, Clone)]
pub struct MemoryQueues {
    inner: std::sync::Arc<Mutex<Queues>>,
}

/// One queue of a [`MemoryQueues`].
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    queues: MemoryQueues,
    name: String,
    dead_letter: Option<String>,
    max_receives: u32,
    max_message_bytes: usize,
}

impl MemoryQueues {
    /// No queues yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The queue `name`, whose messages move to `dead_letter` when they are
    /// received after `max_receives` receives.
    pub fn queue(&self, name: &str, dead_letter: &str, max_receives: u32) -> MemoryQueue {
        MemoryQueue {
            queues: self.clone(),
            name: name.to_string(),
            dead_letter: Some(dead_letter.to_string()),
            max_receives,
            max_message_bytes: usize::MAX,
        }
    }

    /// A dead-letter queue (it has none of its own).
    pub fn dead_letter_queue(&self, name: &str) -> MemoryQueue {
        MemoryQueue {
            queues: self.clone(),
            name: name.to_string(),
            dead_letter: None,
            max_receives: u32::MAX,
            max_message_bytes: usize::MAX,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MemoryQueue {
    /// This queue, refusing bodies over `bytes` as SQS does over its limit.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    fn move_to_dead_letter(queues: &mut Queues, from: &str, to: &str, index: usize) {
        if let Some(mut message) = queues.messages.get_mut(from).and_then(|q| q.remove(index)) {
            message.receipt = None;
            message.receive_count = 0;
            message.visible_at = Instant::now();
            queues
                .messages
                .entry(to.to_string())
                .or_default()
                .push_back(message);
        }
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    async fn send_with(&self, body: &[u8], options: &SendOptions) -> Result<String, QueueError> {
        QueueError::check_size(&self.name, body.len(), self.max_message_bytes)?;
        let mut queues = self.queues.lock();
        if let Some(dedup) = &options.deduplication_id {
            let known = queues
                .deduplication
                .get(&(self.name.clone(), dedup.clone()));
            if let Some(id) = known.cloned() {
                let present = queues.messages.values().flatten().any(|m| m.id == id);
                if present {
                    return Ok(id);
                }
            }
        }
        queues.next += 1;
        let id = format!("{}-{}", self.name, queues.next);
        queues
            .messages
            .entry(self.name.clone())
            .or_default()
            .push_back(Stored {
                id: id.clone(),
                body: body.to_vec(),
                receive_count: 0,
                visible_at: Instant::now(),
                receipt: None,
                attributes: options.attributes.clone(),
                group_id: options.group_id.clone(),
            });
        if let Some(dedup) = &options.deduplication_id {
            queues
                .deduplication
                .insert((self.name.clone(), dedup.clone()), id.clone());
        }
        Ok(id)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let now = Instant::now();
        let mut queues = self.queues.lock();
        if let Some(dead_letter) = &self.dead_letter {
            loop {
                let exhausted = queues.messages.get(&self.name).and_then(|q| {
                    q.iter()
                        .position(|m| m.visible_at <= now && m.receive_count >= self.max_receives)
                });
                let Some(index) = exhausted else { break };
                Self::move_to_dead_letter(&mut queues, &self.name, dead_letter, index);
            }
        }
        queues.next += 1;
        let batch = queues.next;
        let Some(queue) = queues.messages.get_mut(&self.name) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (n, message) in queue
            .iter_mut()
            .filter(|m| m.visible_at <= now)
            .take(max)
            .enumerate()
        {
            message.receive_count += 1;
            message.visible_at = now + visibility;
            let receipt = format!("{}-receipt-{batch}-{n}", message.id);
            message.receipt = Some(receipt.clone());
            out.push(ReceivedMessage {
                id: message.id.clone(),
                receipt,
                body: message.body.clone(),
                receive_count: message.receive_count,
                attributes: message.attributes.clone(),
                group_id: message.group_id.clone(),
                sent_at: None,
            });
        }
        Ok(out)
    }

    async fn delete(&self, receipt: &str) -> Result<bool, QueueError> {
        let mut queues = self.queues.lock();
        let Some(queue) = queues.messages.get_mut(&self.name) else {
            return Ok(false);
        };
        match queue
            .iter()
            .position(|m| m.receipt.as_deref() == Some(receipt))
        {
            Some(index) => {
                queue.remove(index);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<bool, QueueError> {
        let mut queues = self.queues.lock();
        let found = queues
            .messages
            .get_mut(&self.name)
            .and_then(|q| q.iter_mut().find(|m| m.receipt.as_deref() == Some(receipt)));
        match found {
            Some(message) => {
                message.visible_at = Instant::now() + visibility;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn dead_letter(
        &self,
        message: &ReceivedMessage,
        reason: &str,
    ) -> Result<bool, QueueError> {
        let Some(dead_letter) = &self.dead_letter else {
            return Ok(false);
        };
        let mut queues = self.queues.lock();
        let index = queues.messages.get_mut(&self.name).and_then(|q| {
            let index = q
                .iter()
                .position(|m| m.receipt.as_deref() == Some(message.receipt.as_str()))?;
            q[index]
                .attributes
                .insert(FAILURE_REASON_ATTRIBUTE.to_string(), reason.to_string());
            Some(index)
        });
        match index {
            Some(index) => {
                Self::move_to_dead_letter(&mut queues, &self.name, dead_letter, index);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        Ok(self
            .queues
            .lock()
            .messages
            .get(&self.name)
            .map_or(0, |q| q.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A received message is hidden for its visibility timeout, comes back
    // with a new receipt and a higher receive count, and reaches the
    // dead-letter queue after its last receive; a stale receipt deletes nothing.
    #[tokio::test]
    async fn the_memory_queue_behaves_like_sqs() {
        let queues = MemoryQueues::new();
        let queue = queues.queue("q", "q-dlq", 2);
        let dlq = queues.dead_letter_queue("q-dlq");
        queue.send(b"one").await.unwrap();
        let first = queue.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!((first.len(), first[0].receive_count), (1, 1));
        let second = queue.receive(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(second[0].receive_count, 2);
        assert!(queue.receive(10, Duration::ZERO).await.unwrap().is_empty());
        assert!(
            !queue.delete(&first[0].receipt).await.unwrap(),
            "stale receipt"
        );
        assert!(
            queue
                .change_visibility(&second[0].receipt, Duration::ZERO)
                .await
                .unwrap()
        );
        assert!(queue.receive(10, Duration::ZERO).await.unwrap().is_empty());
        assert_eq!(dlq.depth().await.unwrap(), 1, "after its last receive");

        queue.send(b"two").await.unwrap();
        let poison = queue.receive(1, Duration::from_secs(60)).await.unwrap();
        assert!(queue.dead_letter(&poison[0], "unreadable").await.unwrap());
        let dead = dlq.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(dead.len(), 2);
        assert_eq!(
            dead[1].attributes[FAILURE_REASON_ATTRIBUTE], "unreadable",
            "{dead:?}"
        );
        assert!(dlq.delete(&dead[0].receipt).await.unwrap());
        assert_eq!(dlq.depth().await.unwrap(), 1);
    }

    // Create-only puts, prefix listing and deletes.
    #[tokio::test]
    async fn the_memory_store_creates_only_once() {
        let store = MemoryStore::new();
        assert!(
            store
                .put_if_absent("a/1", Bytes::from_static(b"x"))
                .await
                .unwrap()
        );
        assert!(
            !store
                .put_if_absent("a/1", Bytes::from_static(b"y"))
                .await
                .unwrap()
        );
        assert_eq!(store.get("a/1").await.unwrap(), Bytes::from_static(b"x"));
        store.put("a/2", Bytes::new()).await.unwrap();
        store.put("b/1", Bytes::new()).await.unwrap();
        assert_eq!(store.list("a/").await.unwrap(), ["a/1", "a/2"]);
        store.delete("a/1").await.unwrap();
        assert!(matches!(
            store.get("a/1").await,
            Err(ObjectStoreError::NotFound { .. })
        ));
    }
}
