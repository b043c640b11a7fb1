//! Every ingested record reaches its table exactly once, whatever fails between
//! the stages: compaction that stops after writing its outputs, after sending its
//! result, or before acknowledging its inputs; a committer whose message deletes
//! fail; messages redelivered in another grouping than the first attempt's.
//!
//! Failures are injected through the ports (a store whose n-th operation on some
//! key fails, a queue whose deletes fail); the process-level crashes of `serve`
//! are covered by the Python tests.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, AsArray};
use async_trait::async_trait;
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use otlp2parquet_compact::{CompactConfig, Stores, compact};
use otlp2parquet_core::Signal;
use otlp2parquet_core::ingest::ingest;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::ports::{
    ObjectStore, ObjectStoreError, Queue, QueueError, ReceivedMessage, SendOptions,
};
use otlp2parquet_core::stage::acknowledge;
use otlp2parquet_iceberg::catalog::open_local_catalog;
use otlp2parquet_iceberg::commit::{CommitConfig, commit};
use otlp2parquet_local::{LocalFsStore, SqliteQueue, SqliteQueues};
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use otlp2parquet_testkit::scan::current_rows;
use otlp2parquet_testkit::store::{Hook, HookedStore, Op, injected};

/// Delivers like the queue it wraps, but every delete fails.
struct DeletesFail(SqliteQueue);

#[async_trait]
impl Queue for DeletesFail {
    fn name(&self) -> &str {
        self.0.name()
    }
    async fn send_with(&self, body: &[u8], options: &SendOptions) -> Result<String, QueueError> {
        self.0.send_with(body, options).await
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
    async fn dead_letter(
        &self,
        message: &ReceivedMessage,
        reason: &str,
    ) -> Result<bool, QueueError> {
        self.0.dead_letter(message, reason).await
    }
    async fn depth(&self) -> Result<u64, QueueError> {
        self.0.depth().await
    }
}

/// Fails the next operations `op` on a key containing a needle, so many
/// times (`Op::Put` stands for every whole-object write, files included).
#[derive(Default)]
struct FailNext {
    rule: Mutex<Option<(Op, &'static str, usize)>>,
}

impl FailNext {
    fn fail(&self, op: Op, needle: &'static str, times: usize) {
        *self.rule.lock().unwrap() = Some((op, needle, times));
    }
}

#[async_trait]
impl Hook for FailNext {
    async fn before(&self, op: Op, key: &str) -> Result<(), ObjectStoreError> {
        let op = if op == Op::PutFile { Op::Put } else { op };
        let mut rule = self.rule.lock().unwrap();
        if let Some((want, needle, times)) = rule.as_mut()
            && *want == op
            && key.contains(*needle)
            && *times > 0
        {
            *times -= 1;
            return Err(injected(key, &format!("{op:?} failure")));
        }
        Ok(())
    }
}

/// A warehouse store whose operations can be made to fail.
type Faulty = HookedStore<FailNext>;

fn faulty(root: &Path) -> Arc<Faulty> {
    Arc::new(HookedStore::new(
        Arc::new(LocalFsStore::new(root)),
        FailNext::default(),
    ))
}

/// A local pipeline in a temporary directory: catalog, queues, warehouse store.
struct Pipeline {
    /// Keeps the temporary directory alive as long as the pipeline.
    _dir: tempfile::TempDir,
    catalog: iceberg_catalog_sql::SqlCatalog,
    queues: SqliteQueues,
    raw: SqliteQueue,
    data: SqliteQueue,
    store: Arc<Faulty>,
    warehouse: std::path::PathBuf,
    compact: CompactConfig,
    commit: CommitConfig,
    /// Messages a compaction batch takes.
    batch: usize,
}

/// What one compaction batch did, as the tests look at it.
#[derive(Debug)]
struct Compacted {
    received: usize,
    compactions: usize,
    inputs: usize,
    rows: u64,
    outputs: usize,
    failed: usize,
}

/// What one commit batch did, as the tests look at it.
#[derive(Debug)]
struct Committed {
    received: usize,
    files: usize,
    rows: u64,
    already_committed: usize,
    bodies: Vec<Vec<u8>>,
}

/// A pipeline whose queues dead-letter after `max_receives` receives and retry
/// failed messages at once.
async fn pipeline(max_receives: u32) -> Pipeline {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("wh");
    let catalog = open_local_catalog(&warehouse).await.unwrap();
    let queues = SqliteQueues::open(&dir.path().join("q.db")).await.unwrap();
    let raw = queues.queue("raw", "raw-dlq", max_receives);
    let data = queues.queue("data", "data-dlq", max_receives);
    let warehouse = warehouse.canonicalize().unwrap();
    let store = faulty(&warehouse);
    let compact = CompactConfig::new(dir.path().join("scratch"));
    let commit = CommitConfig::default();
    Pipeline {
        _dir: dir,
        catalog,
        queues,
        raw,
        data,
        store,
        warehouse,
        compact,
        commit,
        batch: 1000,
    }
}

impl Pipeline {
    fn warehouse(&self) -> &Path {
        &self.warehouse
    }

