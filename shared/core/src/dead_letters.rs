//! Looking into a dead-letter queue, and replaying it into the queue it came
//! from once the cause is fixed (`otlp2parquet dlq inspect|replay`).
//!
//! Replay *sends first and deletes after*: a crash in between leaves the
//! message in both queues, and the stages absorb the duplicate (claims and
//! commit records make a second delivery a no-op); the other order could lose
//! it. Over the [`Queue`] port, so the same code replays SQS queues and the
//! embedded pipeline's.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use crate::messages::BODY_OBJECT_ATTRIBUTE;
use crate::ports::{FAILURE_REASON_ATTRIBUTE, Queue, QueueError, ReceivedMessage, SendOptions};

/// How long a message received for a look or a replay stays hidden from
/// other consumers: long enough to get through a large queue; a crashed
/// replay's messages become visible again after it.
const HOLD: Duration = Duration::from_secs(300);

/// SQS's limit of messages per receive.
const RECEIVE_BATCH: usize = 10;

/// What is known of one dead-lettered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message id.
    pub id: String,
    /// The tables its body names (none for a body that is not a stage's
    /// message, or that was sent by reference).
    pub tables: Vec<String>,
    /// Why the stage gave up, when it said (a message moved after its last
    /// receive by the queue's redrive policy carries no reason).
    pub reason: Option<String>,
    /// When it was first sent, if the queue records it.
    pub sent_at: Option<SystemTime>,
    /// Times it was received.
    pub receive_count: u32,
    /// Its FIFO message group.
    pub group_id: Option<String>,
    /// The body, or the key of the object holding it.
    pub body: String,
}

impl DeadLetter {
    fn of(message: &ReceivedMessage) -> Self {
        let body = match message.attributes.get(BODY_OBJECT_ATTRIBUTE) {
            Some(key) => format!("(body in the state store at {key})"),
            None => String::from_utf8_lossy(&message.body).into_owned(),
        };
        DeadLetter {
            id: message.id.clone(),
            tables: tables(&message.body),
            reason: message.attributes.get(FAILURE_REASON_ATTRIBUTE).cloned(),
            sent_at: message.sent_at,
            receive_count: message.receive_count,
            group_id: message.group_id.clone(),
            body,
        }
    }
}

/// The tables a stage's message names: `table` of a "data files ready"
/// message, each file's `table` of a "raw files written" one.
fn tables(body: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut tables = BTreeSet::new();
    if let Some(table) = value.get("table").and_then(|t| t.as_str()) {
        tables.insert(table.to_string());
    }
    for file in value
        .get("files")
        .and_then(|f| f.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(table) = file.get("table").and_then(|t| t.as_str()) {
            tables.insert(table.to_string());
        }
    }
    tables.into_iter().collect()
}

/// Hands every message of `received` back at once (visibility 0).
async fn release(queue: &dyn Queue, received: &[ReceivedMessage]) -> Result<(), QueueError> {
    for message in received {
        queue
            .change_visibility(&message.receipt, Duration::ZERO)
            .await?;
    }
    Ok(())
}

/// Up to `max` messages of `queue`, described; they stay in the queue (they
/// are hidden while being looked at, then handed back).
pub async fn inspect(queue: &dyn Queue, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
    let mut received: Vec<ReceivedMessage> = Vec::new();
    while received.len() < max {
        let batch = queue
            .receive(RECEIVE_BATCH.min(max - received.len()), HOLD)
            .await?;
        if batch.is_empty() {
            break;
        }
        received.extend(batch);
    }
    let letters = received.iter().map(DeadLetter::of).collect();
    release(queue, &received).await?;
    Ok(letters)
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Move at most this many messages.
    pub max: Option<usize>,
    /// Only count what would be moved.
    pub dry_run: bool,
    /// Unique to this replay: part of every deduplication id it sends, so that
    /// a FIFO queue does not take a replayed message for the original (sent
    /// within SQS's five-minute deduplication window, or replayed twice).
    pub run_id: String,
}

/// A replay that stopped on an error, after moving `moved` messages.
#[derive(Debug, thiserror::Error)]
#[error("replay stopped after {moved} message(s): {source}")]
pub struct ReplayError {
    /// Messages moved before the error.
    pub moved: usize,
    /// What the queue said.
    #[source]
    pub source: QueueError,
}

/// The options a replayed message is sent with: its group, a fresh
/// deduplication id, and its attributes but the failure reason (a stage that
/// gives up again records its own).
fn replay_options(message: &ReceivedMessage, run_id: &str) -> SendOptions {
    // SQS takes deduplication ids of up to 128 characters.
    let mut deduplication_id = format!("replay-{run_id}-{}", message.id);
    deduplication_id.truncate(128);
    let mut options = SendOptions::default().with_deduplication_id(deduplication_id);
    if let Some(group) = &message.group_id {
        options = options.with_group_id(group.clone());
    }
    for (name, value) in &message.attributes {
        if name != FAILURE_REASON_ATTRIBUTE {
            options = options.with_attribute(name.clone(), value.clone());
        }
    }
    options
}

