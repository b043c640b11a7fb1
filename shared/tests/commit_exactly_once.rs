//! The committer adds every queued file exactly once, whatever happens between
//! its catalog commit and its message deletes.
//!
//! A queue whose deletes fail stands in for a committer that crashed after
//! committing: the messages come back, here in another grouping than the one
//! committed, and must be recognised from the message ids in the snapshots.

use std::time::Duration;

use async_trait::async_trait;
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use otlp2parquet_shared::Signal;
use otlp2parquet_shared::catalog::open_local_catalog;
use otlp2parquet_shared::commit::{CommitConfig, commit_batch};
use otlp2parquet_shared::generate::{Generator, GeneratorConfig};
use otlp2parquet_shared::ingest::ingest;
use otlp2parquet_shared::local::{LocalFsStore, SqliteQueue, SqliteQueues};
use otlp2parquet_shared::parquet::ParquetWriterBuilder;
use otlp2parquet_shared::ports::{
    ObjectStore, ObjectStoreError, Queue, QueueError, ReceivedMessage,
};

/// Delivers like the queue it wraps, but every delete fails.
struct DeletesFail(SqliteQueue);

#[async_trait]
impl Queue for DeletesFail {
    fn name(&self) -> &str {
        self.0.name()
    }
    async fn send(&self, body: &[u8]) -> Result<String, QueueError> {
        self.0.send(body).await
    }
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.0.receive(max, visibility).await
    }
    async fn delete(&self, _receipt: &str) -> Result<bool, QueueError> {
        Err(QueueError::Backend {
            queue: self.name().into(),
            message: "injected failure".into(),
        })
    }
    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<bool, QueueError> {
        self.0.change_visibility(receipt, visibility).await
    }
    async fn depth(&self) -> Result<u64, QueueError> {
        self.0.depth().await
    }
}

/// A local pipeline in a temporary directory: catalog, queues, warehouse store.
struct Pipeline {
    dir: tempfile::TempDir,
    catalog: iceberg_catalog_sql::SqlCatalog,
    queues: SqliteQueues,
    queue: SqliteQueue,
    store: LocalFsStore,
}

/// A pipeline whose queue dead-letters after `max_receives` receives.
async fn pipeline(max_receives: u32) -> Pipeline {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("wh");
    let catalog = open_local_catalog(&warehouse).await.unwrap();
    let queues = SqliteQueues::open(&dir.path().join("q.db")).await.unwrap();
    let queue = queues.queue("raw", "raw-dlq", max_receives);
    let store = LocalFsStore::new(warehouse.canonicalize().unwrap());
    Pipeline {
        dir,
        catalog,
        queues,
        queue,
        store,
    }
}

async fn total_records(catalog: &dyn Catalog) -> u64 {
    let ident = TableIdent::new(NamespaceIdent::new("otel".into()), "logs".into());
    let table = catalog.load_table(&ident).await.unwrap();
    let summary = &table
        .metadata()
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties;
    summary["total-records"].parse().unwrap()
}

#[tokio::test]
async fn redelivered_messages_in_another_grouping_are_not_committed_twice() {
    // `_dir` keeps the temporary directory alive until the end of the test.
    let Pipeline {
        dir: _dir,
        catalog,
        queues,
        queue,
        store,
    } = pipeline(5).await;
    let writer = ParquetWriterBuilder::new();
    let mut generator = Generator::new(GeneratorConfig {
        records_per_request: 100,
        services: 1,
        ..Default::default()
    });
    for _ in 0..4 {
        ingest(
            generator.next_request(Signal::Logs),
            "otel",
            &store,
            &queue,
            &writer,
        )
        .await
        .unwrap();
    }
    assert_eq!(queue.depth().await.unwrap(), 4);

    // First attempt: all four committed in one snapshot, but no message deleted.
    let config = CommitConfig {
        max_messages: 10,
        ..Default::default()
    };
    let failing = DeletesFail(queue.clone());
    let first = commit_batch(&failing, &catalog, &store, &config)
        .await
        .unwrap();
    assert_eq!((first.files, first.rows), (4, 400));
    assert_eq!(queue.depth().await.unwrap(), 4);

    // They come back, one at a time this time: none is committed again.
    queues.release_in_flight().await.unwrap();
    let one_by_one = CommitConfig {
        max_messages: 1,
        ..Default::default()
    };
    for _ in 0..4 {
        let again = commit_batch(&queue, &catalog, &store, &one_by_one)
            .await
            .unwrap();
        assert_eq!(
            (again.received, again.files, again.already_committed),
            (1, 0, 1)
        );
    }
    assert_eq!(queue.depth().await.unwrap(), 0);
    assert_eq!(total_records(&catalog).await, 400);

    // New data after that is committed normally.
    ingest(
        generator.next_request(Signal::Logs),
        "otel",
        &store,
        &queue,
        &writer,
    )
    .await
    .unwrap();
    let next = commit_batch(&queue, &catalog, &store, &config)
        .await
        .unwrap();
    assert_eq!((next.files, next.rows), (1, 100));
    assert_eq!(total_records(&catalog).await, 500);
}

