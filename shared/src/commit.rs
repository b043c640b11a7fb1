//! The commit stage: "file ready" messages in, one Iceberg append per table out.
//!
//! Exactly one committer runs at a time. It drains a batch of messages, groups
//! them by table and appends each group in one fast-append snapshot. Messages are
//! deleted only after their snapshot is committed, so a crash in between makes
//! them come back — possibly in another grouping. To never add a file twice, each
//! snapshot records the ids of the messages it consumed (as Iceberg's Flink and
//! Kafka Connect sinks record theirs); messages found in the table's recent
//! snapshots are deleted without being committed again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use parquet::file::metadata::ParquetMetaDataReader;
use tracing::{info, warn};
use uuid::Uuid;

use crate::catalog::{AppendOutcome, append_once_with, data_file, ensure_table};
use crate::ingest::{RawFileWritten, RawFilesWritten};
use crate::ports::{ObjectStore, Queue, ReceivedMessage};
use crate::{Error, Table};

/// Snapshot summary property listing the queue message ids a snapshot consumed.
pub const MESSAGE_IDS_PROPERTY: &str = "otlp2parquet.message-ids";

/// How many recent snapshots are searched for already committed message ids.
/// Redeliveries come within minutes; this covers far more commits than that.
const SNAPSHOTS_SEARCHED: usize = 500;

/// Settings of the commit stage.
#[derive(Debug, Clone)]
pub struct CommitConfig {
    /// Most messages taken in one batch.
    pub max_messages: usize,
    /// How long received messages stay hidden; must exceed one batch's work.
    pub visibility: Duration,
    /// Namespace of the tables.
    pub namespace: String,
    /// Delay before a failed message is retried, doubled with every receive
    /// (capped at a minute).
    pub retry_delay: Duration,
}