/// Moves the messages of `from` to `to` (see the module docs); calls
/// `progress` with the count so far after each message. Returns how many
/// were moved (with `dry_run`: would be).
pub async fn replay(
    from: &dyn Queue,
    to: &dyn Queue,
    options: &ReplayOptions,
    mut progress: impl FnMut(usize),
) -> Result<usize, ReplayError> {
    let max = options.max.unwrap_or(usize::MAX);
    let mut moved = 0;
    let mut looked_at = Vec::new();
    let stopped = |moved, source| ReplayError { moved, source };
    while moved < max {
        let batch = from
            .receive(RECEIVE_BATCH.min(max - moved), HOLD)
            .await
            .map_err(|e| stopped(moved, e))?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            if !options.dry_run {
                to.send_with(&message.body, &replay_options(&message, &options.run_id))
                    .await
                    .map_err(|e| stopped(moved, e))?;
                // A stale receipt means the message came back to the queue
                // (a replay longer than the hold): it is replayed again, and
                // the stages absorb the duplicate.
                from.delete(&message.receipt)
                    .await
                    .map_err(|e| stopped(moved, e))?;
            } else {
                looked_at.push(message);
            }
            moved += 1;
            progress(moved);
        }
    }
    if options.dry_run {
        release(from, &looked_at)
            .await
            .map_err(|e| stopped(moved, e))?;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MemoryQueues;

    async fn dead_lettered(queues: &MemoryQueues, bodies: &[(&str, &str)]) {
        let queue = queues.queue("commit.fifo", "commit-dlq.fifo", 5);
        for (body, group) in bodies {
            queue
                .send_with(
                    body.as_bytes(),
                    &SendOptions::default().with_group_id(*group),
                )
                .await
                .unwrap();
        }
        for message in queue.receive(10, HOLD).await.unwrap() {
            assert!(
                queue
                    .dead_letter(&message, "catalog refused")
                    .await
                    .unwrap()
            );
        }
    }

    #[tokio::test]
    async fn inspect_describes_and_leaves_the_messages() {
        let queues = MemoryQueues::new();
        dead_lettered(
            &queues,
            &[
                (
                    r#"{"table":"logs","compaction":"c","rows":1,"data_files":[]}"#,
                    "logs",
                ),
                (r#"{"files":[{"table":"traces"},{"table":"logs"}]}"#, "raw"),
                ("garbage", "x"),
            ],
        )
        .await;
        let dlq = queues.dead_letter_queue("commit-dlq.fifo");
        let letters = inspect(&dlq, 100).await.unwrap();
        assert_eq!(letters.len(), 3);
        assert_eq!(letters[0].tables, ["logs"]);
        assert_eq!(letters[1].tables, ["logs", "traces"]);
        assert!(letters[2].tables.is_empty());
        assert_eq!(letters[0].reason.as_deref(), Some("catalog refused"));
        assert_eq!(letters[0].group_id.as_deref(), Some("logs"));
        // Still there, and visible.
        assert_eq!(inspect(&dlq, 100).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn replay_moves_with_group_and_fresh_deduplication_ids() {
        let queues = MemoryQueues::new();
        dead_lettered(&queues, &[("a", "logs"), ("b", "traces"), ("c", "logs")]).await;
        let dlq = queues.dead_letter_queue("commit-dlq.fifo");
        let target = queues.queue("commit.fifo", "commit-dlq.fifo", 5);
        let options = ReplayOptions {
            max: None,
            dry_run: true,
            run_id: "run-1".into(),
        };
        assert_eq!(replay(&dlq, &target, &options, |_| {}).await.unwrap(), 3);
        assert_eq!(target.receive(10, HOLD).await.unwrap().len(), 0);

        let options = ReplayOptions {
            max: Some(2),
            dry_run: false,
            ..options
        };
        let mut seen = Vec::new();
        assert_eq!(
            replay(&dlq, &target, &options, |n| seen.push(n))
                .await
                .unwrap(),
            2
        );
        assert_eq!(seen, [1, 2]);
        let back = target.receive(10, HOLD).await.unwrap();
        let bodies: Vec<_> = back.iter().map(|m| m.body.clone()).collect();
        assert_eq!(bodies, [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(back[0].group_id.as_deref(), Some("logs"));
        assert!(!back[0].attributes.contains_key(FAILURE_REASON_ATTRIBUTE));
        assert_eq!(inspect(&dlq, 100).await.unwrap().len(), 1);
    }
}