// A message that cannot be read is left for the dead-letter queue; the rest commit.
#[tokio::test]
async fn unreadable_messages_end_in_the_dead_letter_queue() {
    // `_dir` keeps the temporary directory alive until the end of the test.
    let Pipeline {
        dir: _dir,
        catalog,
        queues,
        queue,
        store,
    } = pipeline(2).await;
    let dlq = queues.dead_letter_queue("raw-dlq");
    queue.send(b"{not a message").await.unwrap();
    let request = Generator::new(GeneratorConfig {
        records_per_request: 10,
        ..Default::default()
    })
    .next_request(Signal::Logs);
    ingest(
        request,
        "otel",
        &store,
        &queue,
        &ParquetWriterBuilder::new(),
    )
    .await
    .unwrap();
    let config = CommitConfig {
        visibility: Duration::ZERO,
        retry_delay: Duration::ZERO,
        ..Default::default()
    };
    let first = commit_batch(&queue, &catalog, &store, &config)
        .await
        .unwrap();
    assert_eq!((first.failed, first.rows), (1, 10));
    commit_batch(&queue, &catalog, &store, &config)
        .await
        .unwrap();
    commit_batch(&queue, &catalog, &store, &config)
        .await
        .unwrap();
    assert_eq!(queue.depth().await.unwrap(), 0);
    assert_eq!(dlq.depth().await.unwrap(), 1);
}

/// Stores like the store it wraps, except that the `fail_at`-th put fails.
struct FailingPut {
    inner: LocalFsStore,
    puts: std::sync::atomic::AtomicUsize,
    fail_at: usize,
}

#[async_trait]
impl ObjectStore for FailingPut {
    async fn put(&self, key: &str, bytes: bytes::Bytes) -> Result<(), ObjectStoreError> {
        let n = self.puts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n == self.fail_at {
            return Err(ObjectStoreError::Backend {
                key: key.into(),
                message: "injected: disk full".into(),
            });
        }
        self.inner.put(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<bytes::Bytes, ObjectStoreError> {
        self.inner.get(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        self.inner.delete(key).await
    }
    fn uri(&self, key: &str) -> String {
        self.inner.uri(key)
    }
}

// A request whose third file cannot be stored queues nothing: its first two files
// are orphans no message names, so the client's retry cannot double them.
#[tokio::test]
async fn a_request_is_queued_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let queues = SqliteQueues::open(&dir.path().join("q.db")).await.unwrap();
    let queue = queues.queue("raw", "raw-dlq", 5);
    let store = FailingPut {
        inner: LocalFsStore::new(dir.path().join("wh")),
        puts: Default::default(),
        fail_at: 3,
    };
    let request = Generator::new(GeneratorConfig {
        records_per_request: 100,
        ..Default::default()
    })
    .next_request(Signal::Metrics);
    let err = ingest(
        request,
        "otel",
        &store,
        &queue,
        &ParquetWriterBuilder::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(queue.depth().await.unwrap(), 0);
}

// One message names files of five tables; one table's commit fails. The other
// four commit; the message comes back, and only the failed table is committed.
#[tokio::test]
async fn a_message_spanning_tables_is_finished_table_by_table() {
    let Pipeline {
        dir,
        catalog,
        queue,
        store,
        ..
    } = pipeline(5).await;
    let root = store.root().to_path_buf();
    let request = Generator::new(GeneratorConfig {
        records_per_request: 100,
        ..Default::default()
    })
    .next_request(Signal::Metrics);
    let outcome = ingest(
        request,
        "otel",
        &store,
        &queue,
        &ParquetWriterBuilder::new(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.files.len(), 5);
    assert_eq!(queue.depth().await.unwrap(), 1);

    // Hide the summary file: that table's commit fails.
    let summary = outcome
        .files
        .iter()
        .find(|f| f.table == "metrics_summary")
        .unwrap();
    let path = root.join(&summary.key);
    let hidden = dir.path().join("hidden.parquet");
    std::fs::rename(&path, &hidden).unwrap();
    let config = CommitConfig {
        retry_delay: Duration::ZERO,
        ..Default::default()
    };
    let first = commit_batch(&queue, &catalog, &store, &config)
        .await
        .unwrap();
    assert_eq!((first.files, first.failed), (4, 1));
    assert_eq!(
        queue.depth().await.unwrap(),
        1,
        "the message stays until every table has it"
    );

    std::fs::rename(&hidden, &path).unwrap();
    let second = commit_batch(&queue, &catalog, &store, &config)
        .await
        .unwrap();
    assert_eq!(
        (second.files, second.already_committed, second.failed),
        (1, 4, 0)
    );
    assert_eq!(queue.depth().await.unwrap(), 0);
    let mut total = 0;
    for table in otlp2parquet_shared::Signal::Metrics.tables() {
        let ident = TableIdent::new(NamespaceIdent::new("otel".into()), table.name().into());
        let t = catalog.load_table(&ident).await.unwrap();
        assert_eq!(t.metadata().snapshots().count(), 1, "{table}");
        let summary = &t
            .metadata()
            .current_snapshot()
            .unwrap()
            .summary()
            .additional_properties;
        total += summary["total-records"].parse::<u64>().unwrap();
    }
    assert_eq!(total, 100);
}
