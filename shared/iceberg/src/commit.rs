//! The commit stage: "data files ready" messages in, one Iceberg append per table out.
//!
//! One committer runs at a time: it is the single writer of every table. It is
//! handed a batch of messages, groups them by table and appends each group in
//! one fast-append snapshot. A message is done only after its snapshot is
//! committed, so a crash in between makes it come back — possibly in another
//! grouping, possibly days later from a dead-letter queue, and a compactor may
//! also send the same result twice.
//!
//! # Exactly once, with no window
//!
//! Looking for already committed compactions in the table's snapshots is not
//! enough: snapshots expire (S3 Tables keeps one, for 120 hours by default),
//! while a dead-letter queue keeps a message for 14 days. So the committer
//! keeps its own ledger in the state store, and makes the catalog the judge of
//! the one step whose outcome can be unknown:
//!
//! 1. Before committing, it writes the table's *pending* record
//!    (`<namespace>/<table>/commits/pending.json`: a fresh commit id and the
//!    compactions it is about to append), create-only.
//! 2. It commits the append together with the table property
//!    [`LAST_COMMIT_PROPERTY`] = that commit id, in one transaction: the
//!    property is set if and only if the append happened, and table properties
//!    survive snapshot expiry and every later commit (S3 Tables' own
//!    compaction and expiry keep them).
//! 3. It then writes one *committed* record per compaction
//!    (`<namespace>/<table>/commits/done/<compaction>`) and removes the pending
//!    record.
//!
//! A committer that finds a pending record (its predecessor died) settles it
//! before anything else: the table's property names it exactly when it was
//! committed, and no other commit of ours can have happened in between, since
//! every commit starts by settling. Committed records are what a redelivered or
//! replayed message is checked against; they are kept as long as a message can
//! come back (see the README). Snapshot summaries also carry the compaction ids
//! ([`COMPACTIONS_PROPERTY`]), for people reading the table's history.
//!
//! # Staged commits
//!
//! A FIFO queue hands a function at most ten messages at a time, and keeps a
//! table's message group locked while they are in flight: committing every
//! batch makes a snapshot per ten compactions. With [`Staging`], a batch's
//! compactions are only *staged* — each one's message body written create-only
//! to `<namespace>/<table>/commits/staged/<compaction>.json`, after the table's
//! *window* record (`commits/window.json`, when the first of them was staged) —
//! and their messages are done. A table is committed once enough compactions
//! are staged or the window is old enough ([`commit_due`]: after every batch,
//! and on a schedule, so that the last ones do not wait for more traffic),
//! through the same ledger as above; the staged records and the window are
//! removed after the committed records are written. A message delivered again
//! finds its compaction staged or committed; a committer that died after the
//! commit finds the staged records of committed compactions and only removes them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iceberg::spec::deserialize_data_file_from_json;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use otlp2parquet_core::Table;
use otlp2parquet_core::crash::crash_point;
use otlp2parquet_core::messages::{BodyError, DataFilesReady, message_body};
use otlp2parquet_core::ports::{ObjectStore, ReceivedMessage, get_json};
use otlp2parquet_core::stage::Outcome;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use uuid::Uuid;

use crate::catalog::{COMMIT_ID_PROPERTY, ensure_table};
use crate::error::{Error, Result};

/// Snapshot summary property listing the compactions a snapshot consumed.
pub const COMPACTIONS_PROPERTY: &str = "otlp2parquet.compactions";

/// Table property holding the commit id of the last append of the commit stage.
pub const LAST_COMMIT_PROPERTY: &str = "otlp2parquet.last-commit-id";

/// Settings of the commit stage.
#[derive(Debug, Clone)]
pub struct CommitConfig {
    /// Namespace of the tables.
    pub namespace: String,
    /// How old another committer's pending commit must be before it is taken
    /// as abandoned and settled. Zero where this process is the only committer
    /// (`otlp2parquet serve`); the function timeout on Lambda, where a new
    /// instance may start while a timed-out one's request is still in flight.
    pub pending_lease: Duration,
    /// Gather compactions over several batches before committing (see
    /// "Staged commits" in the module docs); `None` commits every batch.
    pub staging: Option<Staging>,
}

impl Default for CommitConfig {
    fn default() -> Self {
        CommitConfig {
            namespace: otlp2parquet_core::DEFAULT_NAMESPACE.to_string(),
            pending_lease: Duration::ZERO,
            staging: None,
        }
    }
}

/// When staged compactions are committed: whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staging {
    /// Once this many compactions of a table are staged.
    pub max_compactions: usize,
    /// Once the first staged compaction of a table has waited this long.
    pub max_wait: Duration,
}

/// When a table's staged compactions started gathering.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Window {
    opened_ms: u64,
}

