//! Queue-fed stages: handed a batch of messages, they give one outcome per message.
//!
//! A Lambda is handed its batch by the SQS event source and answers with the
//! messages that failed; a long-lived process receives from the queue itself.
//! So the stages (compaction, commit) never receive or delete: each is a
//! function from the messages it is given to an [`Outcome`] per message, and a
//! small driver — [`acknowledge`] here, or a Lambda adapter's `SqsBatchResponse`
//! — does what the outcomes say.

use std::time::Duration;

use tracing::warn;

use crate::ports::{Queue, ReceivedMessage};

/// What became of one message a stage was handed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its work is done (or was found already done): delete it.
    Done,
    /// It could not be handled now and may succeed later (a storage hiccup, a
    /// commit conflict): hand it back for another try. After the queue's maximum
    /// number of receives it reaches the dead-letter queue anyway.
    Retry(String),
    /// It can never be handled (unreadable, or naming data that cannot be
    /// found): move it to the dead-letter queue now, with this reason.
    Poison(String),
}

impl Outcome {
    /// Whether the message is finished with.
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Done)
    }

    /// Why the message was not done, if it was not.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Done => None,
            Outcome::Retry(reason) | Outcome::Poison(reason) => Some(reason),
        }
    }
}

/// How a batch was acknowledged.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Acknowledged {
    /// Messages deleted.
    pub done: usize,
    /// Messages handed back for a retry.
    pub retried: usize,
    /// Messages moved to the dead-letter queue.
    pub dead_lettered: usize,
}

impl Acknowledged {
    /// Messages not done (retried or dead-lettered).
    pub fn failed(&self) -> usize {
        self.retried + self.dead_lettered
    }
}

/// Does what `outcomes` say with the `messages` received from `queue`: deletes
/// the done ones, moves the poison ones to the dead-letter queue, and hands the
/// others back for a retry after an exponential backoff from `retry_base`
/// (doubled with every receive, capped at a minute).
///
/// A failed delete or hand-back is only logged: the message comes back after its
/// visibility timeout, and the stages recognise work already done.
pub async fn acknowledge(
    queue: &dyn Queue,
    messages: &[ReceivedMessage],
    outcomes: &[Outcome],
    retry_base: Duration,
) -> Acknowledged {
    let mut counts = Acknowledged::default();
    for (message, outcome) in messages.iter().zip(outcomes) {
        match outcome {
            Outcome::Done => {
                counts.done += 1;
                if let Err(e) = queue.delete(&message.receipt).await {
                    warn!(queue = queue.name(), message = %message.id, error = %e, "could not delete a finished message");
                }
            }
            Outcome::Poison(reason) => {
                counts.dead_lettered += 1;
                warn!(queue = queue.name(), message = %message.id, %reason, "message moved to the dead-letter queue");
                if let Err(e) = queue.dead_letter(message, reason).await {
                    warn!(queue = queue.name(), message = %message.id, error = %e, "could not move a poison message to the dead-letter queue; it gets there after its last receive");
                }
            }
            Outcome::Retry(reason) => {
                counts.retried += 1;
                warn!(queue = queue.name(), message = %message.id, receive_count = message.receive_count, %reason, "message will be retried");
                let exponent = message.receive_count.saturating_sub(1).min(6);
                let delay = (retry_base * 2u32.pow(exponent)).min(Duration::from_secs(60));
                if let Err(e) = queue.change_visibility(&message.receipt, delay).await {
                    warn!(queue = queue.name(), message = %message.id, error = %e, "could not schedule the retry; it waits for its visibility timeout");
                }
            }
        }
    }
    counts
}