    async fn ingest(&self, generator: &mut Generator, signal: Signal) {
        ingest(
            generator.next_request(signal),
            "otel",
            self.store.as_ref(),
            &self.raw,
            &ParquetWriterBuilder::new(),
        )
        .await
        .unwrap();
    }

    /// Ingests `requests` logs requests from `generator`.
    async fn ingest_logs(&self, generator: &mut Generator, requests: usize) {
        for _ in 0..requests {
            self.ingest(generator, Signal::Logs).await;
        }
    }

    /// Receives a batch of raw-file messages, compacts it and acknowledges it,
    /// as `serve`'s flusher does; failed messages come back at once.
    async fn compact(&self) -> Compacted {
        let messages = self
            .raw
            .receive(self.batch, Duration::from_secs(600))
            .await
            .unwrap();
        let stores = Stores::single(self.store.clone());
        let report = compact(&messages, Some(&self.data), &stores, &self.compact).await;
        let acked = acknowledge(&self.raw, &messages, &report.outcomes, Duration::ZERO).await;
        Compacted {
            received: messages.len(),
            compactions: report.compactions,
            inputs: report.inputs,
            rows: report.rows,
            outputs: report.outputs,
            failed: acked.failed(),
        }
    }

    /// Receives up to `max` data-file messages from `queue`, commits and
    /// acknowledges them.
    async fn commit_from(&self, queue: &dyn Queue, max: usize) -> Committed {
        let messages = queue.receive(max, Duration::from_secs(300)).await.unwrap();
        let report = commit(&messages, &self.catalog, self.store.as_ref(), &self.commit).await;
        acknowledge(queue, &messages, &report.outcomes, Duration::ZERO).await;
        Committed {
            received: messages.len(),
            files: report.files,
            rows: report.rows,
            already_committed: report.already_committed,
            bodies: messages.iter().map(|m| m.body.clone()).collect(),
        }
    }

    async fn commit(&self) -> Committed {
        self.commit_from(&self.data, 1000).await
    }

    /// Rows of `table` as the catalog's current snapshot reads them, with the
    /// ids of duplicated rows (logs and traces have unique ids per generator).
    async fn rows(&self, table: &str) -> (usize, usize) {
        let ident = TableIdent::new(NamespaceIdent::new("otel".into()), table.into());
        let table = self.catalog.load_table(&ident).await.unwrap();
        let batches = current_rows(&table).await;
        let mut seen = HashSet::new();
        let mut rows = 0;
        let mut duplicates = 0;
        for batch in batches {
            rows += batch.num_rows();
            let body = batch.column_by_name("Body").unwrap().as_string::<i32>();
            let time = batch
                .column_by_name("Timestamp")
                .unwrap()
                .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            for i in 0..batch.num_rows() {
                if !seen.insert((body.value(i).to_string(), time.value(i))) {
                    duplicates += 1;
                }
            }
        }
        (rows, duplicates)
    }