/// What one batch did: an outcome per message, and counts for logs and metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CommitReport {
    /// One outcome per message handed in, in the same order.
    pub outcomes: Vec<Outcome>,
    /// Snapshots committed.
    pub commits: usize,
    /// Files appended.
    pub files: usize,
    /// Rows appended.
    pub rows: u64,
    /// Compactions found already committed (redelivered or resent messages).
    pub already_committed: usize,
}

/// The commit in progress on one table (step 1 of the module docs).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingCommit {
    commit_id: String,
    compactions: Vec<String>,
    started_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn pending_key(namespace: &str, table: Table) -> String {
    format!("{namespace}/{}/commits/pending.json", table.name())
}

fn committed_key(namespace: &str, table: Table, compaction: &str) -> String {
    format!("{namespace}/{}/commits/done/{compaction}", table.name())
}

fn staged_prefix(namespace: &str, table: Table) -> String {
    format!("{namespace}/{}/commits/staged/", table.name())
}

fn window_key(namespace: &str, table: Table) -> String {
    format!("{namespace}/{}/commits/window.json", table.name())
}

/// Appends the files that `messages` announce; see the module docs. `state`
/// holds the commit ledger (a directory, or a general-purpose S3 bucket).
pub async fn commit(
    messages: &[ReceivedMessage],
    catalog: &dyn Catalog,
    state: &dyn ObjectStore,
    config: &CommitConfig,
) -> CommitReport {
    let mut report = CommitReport {
        outcomes: vec![Outcome::Done; messages.len()],
        ..Default::default()
    };
    let mut by_table: BTreeMap<Table, Vec<(usize, DataFilesReady)>> = BTreeMap::new();
    for (index, message) in messages.iter().enumerate() {
        let body = match message_body(state, message).await {
            Ok(body) => body,
            Err(e @ BodyError::Missing { .. }) => {
                report.outcomes[index] = Outcome::Poison(e.to_string());
                continue;
            }
            Err(e) => {
                report.outcomes[index] = Outcome::Retry(e.to_string());
                continue;
            }
        };
        match parse(&body) {
            Ok((table, ready)) => by_table.entry(table).or_default().push((index, ready)),
            Err(reason) => report.outcomes[index] = Outcome::Poison(reason),
        }
    }
    if let Some(staging) = config.staging {
        for (table, entries) in &by_table {
            if let Err(e) = stage(state, config, *table, entries).await {
                warn!(%table, messages = entries.len(), error = %e, "staging failed");
                let outcome = Outcome::Retry(format!("staging for {table}: {e}"));
                for (index, _) in entries {
                    report.outcomes[*index] = outcome.clone();
                }
            }
        }
        let due = commit_due_tables(catalog, state, config, staging, false).await;
        return CommitReport {
            outcomes: report.outcomes,
            ..due
        };
    }
    let namespace = NamespaceIdent::new(config.namespace.clone());
    for (table, entries) in by_table {
        let ready: Vec<&DataFilesReady> = entries.iter().map(|(_, r)| r).collect();
        match commit_table(catalog, state, config, &namespace, table, &ready).await {
            Ok(done) => {
                report.count(&done);
            }
            Err(e) => {
                warn!(%table, messages = entries.len(), error = %e, "commit failed");
                // Even a catalog that refuses for good may accept later (a table
                // being repaired): retried, these reach the dead-letter queue
                // after the queue's last receive, ready for a replay.
                let outcome = Outcome::Retry(format!("committing to {table}: {e}"));
                for (index, _) in &entries {
                    report.outcomes[*index] = outcome.clone();
                }
            }
        }
    }
    report
}

/// Records `entries`' compactions as staged for `table` (module docs), the
/// window first. Compactions already committed are left out.
async fn stage(
    state: &dyn ObjectStore,
    config: &CommitConfig,
    table: Table,
    entries: &[(usize, DataFilesReady)],
) -> Result<()> {
    let namespace = &config.namespace;
    let mut new = Vec::new();
    for (_, ready) in entries {
        if !state
            .exists(&committed_key(namespace, table, &ready.compaction))
            .await?
        {
            new.push(ready);
        }
    }
    if new.is_empty() {
        return Ok(());
    }
    // A plain struct of numbers always serializes.
    let window = serde_json::to_vec(&Window {
        opened_ms: now_ms(),
    })
    .unwrap_or_default();
    state
        .put_if_absent(&window_key(namespace, table), window.into())
        .await?;
    for ready in new {
        let key = format!(
            "{}{}.json",
            staged_prefix(namespace, table),
            ready.compaction
        );
        let body = serde_json::to_vec(ready).unwrap_or_default();
        state.put_if_absent(&key, body.into()).await?;
    }
    Ok(())
}

