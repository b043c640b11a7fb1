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
