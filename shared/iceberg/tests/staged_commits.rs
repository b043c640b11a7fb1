//! Staged commits: compactions gathered over many batches make one snapshot,
//! so 1,000 messages handed over ten at a time (a FIFO event source's most)
//! make ten commits instead of a hundred — and nothing is lost or doubled on
//! the way: a message delivered again while its compaction is staged, or
//! after it was committed, adds nothing; a committer that dies after the
//! commit leaves staged records that the next one only removes.
//!
//! The stage is handed messages directly, as a Lambda is; the catalog is the
//! embedded SQLite one and the ledger lives in an in-memory store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use otlp2parquet_core::Table;
use otlp2parquet_core::ports::{MemoryStore, ObjectStore, ObjectStoreError, ReceivedMessage};
use otlp2parquet_core::stage::Outcome;
use otlp2parquet_iceberg::catalog::{ensure_table, local_path, open_local_catalog};
use otlp2parquet_iceberg::commit::{CommitConfig, CommitReport, Staging, commit, commit_due};
use otlp2parquet_testkit::files::data_files_ready;
use otlp2parquet_testkit::scan::current_rows;
use otlp2parquet_testkit::store::{Hook, HookedStore, Op, injected};

/// Makes deletes of staged records fail while armed, as a committer that
/// dies right after its commit and committed records would leave things.
#[derive(Default)]
struct FailStagedDeletes(AtomicBool);

#[async_trait]
impl Hook for FailStagedDeletes {
    async fn before(&self, op: Op, key: &str) -> Result<(), ObjectStoreError> {
        if op == Op::Delete && key.contains("/commits/staged/") && self.0.load(Ordering::Relaxed) {
            return Err(injected(key, "death of the committer"));
        }
        Ok(())
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    catalog: iceberg_catalog_sql::SqlCatalog,
    state: HookedStore<FailStagedDeletes>,
    ident: TableIdent,
    location: std::path::PathBuf,
    config: CommitConfig,
}

async fn fixture(max_compactions: usize, max_wait: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let catalog = open_local_catalog(&dir.path().join("wh")).await.unwrap();
    let namespace = NamespaceIdent::new("otel".into());
    let table = ensure_table(&catalog, &namespace, Table::Logs)
        .await
        .unwrap();
    Fixture {
        location: local_path(table.metadata().location()),
        _dir: dir,
        catalog,
        state: HookedStore::new(Arc::new(MemoryStore::new()), FailStagedDeletes::default()),
        ident: TableIdent::new(namespace, "logs".into()),
        config: CommitConfig {
            staging: Some(Staging {
                max_compactions,
                max_wait,
            }),
            ..CommitConfig::default()
        },
    }
}

impl Fixture {
    async fn commit(&self, messages: &[ReceivedMessage]) -> CommitReport {
        let report = commit(messages, &self.catalog, &self.state, &self.config).await;
        assert!(
            report.outcomes.iter().all(|o| *o == Outcome::Done),
            "{:?}",
            report.outcomes
        );
        report
    }

    async fn snapshots(&self) -> usize {
        let table = self.catalog.load_table(&self.ident).await.unwrap();
        table.metadata().snapshots().count()
    }

    async fn rows(&self) -> usize {
        let table = self.catalog.load_table(&self.ident).await.unwrap();
        current_rows(&table)
            .await
            .iter()
            .map(|b| b.num_rows())
            .sum()
    }

    async fn staged(&self) -> usize {
        self.state
            .list("otel/logs/commits/staged/")
            .await
            .unwrap()
            .len()
    }
}

/// 1,000 compactions in batches of ten, committed every hundred: ten
/// snapshots, every row once.
#[tokio::test]
async fn a_thousand_messages_ten_at_a_time_make_ten_commits() {
    let f = fixture(100, Duration::from_secs(3600)).await;
    let messages: Vec<ReceivedMessage> = (0..1000)
        .map(|n| data_files_ready(&f.location, n, 2))
        .collect();
    let mut commits = 0;
    for batch in messages.chunks(10) {
        commits += f.commit(batch).await.commits;
    }
    assert_eq!(commits, 10);
    assert_eq!(f.snapshots().await, 10);
    assert_eq!(f.rows().await, 2000);
    assert_eq!(f.staged().await, 0);
}

/// Staged compactions wait for more until the window is old enough, then a
/// schedule's call commits them; `force` commits whatever is staged.
#[tokio::test]
async fn the_last_compactions_are_committed_by_the_schedule() {
    let f = fixture(100, Duration::from_millis(300)).await;
    let first: Vec<_> = (0..3)
        .map(|n| data_files_ready(&f.location, n, 5))
        .collect();
    assert_eq!(f.commit(&first).await.commits, 0);
    assert_eq!(f.staged().await, 3);
    let due = commit_due(&f.catalog, &f.state, &f.config, false).await;
    assert_eq!(due.commits, 0, "the window is not old enough yet");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let due = commit_due(&f.catalog, &f.state, &f.config, false).await;
    assert_eq!((due.commits, due.rows), (1, 15));
    assert_eq!(f.staged().await, 0);

    let more = [data_files_ready(&f.location, 7, 4)];
    assert_eq!(f.commit(&more).await.commits, 0);
    let forced = commit_due(&f.catalog, &f.state, &f.config, true).await;
    assert_eq!((forced.commits, forced.rows), (1, 4));
    assert_eq!(f.snapshots().await, 2);
    assert_eq!(f.rows().await, 19);
}

/// A message delivered again while its compaction is staged, and again
/// after it was committed, adds nothing.
#[tokio::test]
async fn a_message_delivered_again_is_staged_and_committed_once() {
    let f = fixture(4, Duration::from_secs(3600)).await;
    let messages: Vec<_> = (0..3)
        .map(|n| data_files_ready(&f.location, n, 10))
        .collect();
    f.commit(&messages[..2]).await;
    f.commit(&messages[..2]).await;
    assert_eq!(f.staged().await, 2, "staged once");
    let report = f.commit(&messages[1..]).await;
    assert_eq!(
        report.commits, 0,
        "three compactions staged, four make a commit"
    );
    let fourth = [data_files_ready(&f.location, 3, 10)];
    assert_eq!(f.commit(&fourth).await.commits, 1);
    assert_eq!(f.rows().await, 40);
    f.commit(&messages).await;
    commit_due(&f.catalog, &f.state, &f.config, true).await;
    assert_eq!(f.snapshots().await, 1);
    assert_eq!(f.rows().await, 40);
    assert_eq!(f.staged().await, 0);
}

/// The committer dies after the commit, before its staged records are
/// removed: the next call finds them committed, commits nothing, and
/// removes them.
#[tokio::test]
async fn staged_records_left_by_a_dead_committer_are_only_removed() {
    let f = fixture(2, Duration::from_secs(3600)).await;
    let messages: Vec<_> = (0..2)
        .map(|n| data_files_ready(&f.location, n, 6))
        .collect();
    f.state.hook.0.store(true, Ordering::Relaxed);
    f.commit(&messages).await;
    assert_eq!(f.snapshots().await, 1);
    assert_eq!(f.staged().await, 2, "the removal failed");
    f.state.hook.0.store(false, Ordering::Relaxed);
    let due = commit_due(&f.catalog, &f.state, &f.config, false).await;
    assert_eq!(due.commits, 0);
    assert_eq!(due.already_committed, 2);
    assert_eq!(f.staged().await, 0);
    assert_eq!(f.snapshots().await, 1);
    assert_eq!(f.rows().await, 12);
}