    /// Parquet files under `otel/<table>/data/`, raw ones apart.
    fn files(&self, table: &str) -> (Vec<String>, Vec<String>) {
        let mut raw = Vec::new();
        let mut compacted = Vec::new();
        let root = self.warehouse().join("otel").join(table).join("data");
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "parquet") {
                    let name = path.display().to_string();
                    if name.contains("/data/raw/") {
                        raw.push(name);
                    } else {
                        compacted.push(name);
                    }
                }
            }
        }
        (raw, compacted)
    }
}

fn logs(records: usize) -> Generator {
    Generator::new(GeneratorConfig {
        records_per_request: records,
        services: 3,
        ..Default::default()
    })
}

// A compaction that stops after writing its outputs but before recording its
// result is retried in another grouping, with new data mixed in: the raw files
// it claimed are compacted by it, once; the new file by a compaction of its own.
#[tokio::test]
async fn a_retried_compaction_in_another_grouping_compacts_each_file_once() {
    let mut p = pipeline(5).await;
    let mut generator = logs(100);
    p.ingest_logs(&mut generator, 4).await;
    p.store.hook.fail(Op::PutIfAbsent, ".done.json", 1);
    let first = p.compact().await;
    assert_eq!((first.received, first.compactions, first.failed), (4, 0, 4));
    assert_eq!(p.data.depth().await.unwrap(), 0, "nothing announced");

    p.ingest(&mut generator, Signal::Logs).await;
    p.batch = 2;
    let mut compactions = 0;
    let mut outputs = 0;
    loop {
        let next = p.compact().await;
        if next.received == 0 {
            break;
        }
        assert_eq!(next.failed, 0);
        compactions += next.compactions;
        outputs += next.outputs;
    }
    assert_eq!((compactions, outputs), (2, 2));
    assert_eq!(p.raw.depth().await.unwrap(), 0);
    let (raw, compacted) = p.files("logs");
    assert!(raw.is_empty(), "raw inputs are deleted: {raw:?}");
    assert_eq!(
        compacted.len(),
        2,
        "the first attempt's outputs are removed: {compacted:?}"
    );

    let committed = p.commit().await;
    assert_eq!((committed.files, committed.rows), (2, 500));
    assert_eq!(p.rows("logs").await, (500, 0));
}

// A compactor that sent its result but could not finish (its inputs are still
// there) sends it again when retried: the queue drops the copy while the first
// is in it (deduplication by compaction). Delivered twice all the same — the
// committer's deletes fail, or a copy arrives after the first was consumed
// (past SQS's five-minute deduplication window) — it is added once.
#[tokio::test]
async fn a_result_sent_twice_is_committed_once() {
    let p = pipeline(5).await;
    let mut generator = logs(100);
    p.ingest_logs(&mut generator, 4).await;
    p.store.hook.fail(Op::Delete, "/data/raw/", 1);
    let first = p.compact().await;
    assert_eq!(first.failed, 4);
    assert_eq!(p.data.depth().await.unwrap(), 1, "the result was sent");
    let second = p.compact().await;
    assert_eq!((second.compactions, second.failed), (1, 0));
    assert_eq!(p.data.depth().await.unwrap(), 1, "and deduplicated");

    let failing = DeletesFail(p.data.clone());
    let once = p.commit_from(&failing, 1000).await;
    assert_eq!((once.received, once.rows), (1, 400));
    p.queues.release_in_flight().await.unwrap();
    let again = p.commit_from(&p.data, 1).await;
    assert_eq!(
        (again.received, again.files, again.already_committed),
        (1, 0, 1)
    );
    assert_eq!(p.data.depth().await.unwrap(), 0);
    p.data.send(&once.bodies[0]).await.unwrap();
    let late = p.commit().await;
    assert_eq!(
        (late.received, late.files, late.already_committed),
        (1, 0, 1)
    );
    assert_eq!(p.rows("logs").await, (400, 0));

    // New data after that is committed normally.
    p.ingest(&mut generator, Signal::Logs).await;
    p.compact().await;
    assert_eq!(p.commit().await.rows, 100);
    assert_eq!(p.rows("logs").await, (500, 0));
}

