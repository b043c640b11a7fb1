//! A message committed once is never committed again, however long after and
//! whatever happened to the table's history in between: the commit stage's
//! ledger outlives snapshot expiry (S3 Tables keeps one snapshot, for 120 hours
//! by default, while a dead-letter queue keeps a message for 14 days).
//!
//! The stage is handed messages directly, as a Lambda is; the catalog is the
//! embedded SQLite one and the ledger lives in an in-memory store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use iceberg::spec::deserialize_data_file_from_json;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use otlp2parquet_core::Table;
use otlp2parquet_core::messages::DataFilesReady;
use otlp2parquet_core::ports::{MemoryStore, ObjectStoreError, ReceivedMessage};
use otlp2parquet_core::stage::Outcome;
use otlp2parquet_iceberg::catalog::{ensure_table, local_path, open_local_catalog};
use otlp2parquet_iceberg::commit::{CommitConfig, CommitReport, commit};
use otlp2parquet_testkit::files::data_files_ready;
use otlp2parquet_testkit::scan::current_rows;
use otlp2parquet_testkit::store::{Hook, HookedStore, Op, injected};

/// Makes the writes of committed records fail while armed, as a committer
/// that dies right after the catalog commit would leave things.
#[derive(Default)]
struct FailRecords(AtomicBool);

#[async_trait]
impl Hook for FailRecords {
    async fn before(&self, op: Op, key: &str) -> Result<(), ObjectStoreError> {
        if op == Op::Put && key.contains("/commits/done/") && self.0.load(Ordering::Relaxed) {
            return Err(injected(key, "death of the committer"));
        }
        Ok(())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    catalog: iceberg_catalog_sql::SqlCatalog,
    state: HookedStore<FailRecords>,
    ident: TableIdent,
    location: std::path::PathBuf,
    config: CommitConfig,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let catalog = open_local_catalog(&dir.path().join("wh")).await.unwrap();
    let namespace = NamespaceIdent::new("otel".into());
    let table = ensure_table(&catalog, &namespace, Table::Logs)
        .await
        .unwrap();
    let location = local_path(table.metadata().location());
    let state = HookedStore::new(Arc::new(MemoryStore::new()), FailRecords::default());
    Fixture {
        _dir: dir,
        catalog,
        state,
        ident: TableIdent::new(namespace, "logs".into()),
        location,
        config: CommitConfig::default(),
    }
}

impl Fixture {
    /// A "data files ready" message for compaction `n`: `rows` new log records
    /// in Parquet files written into the table's data directory.
    fn message(&self, n: u64, rows: usize) -> ReceivedMessage {
        data_files_ready(&self.location, n, rows)
    }

    async fn commit(&self, messages: &[ReceivedMessage]) -> CommitReport {
        commit(messages, &self.catalog, &self.state, &self.config).await
    }

    async fn table(&self) -> iceberg::table::Table {
        self.catalog.load_table(&self.ident).await.unwrap()
    }

    /// Rows the table's current snapshot reads.
    async fn rows(&self) -> usize {
        let batches = current_rows(&self.table().await).await;
        batches.iter().map(|b| b.num_rows()).sum()
    }

    /// Expires every snapshot but the current one, as S3 Tables' maintenance
    /// does with `minSnapshotsToKeep` 1 once they are old enough.
    async fn expire_all_but_current(&self) {
        let table = self.table().await;
        let tx = Transaction::new(&table);
        let tx = tx
            .expire_snapshots()
            .expire_older_than_ms(i64::MAX)
            .retain_last(1)
            .apply(tx)
            .unwrap();
        tx.commit(&self.catalog).await.unwrap();
        assert_eq!(self.table().await.metadata().snapshots().count(), 1);
    }
}

fn all_done(report: &CommitReport) {
    assert!(
        report.outcomes.iter().all(Outcome::is_done),
        "{:?}",
        report.outcomes
    );
}

// Commit a message, make 1,000 further commits, expire every snapshot but the
// current one, then redeliver the message alone and regrouped with new ones:
// nothing is added twice, the new ones once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_redelivered_after_1000_commits_and_expiry_adds_nothing() {
    let f = fixture().await;
    let first = f.message(0, 50);
    let report = f.commit(std::slice::from_ref(&first)).await;
    all_done(&report);
    assert_eq!((report.commits, report.rows), (1, 50));

    for n in 1..=1000 {
        let report = f.commit(&[f.message(n, 1)]).await;
        all_done(&report);
        assert_eq!(report.commits, 1, "commit {n}");
    }
    f.expire_all_but_current().await;
    assert_eq!(f.rows().await, 1050);

    let alone = f.commit(std::slice::from_ref(&first)).await;
    all_done(&alone);
    assert_eq!((alone.files, alone.already_committed), (0, 1));
    assert_eq!(f.rows().await, 1050);

    let regrouped = f
        .commit(&[f.message(1001, 3), first.clone(), f.message(1002, 4)])
        .await;
    all_done(&regrouped);
    assert_eq!((regrouped.rows, regrouped.already_committed), (7, 1));
    assert_eq!(f.rows().await, 1057);
}

// A committer that dies after the catalog commit, before recording it, leaves
// the commit pending. Even after the snapshot it made has expired, the next
// committer settles it from the table's own property: the message comes back
// and adds nothing; a commit that never happened is made again.
#[tokio::test]
async fn a_commit_left_pending_is_settled_after_its_snapshot_expired() {
    let f = fixture().await;
    let message = f.message(0, 20);
    f.state.hook.0.store(true, Ordering::Relaxed);
    let died = f.commit(std::slice::from_ref(&message)).await;
    assert!(matches!(died.outcomes[0], Outcome::Retry(_)), "{died:?}");
    assert_eq!(f.rows().await, 20, "the catalog commit happened");
    f.state.hook.0.store(false, Ordering::Relaxed);

    // Another writer (S3 Tables' compaction, say) commits a snapshot of its
    // own, and the history that held ours is expired.
    let theirs: DataFilesReady = serde_json::from_slice(&f.message(1, 1).body).unwrap();
    let table = f.table().await;
    let metadata = table.metadata();
    let partition_type = metadata
        .default_partition_spec()
        .partition_type(metadata.current_schema())
        .unwrap();
    let files: Vec<_> = theirs
        .data_files
        .iter()
        .map(|json| {
            deserialize_data_file_from_json(
                json,
                metadata.default_partition_spec_id(),
                &partition_type,
                metadata.current_schema(),
            )
            .unwrap()
        })
        .collect();
    let tx = Transaction::new(&table);
    let tx = tx.fast_append().add_data_files(files).apply(tx).unwrap();
    tx.commit(&f.catalog).await.unwrap();
    f.expire_all_but_current().await;
    assert_eq!(f.rows().await, 21);

    let again = f.commit(std::slice::from_ref(&message)).await;
    all_done(&again);
    assert_eq!((again.files, again.already_committed), (0, 1));
    assert_eq!(f.rows().await, 21);
}