/// Commits the tables whose staged compactions are due (module docs): call
/// it on a schedule, so that the last compactions of a quiet period do not
/// wait for more traffic; `force` commits whatever is staged (a shutdown).
/// Without staging it does nothing.
pub async fn commit_due(
    catalog: &dyn Catalog,
    state: &dyn ObjectStore,
    config: &CommitConfig,
    force: bool,
) -> CommitReport {
    match config.staging {
        Some(staging) => commit_due_tables(catalog, state, config, staging, force).await,
        None => CommitReport::default(),
    }
}

async fn commit_due_tables(
    catalog: &dyn Catalog,
    state: &dyn ObjectStore,
    config: &CommitConfig,
    staging: Staging,
    force: bool,
) -> CommitReport {
    let mut report = CommitReport::default();
    let namespace = NamespaceIdent::new(config.namespace.clone());
    for table in Table::ALL {
        match commit_staged(catalog, state, config, &namespace, table, staging, force).await {
            Ok(Some(done)) => {
                report.count(&done);
            }
            Ok(None) => {}
            // Staged compactions stay staged: the next batch or the schedule
            // tries again.
            Err(e) => warn!(%table, error = %e, "committing staged compactions failed"),
        }
    }
    report
}

/// Commits `table`'s staged compactions if they are due; `None` if not.
async fn commit_staged(
    catalog: &dyn Catalog,
    state: &dyn ObjectStore,
    config: &CommitConfig,
    namespace: &NamespaceIdent,
    table: Table,
    staging: Staging,
    force: bool,
) -> Result<Option<TableCommit>> {
    let keys = state.list(&staged_prefix(&config.namespace, table)).await?;
    if keys.is_empty() {
        return Ok(None);
    }
    let window = window_key(&config.namespace, table);
    let due = force
        || keys.len() >= staging.max_compactions
        || match get_json::<Window>(state, &window).await? {
            Some(w) => now_ms().saturating_sub(w.opened_ms) >= staging.max_wait.as_millis() as u64,
            // Staging writes the window first and a commit removes it last,
            // so staged records without one were left by hand: nothing says
            // how long they waited; commit them.
            None => true,
        };
    if !due {
        return Ok(None);
    }
    let mut staged = Vec::with_capacity(keys.len());
    for key in &keys {
        if let Some(ready) = get_json::<DataFilesReady>(state, key).await? {
            staged.push(ready);
        }
    }
    let entries: Vec<&DataFilesReady> = staged.iter().collect();
    let done = commit_table(catalog, state, config, namespace, table, &entries).await?;
    // Every staged compaction is in the table now (committed just now, or
    // before a predecessor died): their staged records are done with.
    state.delete_many(&keys).await?;
    state.delete(&window).await?;
    Ok(Some(done))
}

/// The table and files of a message.
fn parse(body: &[u8]) -> Result<(Table, DataFilesReady), String> {
    let ready: DataFilesReady =
        serde_json::from_slice(body).map_err(|e| format!("not a data-files message: {e}"))?;
    match Table::from_name(&ready.table) {
        Some(table) => Ok((table, ready)),
        None => Err(format!("unknown table {:?}", ready.table)),
    }
}

impl CommitReport {
    /// Adds what one table's commit did to the counts.
    fn count(&mut self, done: &TableCommit) {
        self.commits += usize::from(done.files > 0);
        self.files += done.files;
        self.rows += done.rows;
        self.already_committed += done.already_committed;
    }
}

/// What committing one table's part of a batch did.
struct TableCommit {
    files: usize,
    rows: u64,
    already_committed: usize,
}

/// Writes the committed records of `compactions`, then removes the pending record.
async fn record_committed(
    state: &dyn ObjectStore,
    namespace: &str,
    table: Table,
    commit_id: &str,
    compactions: &[String],
) -> Result<()> {
    for compaction in compactions {
        state
            .put(
                &committed_key(namespace, table, compaction),
                commit_id.as_bytes().to_vec().into(),
            )
            .await?;
    }
    state.delete(&pending_key(namespace, table)).await?;
    Ok(())
}

/// Settles a commit a predecessor left pending (see the module docs).
async fn settle_pending(
    state: &dyn ObjectStore,
    config: &CommitConfig,
    table: Table,
    iceberg_table: &iceberg::table::Table,
) -> Result<()> {
    let key = pending_key(&config.namespace, table);
    let Some(pending) = get_json::<PendingCommit>(state, &key).await? else {
        return Ok(());
    };
    let age = Duration::from_millis(now_ms().saturating_sub(pending.started_ms));
    if age < config.pending_lease {
        return Err(Error::Busy {
            table: table.name().to_string(),
            age_secs: age.as_secs(),
        });
    }
    if last_commit(iceberg_table) == Some(pending.commit_id.as_str()) {
        info!(%table, commit = %pending.commit_id, compactions = pending.compactions.len(), "a commit left pending had happened; recording it");
        record_committed(
            state,
            &config.namespace,
            table,
            &pending.commit_id,
            &pending.compactions,
        )
        .await
    } else {
        info!(%table, commit = %pending.commit_id, "a commit left pending had not happened; its messages will be committed again");
        state.delete(&key).await?;
        Ok(())
    }
}