impl Default for CommitConfig {
    fn default() -> Self {
        CommitConfig {
            max_messages: 1000,
            visibility: Duration::from_secs(300),
            namespace: crate::catalog::DEFAULT_NAMESPACE.to_string(),
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// What one batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Messages received.
    pub received: usize,
    /// Files appended.
    pub files: usize,
    /// Rows appended.
    pub rows: u64,
    /// Files an earlier snapshot already holds (redelivered messages).
    pub already_committed: usize,
    /// Messages that could not be handled and stay in the queue (they reach the
    /// dead-letter queue after the queue's maximum number of receives).
    pub failed: usize,
}

/// Errors of the commit stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] crate::ports::QueueError),
}

fn committed_message_ids(table: &iceberg::table::Table) -> HashSet<String> {
    let mut snapshots: Vec<_> = table.metadata().snapshots().collect();
    snapshots.sort_by_key(|s| std::cmp::Reverse(s.timestamp_ms()));
    snapshots
        .into_iter()
        .take(SNAPSHOTS_SEARCHED)
        .filter_map(|s| s.summary().additional_properties.get(MESSAGE_IDS_PROPERTY))
        .flat_map(|ids| ids.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// A commit id that is the same whenever the same messages are committed together.
fn commit_id(messages: &[&ReceivedMessage]) -> Uuid {
    let mut ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    ids.sort_unstable();
    Uuid::new_v5(&Uuid::NAMESPACE_OID, ids.join(",").as_bytes())
}

async fn describe(
    store: &dyn ObjectStore,
    table: Table,
    written: &RawFileWritten,
) -> Result<iceberg::spec::DataFile, Error> {
    let bytes: Bytes = store.get(&written.key).await?;
    let size = bytes.len() as u64;
    let metadata = ParquetMetaDataReader::new().parse_and_finish(&bytes)?;
    data_file(table, store.uri(&written.key), size, &metadata)
}

/// Hands a failed message back for a retry after an exponential backoff, instead
/// of after the full visibility timeout.
async fn retry_later(queue: &dyn Queue, message: &ReceivedMessage, config: &CommitConfig) {
    let exponent = message.receive_count.saturating_sub(1).min(6);
    let delay = (config.retry_delay * 2u32.pow(exponent)).min(Duration::from_secs(60));
    if let Err(e) = queue.change_visibility(&message.receipt, delay).await {
        warn!(message = %message.id, error = %e, "could not schedule the retry; it waits for its visibility timeout");
    }
}

/// Drains one batch of messages from `queue` into the catalog; see the module docs.
///
/// A message (one ingested request) may name files of several tables; it is
/// deleted once every one of its tables holds its files, and retried otherwise.
pub async fn commit_batch(
    queue: &dyn Queue,
    catalog: &dyn Catalog,
    store: &dyn ObjectStore,
    config: &CommitConfig,
) -> Result<CommitOutcome, CommitError> {
    let messages = queue
        .receive(config.max_messages, config.visibility)
        .await?;
    let mut outcome = CommitOutcome {
        received: messages.len(),
        ..Default::default()
    };
    // For each message: whether every table it touches has committed it.
    let mut complete = vec![true; messages.len()];
    let mut by_table: BTreeMap<Table, Vec<(usize, RawFileWritten)>> = BTreeMap::new();
    for (index, message) in messages.iter().enumerate() {
        match parse(message) {
            Some(files) => {
                for (table, file) in files {
                    by_table.entry(table).or_default().push((index, file));
                }
            }
            None => {
                warn!(message = %message.id, receive_count = message.receive_count, "unreadable file message left for the dead-letter queue");
                complete[index] = false;
            }
        }
    }
    let namespace = NamespaceIdent::new(config.namespace.clone());
    for (table, entries) in by_table {
        match commit_table(catalog, store, &namespace, table, &messages, &entries).await {
            Ok(done) => {
                outcome.files += done.files;
                outcome.rows += done.rows;
                outcome.already_committed += done.already_committed;
            }
            Err(e) => {
                warn!(%table, files = entries.len(), error = %e, "commit failed; its messages will be retried");
                for (index, _) in &entries {
                    complete[*index] = false;
                }
            }
        }
    }
    crate::crash::crash_point("commit-after-catalog-commit");
    for (message, complete) in messages.iter().zip(complete) {
        if complete {
            // A failed delete only means a redelivery, which the message ids absorb.
            if let Err(e) = queue.delete(&message.receipt).await {
                warn!(message = %message.id, error = %e, "could not delete a committed message");
            }
        } else {
            // Retried after a backoff; dead-lettered after the maximum number of receives.
            retry_later(queue, message, config).await;
            outcome.failed += 1;
        }
    }
    Ok(outcome)
}

/// The files a message names, with their tables; `None` if it cannot be read.
fn parse(message: &ReceivedMessage) -> Option<Vec<(Table, RawFileWritten)>> {
    let written: RawFilesWritten = serde_json::from_slice(&message.body).ok()?;
    written
        .files
        .into_iter()
        .map(|file| {
            let table = Table::ALL.into_iter().find(|t| t.name() == file.table)?;
            Some((table, file))
        })
        .collect()
}

/// What committing one table's part of a batch did.
struct TableCommit {
    files: usize,
    rows: u64,
    already_committed: usize,
}

async fn commit_table(
    catalog: &dyn Catalog,
    store: &dyn ObjectStore,
    namespace: &NamespaceIdent,
    table: Table,
    messages: &[ReceivedMessage],
    entries: &[(usize, RawFileWritten)],
) -> Result<TableCommit, Error> {
    let iceberg_table = ensure_table(catalog, namespace, table).await?;
    let done = committed_message_ids(&iceberg_table);
    // All files of one message for one table go into the same snapshot, so the
    // message id in a snapshot stands for every one of them.
    let (already, pending): (Vec<_>, Vec<_>) = entries
        .iter()
        .partition(|(index, _)| done.contains(&messages[*index].id));
    if pending.is_empty() {
        return Ok(TableCommit {
            files: 0,
            rows: 0,
            already_committed: already.len(),
        });
    }
    let mut files = Vec::with_capacity(pending.len());
    for (_, written) in &pending {
        files.push(describe(store, table, written).await?);
    }
    let rows: u64 = files.iter().map(|f| f.record_count()).sum();
    let mut consumed: Vec<&ReceivedMessage> = pending.iter().map(|(i, _)| &messages[*i]).collect();
    consumed.sort_by(|a, b| a.id.cmp(&b.id));
    consumed.dedup_by(|a, b| a.id == b.id);
    let ids = consumed
        .iter()
        .map(|m| m.id.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let ident = TableIdent::new(namespace.clone(), table.name().to_string());
    let count = files.len();
    crate::crash::crash_point("commit-before-catalog-commit");
    let outcome = append_once_with(
        catalog,
        &ident,
        files,
        commit_id(&consumed),
        HashMap::from([(MESSAGE_IDS_PROPERTY.to_string(), ids)]),
    )
    .await?;
    info!(%table, files = count, rows, ?outcome, "committed");
    Ok(match outcome {
        AppendOutcome::Committed { .. } => TableCommit {
            files: count,
            rows,
            already_committed: already.len(),
        },
        AppendOutcome::AlreadyCommitted { .. } => TableCommit {
            files: 0,
            rows: 0,
            already_committed: already.len() + count,
        },
    })
}