// A result larger than the commit queue takes travels as an object in the
// state store; the committer reads it from there and commits it once.
#[tokio::test]
async fn a_result_too_large_for_the_queue_goes_by_reference() {
    let mut p = pipeline(5).await;
    p.data = p.data.clone().with_max_message_bytes(256);
    let mut generator = logs(100);
    p.ingest_logs(&mut generator, 3).await;
    p.compact().await;
    let objects = p.store.list("messages/data/").await.unwrap();
    assert_eq!(objects.len(), 1, "{objects:?}");
    let committed = p.commit().await;
    assert!(committed.bodies[0].len() <= 256);
    assert_eq!((committed.received, committed.rows), (1, 300));
    assert_eq!(p.rows("logs").await, (300, 0));
}

// One message names files of five tables; one table's compaction fails. The
// other four go ahead; the message comes back, and only the failed table is
// compacted then.
#[tokio::test]
async fn a_message_spanning_tables_is_finished_table_by_table() {
    let p = pipeline(5).await;
    let mut generator = Generator::new(GeneratorConfig {
        records_per_request: 100,
        ..Default::default()
    });
    p.ingest(&mut generator, Signal::Metrics).await;
    p.store
        .hook
        .fail(Op::Put, "/metrics_summary/compaction/", 1);
    let first = p.compact().await;
    assert_eq!((first.compactions, first.failed), (4, 1));
    let second = p.compact().await;
    assert_eq!((second.compactions, second.failed), (1, 0));
    assert_eq!(p.raw.depth().await.unwrap(), 0);
    assert_eq!(p.commit().await.files, 5);

    let mut total = 0;
    for table in Signal::Metrics.tables() {
        let ident = TableIdent::new(NamespaceIdent::new("otel".into()), table.name().into());
        let t = p.catalog.load_table(&ident).await.unwrap();
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

// Messages that cannot be read are left for the dead-letter queues; the rest
// go through.
#[tokio::test]
async fn unreadable_messages_end_in_the_dead_letter_queues() {
    let p = pipeline(2).await;
    p.raw.send(b"{not a message").await.unwrap();
    p.data.send(b"{\"table\":\"logs\"}").await.unwrap();
    p.ingest(&mut logs(10), Signal::Logs).await;
    for _ in 0..3 {
        p.compact().await;
        p.commit().await;
    }
    assert_eq!(p.raw.depth().await.unwrap(), 0);
    assert_eq!(p.data.depth().await.unwrap(), 0);
    assert_eq!(
        p.queues.dead_letter_queue("raw-dlq").depth().await.unwrap(),
        1
    );
    assert_eq!(
        p.queues
            .dead_letter_queue("data-dlq")
            .depth()
            .await
            .unwrap(),
        1
    );
    assert_eq!(p.rows("logs").await, (10, 0));
}

// Compaction merges many raw files into files of about the target size, sorted
// by the table's sort order (service, then time) within each file.
#[tokio::test]
async fn outputs_are_sorted_and_rolled_at_the_target_size() {
    let mut p = pipeline(5).await;
    let mut generator = logs(5_000);
    p.ingest_logs(&mut generator, 10).await;
    const TARGET: u64 = 1024 * 1024;
    p.compact.target_file_bytes = TARGET;
    let outcome = p.compact().await;
    assert_eq!((outcome.inputs, outcome.rows), (10, 50_000));
    assert!(outcome.outputs > 1, "{outcome:?}");
    let (_, compacted) = p.files("logs");
    let mut small = 0;
    for path in &compacted {
        let size = std::fs::metadata(path).unwrap().len();
        assert_sorted(path);
        // Rolled once the target is reached: a slice of 1,024 rows of overshoot at most.
        assert!(size < TARGET + TARGET / 4, "{path}: {size} bytes");
        if size < TARGET / 4 {
            small += 1;
        }
    }
    // Closed at the writer's size estimate, which counts the pages not yet
    // compressed: small targets end well short (about a third here); at the
    // default 128 MiB the uncompressed tail is a small part of the file.
    assert!(
        small < compacted.len(),
        "{small} of {} files short",
        compacted.len()
    );
    eprintln!(
        "SIZES {:?}",
        compacted
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .collect::<Vec<_>>()
    );
    assert_eq!(p.commit().await.rows, 50_000);
    assert_eq!(p.rows("logs").await, (50_000, 0));
}

/// The record batches of the Parquet file at `path`.
fn batches(path: &str) -> impl Iterator<Item = arrow::array::RecordBatch> {
    let file = std::fs::File::open(path).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
}

/// Checks that the logs file at `path` is in the table's sort order.
fn assert_sorted(path: &str) {
    let mut previous: Option<(String, i64)> = None;
    for batch in batches(path) {
        let service = batch.column_by_name("ServiceName").unwrap();
        let service = arrow::compute::cast(service, &arrow::datatypes::DataType::Utf8).unwrap();
        let service = service.as_string::<i32>();
        let time = batch
            .column_by_name("Timestamp")
            .unwrap()
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            let key = (service.value(i).to_string(), time.value(i));
            if let Some(previous) = &previous {
                assert!(previous <= &key, "{path}: {previous:?} before {key:?}");
            }
            previous = Some(key);
        }
        assert_eq!(service.null_count(), 0);
    }
}

// A sort far larger than the memory limit spills (compressed) and merges back:
// DataFusion refuses the sort if it cannot spill, so success means it did.
#[tokio::test]
async fn a_compaction_larger_than_its_memory_limit_spills_and_stays_sorted() {
    let mut p = pipeline(5).await;
    let mut generator = logs(5_000);
    p.ingest_logs(&mut generator, 10).await;
    const LIMIT: usize = 16 * 1024 * 1024;
    p.compact.memory_limit_bytes = LIMIT;
    p.compact.merge_reservation_bytes = 4 * 1024 * 1024;
    let (raw, _) = p.files("logs");
    let in_memory: usize = raw
        .iter()
        .flat_map(|path| batches(path))
        .map(|batch| batch.get_array_memory_size())
        .sum();
    assert!(in_memory > 2 * LIMIT, "{in_memory} bytes: sorted in memory");
    let outcome = p.compact().await;
    assert_eq!(
        (outcome.inputs, outcome.rows, outcome.failed),
        (10, 50_000, 0)
    );
    let (_, compacted) = p.files("logs");
    for path in &compacted {
        assert_sorted(path);
    }
    assert_eq!(p.commit().await.rows, 50_000);
    assert_eq!(p.rows("logs").await, (50_000, 0));
}

// A raw file already at the target size is rewritten like any other, so that
// no committed file lives under `data/raw/`, where a clean-up of raw files may
// delete; redelivered, its message adds nothing.
#[tokio::test]
async fn a_raw_file_at_the_target_size_is_rewritten_outside_raw() {
    let mut p = pipeline(5).await;
    p.ingest(&mut logs(100), Signal::Logs).await;
    let message = p.raw.receive(1, Duration::ZERO).await.unwrap().remove(0);
    p.compact.target_file_bytes = 1;
    let outcome = p.compact().await;
    assert_eq!((outcome.compactions, outcome.outputs), (1, 1));
    let (raw, compacted) = p.files("logs");
    assert_eq!((raw.len(), compacted.len()), (0, 1));
    assert_eq!(p.commit().await.rows, 100);
    assert_eq!(p.rows("logs").await, (100, 0));
    p.raw.send(&message.body).await.unwrap();
    let again = p.compact().await;
    assert_eq!((again.received, again.failed), (1, 0));
    p.commit().await;
    assert_eq!(p.rows("logs").await, (100, 0));
}

// A request whose third file cannot be stored queues nothing: its first two files
// are orphans no message names, so the client's retry cannot double them.
#[tokio::test]
async fn a_request_is_queued_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let queues = SqliteQueues::open(&dir.path().join("q.db")).await.unwrap();
    let queue = queues.queue("raw", "raw-dlq", 5);
    let store = faulty(&dir.path().join("wh"));
    // Files are stored in table order: gauge, sum, histogram, …
    store.hook.fail(Op::Put, "/metrics_histogram/", 1);
    let request = Generator::new(GeneratorConfig {
        records_per_request: 100,
        ..Default::default()
    })
    .next_request(Signal::Metrics);
    let err = ingest(
        request,
        "otel",
        store.as_ref(),
        &queue,
        &ParquetWriterBuilder::new(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("injected Put failure"), "{err}");
    assert_eq!(queue.depth().await.unwrap(), 0);
}

/// Holds the first output file stored until the test releases it: a
/// compaction paused mid-way.
struct Gate {
    armed: std::sync::atomic::AtomicBool,
    reached: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[async_trait]
impl Hook for Gate {
    async fn before(&self, op: Op, _key: &str) -> Result<(), ObjectStoreError> {
        if op == Op::PutFile && self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.reached.notify_one();
            self.release.notified().await;
        }
        Ok(())
    }
}

/// Two compactions run at once on overlapping batches (four messages, and the
/// same four redelivered with a fifth): the one given `paused` stops at its
/// first output until the other has finished, then goes on.
async fn overlapping_compactions(paused: usize) {
    let p = pipeline(5).await;
    let mut generator = logs(100);
    p.ingest_logs(&mut generator, 4).await;
    // A zero visibility timeout: the messages are redelivered at once, as SQS
    // does to a second compactor when the first outlives the timeout.
    let first = p.raw.receive(10, Duration::ZERO).await.unwrap();
    p.ingest(&mut generator, Signal::Logs).await;
    let second = p.raw.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!((first.len(), second.len()), (4, 5));
    let batches = [first, second];

    let gated = Arc::new(HookedStore::new(
        p.store.clone(),
        Gate {
            armed: true.into(),
            reached: Default::default(),
            release: Default::default(),
        },
    ));
    let run = |index: usize| {
        let data: Arc<dyn ObjectStore> = if index == paused {
            gated.clone()
        } else {
            p.store.clone()
        };
        let stores = Stores {
            data,
            state: p.store.clone(),
        };
        let messages = &batches[index];
        let (compact_config, data_queue) = (&p.compact, &p.data);
        async move { compact(messages, Some(data_queue), &stores, compact_config).await }
    };
    let paused_run = run(paused);
    let other_run = async {
        // Start only once the paused one holds its claims and is mid-way.
        gated.hook.reached.notified().await;
        let report = run(1 - paused).await;
        gated.hook.release.notify_one();
        report
    };
    let (paused_report, other_report) = tokio::join!(paused_run, other_run);
    assert!(
        other_report.outcomes.iter().all(|o| o.is_done()),
        "{:?}",
        other_report.outcomes
    );
    // The paused one either finishes too (losing the race for the result) or
    // fails on inputs the other already removed: then its messages come back.
    for (index, report) in [(paused, &paused_report), (1 - paused, &other_report)] {
        acknowledge(&p.raw, &batches[index], &report.outcomes, Duration::ZERO).await;
    }
    loop {
        let next = p.compact().await;
        if next.received == 0 {
            break;
        }
        assert_eq!(next.failed, 0, "{next:?}");
    }

    // Every announced file exists, and every raw record is committed once.
    let announced = p.data.receive(100, Duration::ZERO).await.unwrap();
    assert!(!announced.is_empty());
    for message in &announced {
        let ready: otlp2parquet_core::messages::DataFilesReady =
            serde_json::from_slice(&message.body).unwrap();
        for json in &ready.data_files {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            let path = value["file_path"].as_str().unwrap();
            let path = path.strip_prefix("file://").unwrap_or(path);
            assert!(Path::new(path).exists(), "announced but missing: {path}");
        }
    }
    p.commit().await;
    assert_eq!(p.data.depth().await.unwrap(), 0);
    assert_eq!(p.rows("logs").await, (500, 0));
    let (raw, _) = p.files("logs");
    assert!(raw.is_empty(), "{raw:?}");
}

// A compaction paused mid-way while a second one, handed the same messages
// again plus a new one, finishes; then resumed: each record committed once,
// every announced file present.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_paused_while_a_redelivery_finishes_announces_nothing_missing() {
    overlapping_compactions(0).await;
}

// The reverse: the redelivered batch is paused while the first one finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_paused_while_the_first_compaction_finishes_announces_nothing_missing() {
    overlapping_compactions(1).await;
}
