//! The commit stage: "data files ready" messages in, one Iceberg append per table out.
//!
//! Exactly one committer runs at a time. It drains a batch of messages, groups
//! them by table and appends each group in one fast-append snapshot. Messages are
//! deleted only after their snapshot is committed, so a crash in between makes
//! them come back — possibly in another grouping, and a compactor may also send
//! the same result twice. To never add a file twice, each snapshot records the
//! compaction ids it consumed (as Iceberg's Flink and Kafka Connect sinks record
//! their commit ids); compactions found in the table's recent snapshots are
//! acknowledged without being committed again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use iceberg::spec::deserialize_data_file_from_json;
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use tracing::{info, warn};
use uuid::Uuid;

use crate::catalog::{AppendOutcome, append_once_with, ensure_table};
use crate::compact::{DataFilesReady, acknowledge};
use crate::ports::{Queue, ReceivedMessage};
use crate::{Error, Table};

/// Snapshot summary property listing the compactions a snapshot consumed.
pub const COMPACTIONS_PROPERTY: &str = "otlp2parquet.compactions";

/// How many recent snapshots are searched for already committed compactions.
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
    /// Compactions an earlier snapshot already holds (redelivered or resent messages).
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

fn committed_compactions(table: &iceberg::table::Table) -> HashSet<String> {
    let mut snapshots: Vec<_> = table.metadata().snapshots().collect();
    snapshots.sort_by_key(|s| std::cmp::Reverse(s.timestamp_ms()));
    snapshots
        .into_iter()
        .take(SNAPSHOTS_SEARCHED)
        .filter_map(|s| s.summary().additional_properties.get(COMPACTIONS_PROPERTY))
        .flat_map(|ids| ids.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// A commit id that is the same whenever the same compactions are committed together.
fn commit_id(compactions: &[&str]) -> Uuid {
    let mut ids = compactions.to_vec();
    ids.sort_unstable();
    Uuid::new_v5(&Uuid::NAMESPACE_OID, ids.join(",").as_bytes())
}

/// Drains one batch of messages from `queue` into the catalog; see the module docs.
pub async fn commit_batch(
    queue: &dyn Queue,
    catalog: &dyn Catalog,
    config: &CommitConfig,
) -> Result<CommitOutcome, CommitError> {
    let messages = queue
        .receive(config.max_messages, config.visibility)
        .await?;
    let mut outcome = CommitOutcome {
        received: messages.len(),
        ..Default::default()
    };
    let mut complete = vec![true; messages.len()];
    let mut by_table: BTreeMap<Table, Vec<(usize, DataFilesReady)>> = BTreeMap::new();
    for (index, message) in messages.iter().enumerate() {
        match parse(message) {
            Some((table, ready)) => by_table.entry(table).or_default().push((index, ready)),
            None => {
                warn!(message = %message.id, receive_count = message.receive_count, "unreadable data-file message left for the dead-letter queue");
                complete[index] = false;
            }
        }
    }
    let namespace = NamespaceIdent::new(config.namespace.clone());
    for (table, entries) in by_table {
        match commit_table(catalog, &namespace, table, &entries).await {
            Ok(done) => {
                outcome.files += done.files;
                outcome.rows += done.rows;
                outcome.already_committed += done.already_committed;
            }
            Err(e) => {
                warn!(%table, messages = entries.len(), error = %e, "commit failed; its messages will be retried");
                for (index, _) in &entries {
                    complete[*index] = false;
                }
            }
        }
    }
    crate::crash::crash_point("commit-after-catalog-commit");
    outcome.failed = acknowledge(queue, &messages, |i| complete[i], config.retry_delay).await;
    Ok(outcome)
}

/// The table and files of a message; `None` if it cannot be read.
fn parse(message: &ReceivedMessage) -> Option<(Table, DataFilesReady)> {
    let ready: DataFilesReady = serde_json::from_slice(&message.body).ok()?;
    Some((Table::from_name(&ready.table)?, ready))
}

/// What committing one table's part of a batch did.
struct TableCommit {
    files: usize,
    rows: u64,
    already_committed: usize,
}

async fn commit_table(
    catalog: &dyn Catalog,
    namespace: &NamespaceIdent,
    table: Table,
    entries: &[(usize, DataFilesReady)],
) -> Result<TableCommit, Error> {
    let iceberg_table = ensure_table(catalog, namespace, table).await?;
    let done = committed_compactions(&iceberg_table);
    // One compaction's files always go into one snapshot, so its id in a
    // snapshot stands for all of them. The same compaction may be in the batch
    // twice (sent again by a compactor that restarted): take it once.
    let mut pending: BTreeMap<&str, &DataFilesReady> = BTreeMap::new();
    let mut already = 0;
    for (_, ready) in entries {
        if done.contains(&ready.compaction) {
            already += 1;
        } else {
            pending.insert(ready.compaction.as_str(), ready);
        }
    }
    if pending.is_empty() {
        return Ok(TableCommit {
            files: 0,
            rows: 0,
            already_committed: already,
        });
    }
    let metadata = iceberg_table.metadata();
    let spec = metadata.default_partition_spec();
    let schema = metadata.current_schema();
    let partition_type = spec.partition_type(schema)?;
    let mut files = Vec::new();
    let mut rows = 0;
    for ready in pending.values() {
        rows += ready.rows;
        for json in &ready.data_files {
            files.push(deserialize_data_file_from_json(
                json,
                spec.spec_id(),
                &partition_type,
                schema,
            )?);
        }
    }
    let compactions: Vec<&str> = pending.keys().copied().collect();
    let ident = TableIdent::new(namespace.clone(), table.name().to_string());
    let count = files.len();
    crate::crash::crash_point("commit-before-catalog-commit");
    let outcome = append_once_with(
        catalog,
        &ident,
        files,
        commit_id(&compactions),
        HashMap::from([(COMPACTIONS_PROPERTY.to_string(), compactions.join(","))]),
    )
    .await?;
    info!(%table, files = count, rows, ?outcome, "committed");
    Ok(match outcome {
        AppendOutcome::Committed { .. } => TableCommit {
            files: count,
            rows,
            already_committed: already,
        },
        AppendOutcome::AlreadyCommitted { .. } => TableCommit {
            files: 0,
            rows: 0,
            already_committed: already + pending.len(),
        },
    })
}