fn last_commit(table: &iceberg::table::Table) -> Option<&str> {
    table
        .metadata()
        .properties()
        .get(LAST_COMMIT_PROPERTY)
        .map(String::as_str)
}

/// Compactions still named in the table's snapshots: tables committed before
/// the ledger existed, and a second look that costs nothing.
fn compactions_in_snapshots(table: &iceberg::table::Table) -> HashSet<String> {
    table
        .metadata()
        .snapshots()
        .filter_map(|s| s.summary().additional_properties.get(COMPACTIONS_PROPERTY))
        .flat_map(|ids| ids.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect()
}

async fn commit_table(
    catalog: &dyn Catalog,
    state: &dyn ObjectStore,
    config: &CommitConfig,
    namespace: &NamespaceIdent,
    table: Table,
    entries: &[&DataFilesReady],
) -> Result<TableCommit> {
    let iceberg_table = ensure_table(catalog, namespace, table).await?;
    settle_pending(state, config, table, &iceberg_table).await?;

    // One compaction's files always go into one snapshot, so its record stands
    // for all of them. The same compaction may be in the batch twice (sent
    // again by a compactor that restarted): take it once.
    let in_snapshots = compactions_in_snapshots(&iceberg_table);
    let mut pending: BTreeMap<&str, &DataFilesReady> = BTreeMap::new();
    let mut already = 0;
    for ready in entries {
        let id = ready.compaction.as_str();
        if pending.contains_key(id) {
            already += 1;
            continue;
        }
        let recorded = state
            .exists(&committed_key(&config.namespace, table, id))
            .await?;
        if recorded || in_snapshots.contains(id) {
            already += 1;
        } else {
            pending.insert(id, ready);
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
    let compactions: Vec<String> = pending.keys().map(|c| c.to_string()).collect();
    let commit_id = Uuid::now_v7();
    let record = PendingCommit {
        commit_id: commit_id.to_string(),
        compactions: compactions.clone(),
        started_ms: now_ms(),
    };
    // A plain struct of strings and numbers always serializes.
    let body = serde_json::to_vec(&record).unwrap_or_default();
    let key = pending_key(&config.namespace, table);
    if !state.put_if_absent(&key, body.into()).await? {
        return Err(Error::Busy {
            table: table.name().to_string(),
            age_secs: 0,
        });
    }

    let count = files.len();
    crash_point("commit-before-catalog-commit");
    let tx = Transaction::new(&iceberg_table);
    // The iceberg crate's duplicate check reads every manifest of the table on
    // every append: commit time would grow with the table (0.06 s per commit
    // at 100 snapshots, 0.7 s at 1,000, here). The ledger already guarantees
    // that no compaction is appended twice, and compacted files are named per
    // attempt, so the check could never fire.
    let append = tx
        .fast_append()
        .with_check_duplicate(false)
        .set_commit_uuid(commit_id)
        .set_snapshot_properties(HashMap::from([
            (COMPACTIONS_PROPERTY.to_string(), compactions.join(",")),
            (COMMIT_ID_PROPERTY.to_string(), record.commit_id.clone()),
        ]))
        .add_data_files(files);
    let tx = append.apply(tx)?;
    let tx = tx
        .update_table_properties()
        .set(LAST_COMMIT_PROPERTY.to_string(), record.commit_id.clone())
        .apply(tx)?;
    let ident = TableIdent::new(namespace.clone(), table.name().to_string());
    if let Err(e) = tx.commit(catalog).await {
        // The outcome of a failed commit may be unknown (the catalog applied
        // it, then the answer was lost): the table's property decides. If it
        // cannot be read, the pending record stays and the next batch settles it.
        let reloaded = catalog.load_table(&ident).await;
        if !matches!(&reloaded, Ok(t) if last_commit(t) == Some(record.commit_id.as_str())) {
            return Err(e.into());
        }
    }
    crash_point("commit-after-catalog-commit");
    record_committed(
        state,
        &config.namespace,
        table,
        &record.commit_id,
        &compactions,
    )
    .await?;
    info!(%table, files = count, rows, commit = %record.commit_id, "committed");
    Ok(TableCommit {
        files: count,
        rows,
        already_committed: already,
    })
}