/// Settles a batch the way an SQS-triggered Lambda must: moves the poison
/// messages to the dead-letter queue of `queue` (they then count as handled)
/// and returns the ids of the messages to report as failed in the
/// `SqsBatchResponse`, which SQS makes visible again.
///
/// In a FIFO queue a failed message holds back its group: every later message
/// of the same group is reported too, as Lambda requires, or SQS would delete
/// them and break the group's order. Messages without a group (a standard
/// queue) fail alone. A poison message that cannot be moved is reported as
/// failed: it reaches the dead-letter queue after its last receive.
pub async fn settle_lambda_batch(
    queue: &dyn Queue,
    messages: &[ReceivedMessage],
    outcomes: &[Outcome],
) -> Vec<String> {
    let mut failed = Vec::new();
    let mut held_groups = std::collections::BTreeSet::new();
    for (message, outcome) in messages.iter().zip(outcomes) {
        let held = message
            .group_id
            .as_ref()
            .is_some_and(|group| held_groups.contains(group));
        let fails = held
            || match outcome {
                Outcome::Done => false,
                Outcome::Retry(reason) => {
                    warn!(queue = queue.name(), message = %message.id, receive_count = message.receive_count, %reason, "message will be retried");
                    true
                }
                Outcome::Poison(reason) => {
                    warn!(queue = queue.name(), message = %message.id, %reason, "message moved to the dead-letter queue");
                    match queue.dead_letter(message, reason).await {
                        Ok(true) => false,
                        Ok(false) => true,
                        Err(e) => {
                            warn!(queue = queue.name(), message = %message.id, error = %e, "could not move a poison message to the dead-letter queue; it gets there after its last receive");
                            true
                        }
                    }
                }
            };
        if fails {
            if let Some(group) = &message.group_id {
                held_groups.insert(group.clone());
            }
            failed.push(message.id.clone());
        }
    }
    failed
}

/// Deletes every message of `messages` whose id is not in `failed`, as
/// Lambda's SQS event source does with a partial batch response: the failed
/// ones become visible again when their visibility timeout ends. Returns how
/// many were deleted; a failed delete is only logged (the message comes back,
/// and the stages recognise work already done).
pub async fn delete_all_but(
    queue: &dyn Queue,
    messages: &[ReceivedMessage],
    failed: &[String],
) -> usize {
    let mut deleted = 0;
    for message in messages.iter().filter(|m| !failed.contains(&m.id)) {
        match queue.delete(&message.receipt).await {
            Ok(_) => deleted += 1,
            Err(e) => {
                warn!(queue = queue.name(), message = %message.id, error = %e, "could not delete a finished message")
            }
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MemoryQueues, SendOptions};

    #[tokio::test]
    async fn a_failed_fifo_message_holds_back_the_rest_of_its_group_only() {
        let queues = MemoryQueues::new();
        let queue = queues.queue("commit.fifo", "commit-dlq.fifo", 5);
        for (body, group) in [
            ("a1", "a"),
            ("b1", "b"),
            ("a2", "a"),
            ("b2", "b"),
            ("c1", "c"),
        ] {
            queue
                .send_with(
                    body.as_bytes(),
                    &SendOptions::default().with_group_id(group),
                )
                .await
                .unwrap();
        }
        let messages = queue.receive(10, Duration::from_secs(30)).await.unwrap();
        let bodies: Vec<_> = messages.iter().map(|m| m.body.clone()).collect();
        assert_eq!(
            bodies,
            [b"a1", b"b1", b"a2", b"b2", b"c1"].map(|b| b.to_vec())
        );
        let outcomes = [
            Outcome::Retry("conflict".into()),
            Outcome::Done,
            Outcome::Done,
            Outcome::Poison("unreadable".into()),
            Outcome::Done,
        ];
        let failed = settle_lambda_batch(&queue, &messages, &outcomes).await;
        // a1 failed, so a2 is held back with it; b2 went to the dead-letter
        // queue and counts as handled; b1 and c1 are done.
        assert_eq!(failed, [messages[0].id.clone(), messages[2].id.clone()]);
        let dead = queues.dead_letter_queue("commit-dlq.fifo");
        let dead = dead.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].body, b"b2");
        assert_eq!(
            dead[0]
                .attributes
                .get(crate::ports::FAILURE_REASON_ATTRIBUTE),
            Some(&"unreadable".to_string())
        );
    }

    #[tokio::test]
    async fn without_groups_each_message_fails_alone() {
        let queues = MemoryQueues::new();
        let queue = queues.queue("raw", "raw-dlq", 5);
        for body in ["1", "2", "3"] {
            queue.send(body.as_bytes()).await.unwrap();
        }
        let messages = queue.receive(10, Duration::from_secs(30)).await.unwrap();
        let outcomes = [Outcome::Done, Outcome::Retry("later".into()), Outcome::Done];
        let failed = settle_lambda_batch(&queue, &messages, &outcomes).await;
        assert_eq!(failed, [messages[1].id.clone()]);
    }
}
