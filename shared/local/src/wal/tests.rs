use std::sync::Arc;
use std::time::Duration;

use otlp2parquet_core::Signal;
use otlp2parquet_core::convert::Limits;
use otlp2parquet_core::ingest::{DayPart, Ingestor, day_parts};
use otlp2parquet_core::messages::RawFilesWritten;
use otlp2parquet_core::ports::{
    MemoryQueues, MemoryStore, ObjectStore, ObjectStoreError, Queue, parquet_metadata,
};
use otlp2parquet_core::telemetry::Telemetry;
use otlp2parquet_core::{Error, Table};
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use otlp2parquet_testkit::store::{Hook, HookedStore, Op, injected};

use super::{
    DEAD_LETTER_DIR, FORMAT_LZ4_IPC_STREAM, FREE_DIR, HEADER, SegmentId, WalConfig, WalIngestor,
    decode_record, encode_record, frame_record, stamp,
};

/// A segment's bytes as the writer would have written them.
fn segment(seq: u64, records: Vec<Vec<u8>>) -> Vec<u8> {
    records
        .into_iter()
        .flat_map(|mut record| {
            stamp(&mut record, seq);
            record
        })
        .collect()
}

fn parts(signal: Signal, records: usize, seed: u64) -> Vec<DayPart> {
    let request = Generator::new(GeneratorConfig {
        seed,
        records_per_request: records,
        ..Default::default()
    })
    .next_request(signal);
    day_parts(request, &Limits::default()).unwrap().0
}

fn rows(parts: &[DayPart]) -> u64 {
    parts.iter().map(|(_, _, b)| b.num_rows() as u64).sum()
}

struct Setup {
    _dir: tempfile::TempDir,
    config: WalConfig,
    store: Arc<dyn ObjectStore>,
    queue: Arc<dyn Queue>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = WalConfig::new(dir.path().join("wal"), "otel");
    // One segment per test unless it says otherwise.
    config.segment_age = Duration::from_secs(60);
    config.segment_bytes = 1024 * 1024;
    let queues = MemoryQueues::new();
    Setup {
        _dir: dir,
        config,
        store: Arc::new(MemoryStore::new()),
        queue: Arc::new(queues.queue("raw", "raw-dlq", 5)),
    }
}

impl Setup {
    fn open(&self) -> WalIngestor {
        self.open_with(self.store.clone())
    }

    fn open_with(&self, store: Arc<dyn ObjectStore>) -> WalIngestor {
        self.open_reporting(store, Arc::new(Telemetry::default()))
    }

    fn open_reporting(
        &self,
        store: Arc<dyn ObjectStore>,
        telemetry: Arc<Telemetry>,
    ) -> WalIngestor {
        WalIngestor::open(self.config.clone(), store, self.queue.clone(), telemetry).unwrap()
    }

    /// Every queued message, received once, with the rows of its files as the
    /// files' own footers count them.
    async fn messages(&self) -> Vec<(RawFilesWritten, u64)> {
        let mut out = Vec::new();
        for message in self
            .queue
            .receive(100, Duration::from_secs(60))
            .await
            .unwrap()
        {
            let body: RawFilesWritten = serde_json::from_slice(&message.body).unwrap();
            let mut rows = 0;
            for file in &body.files {
                let footer = parquet_metadata(self.store.as_ref(), &file.key)
                    .await
                    .unwrap();
                assert_eq!(footer.file_metadata().num_rows() as u64, file.rows);
                rows += file.rows;
            }
            out.push((body, rows));
        }
        out
    }

    /// A segment file written by hand, as a previous run would have left it.
    fn write_segment(&self, seq: u64, bytes: &[u8]) -> std::path::PathBuf {
        std::fs::create_dir_all(&self.config.dir).unwrap();
        let name = SegmentId {
            seq,
            id: uuid::Uuid::now_v7().to_string(),
        };
        let path = self.config.dir.join(name.file_name());
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn segments_left(&self) -> usize {
        std::fs::read_dir(&self.config.dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "wal")
            })
            .count()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_requests_become_one_file_per_table_and_day_and_one_message() {
    let s = setup();
    let telemetry = Arc::new(Telemetry::default());
    let wal = Arc::new(s.open_reporting(s.store.clone(), telemetry.clone()));
    let backlog = |t: &Telemetry| {
        t.render(&[])
            .lines()
            .find_map(|l| l.strip_prefix("otlp2parquet_ingest_backlog_bytes "))
            .map(|v| v.parse::<u64>().unwrap())
    };
    let requests = [
        parts(Signal::Logs, 10, 1),
        parts(Signal::Logs, 20, 2),
        parts(Signal::Traces, 5, 3),
    ];
    let expected: u64 = requests.iter().map(|p| rows(p)).sum();
    let mut tasks = Vec::new();
    for request in requests {
        let wal = wal.clone();
        tasks.push(tokio::spawn(async move { wal.ingest(request).await }));
    }
    let mut acknowledged = 0;
    for task in tasks {
        acknowledged += task.await.unwrap().unwrap();
    }
    assert_eq!(acknowledged, expected);
    assert!(wal.backlog_bytes() > 0);
    assert_eq!(
        backlog(&telemetry),
        Some(wal.backlog_bytes()),
        "reported at /metrics"
    );
    wal.close().await;
    assert_eq!(wal.backlog_bytes(), 0);
    assert_eq!(backlog(&telemetry), Some(0));
    let messages = s.messages().await;
    assert_eq!(messages.len(), 1, "one segment, one message");
    assert_eq!(messages[0].1, expected);
    let tables: Vec<&str> = messages[0]
        .0
        .files
        .iter()
        .map(|f| f.table.as_str())
        .collect();
    assert_eq!(tables, ["logs", "traces"]);
    assert_eq!(s.segments_left(), 0);
    assert!(matches!(
        wal.ingest(parts(Signal::Logs, 1, 4))
            .await
            .unwrap_err()
            .as_ref(),
        Error::Stopped
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn segments_are_sealed_by_age() {
    let mut s = setup();
    s.config.segment_age = Duration::from_millis(20);
    let wal = s.open();
    wal.ingest(parts(Signal::Logs, 3, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    wal.ingest(parts(Signal::Logs, 4, 2)).await.unwrap();
    wal.close().await;
    let rows: Vec<u64> = s.messages().await.into_iter().map(|(_, r)| r).collect();
    assert_eq!(rows, [3, 4]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_segment_a_crash_left_is_drained_on_open_without_its_torn_tail() {
    let s = setup();
    let first = parts(Signal::Logs, 7, 1);
    let second = parts(Signal::Metrics, 5, 2);
    let third = segment(41, vec![encode_record(&parts(Signal::Logs, 9, 3)).unwrap()]);
    let mut bytes = segment(
        41,
        vec![
            encode_record(&first).unwrap(),
            encode_record(&second).unwrap(),
        ],
    );
    // The crash came in the middle of the third append: never acknowledged.
    bytes.extend(&third[..third.len() / 2]);
    s.write_segment(41, &bytes);
    let wal = s.open();
    wal.close().await;
    let messages = s.messages().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].1, rows(&first) + rows(&second));
    assert_eq!(s.segments_left(), 0);
}

/// A record as versions before December 2026 wrote it: each part an IPC
/// stream with its schema (format 1).
fn encode_record_v1(parts: &[DayPart]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend((parts.len() as u32).to_le_bytes());
    for (table, day, batch) in parts {
        body.push(table.name().len() as u8);
        body.extend(table.name().as_bytes());
        body.push(u8::from(day.is_some()));
        body.extend(day.unwrap_or(0).to_le_bytes());
        let mut ipc = Vec::new();
        let mut writer =
            arrow::ipc::writer::StreamWriter::try_new(&mut ipc, &batch.schema()).unwrap();
        writer.write(batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        body.extend((ipc.len() as u64).to_le_bytes());
        body.extend(ipc);
    }
    frame_record(
        FORMAT_LZ4_IPC_STREAM,
        &lz4_flex::block::compress_prepend_size(&body),
    )
    .unwrap()
}

#[test]
fn a_record_gives_back_the_parts_it_was_made_of() {
    for signal in [Signal::Logs, Signal::Traces, Signal::Metrics] {
        let parts = parts(signal, 25, 7);
        let record = encode_record(&parts).unwrap();
        let back = decode_record(&record[HEADER..]).unwrap();
        assert_eq!(back.len(), parts.len());
        for ((table, day, batch), (t, d, b)) in parts.iter().zip(&back) {
            assert_eq!((table, day), (t, d));
            assert_eq!(batch, b, "{table}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_segment_an_older_version_wrote_is_drained() {
    let s = setup();
    let old = parts(Signal::Logs, 7, 1);
    let new = parts(Signal::Metrics, 5, 2);
    let bytes = segment(
        3,
        vec![encode_record_v1(&old), encode_record(&new).unwrap()],
    );
    s.write_segment(3, &bytes);
    s.open().close().await;
    let messages = s.messages().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].1, rows(&old) + rows(&new));
    assert!(!s.config.dir.join(DEAD_LETTER_DIR).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn draining_a_segment_again_rewrites_its_files_and_its_message_is_deduplicated() {
    let s = setup();
    let bytes = segment(
        1,
        vec![encode_record(&parts(Signal::Traces, 6, 1)).unwrap()],
    );
    let path = s.write_segment(1, &bytes);
    s.open().close().await;
    let keys = s.store.list("otel/").await.unwrap();
    // A crash after the message was queued but before the segment was deleted.
    std::fs::write(&path, &bytes).unwrap();
    s.open().close().await;
    assert_eq!(s.store.list("otel/").await.unwrap(), keys);
    let messages = s.messages().await;
    assert_eq!(messages.len(), 1, "the second message was deduplicated");
    assert_eq!(messages[0].1, 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_that_cannot_be_read_back_is_dead_lettered_and_the_rest_drained() {
    let s = setup();
    let good = parts(Signal::Logs, 8, 1);
    // A checksum that holds over a payload that is no record: a bug, not a
    // torn write.
    let payload =
        b"\x01\x00\x00\x00\x04logs\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00abc";
    let bad = frame_record(payload[0], &payload[1..]).unwrap();
    let bytes = segment(1, vec![bad, encode_record(&good).unwrap()]);
    s.write_segment(1, &bytes);
    s.open().close().await;
    let messages = s.messages().await;
    assert_eq!(messages[0].1, rows(&good));
    let dead: Vec<String> = std::fs::read_dir(s.config.dir.join(DEAD_LETTER_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let record = dead.iter().find(|n| n.ends_with(".record-0")).unwrap();
    let kept = std::fs::read(s.config.dir.join(DEAD_LETTER_DIR).join(record)).unwrap();
    assert_eq!(kept, payload);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recycled_segment_file_yields_only_its_new_records() {
    let s = setup();
    let old = segment(
        1,
        (0..3)
            .map(|i| encode_record(&parts(Signal::Logs, 20, i)).unwrap())
            .collect(),
    );
    s.write_segment(1, &old);
    let wal = s.open();
    // Drained and zero-filled into the free pool...
    let free = s.config.dir.join(FREE_DIR);
    let pooled = || std::fs::read_dir(&free).map_or(0, |d| d.count());
    for _ in 0..200 {
        if pooled() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pooled(), 1);
    assert_eq!(
        std::fs::metadata(
            std::fs::read_dir(&free)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path()
        )
        .unwrap()
        .len(),
        s.config.segment_bytes
    );
    // ...then overwritten from its start by the next segment, whose one small
    // record leaves the old ones after it.
    let new = parts(Signal::Logs, 2, 9);
    wal.ingest(new.clone()).await.unwrap();
    assert_eq!(pooled(), 0, "the file was reused");
    wal.close().await;
    let expected = rows(&new);
    let rows: Vec<u64> = s.messages().await.into_iter().map(|(_, r)| r).collect();
    assert_eq!(rows, [60, expected]);
}

/// Fails every put, as a store that is down.
struct StoreDown;

#[async_trait::async_trait]
impl Hook for StoreDown {
    async fn before(&self, op: Op, key: &str) -> Result<(), ObjectStoreError> {
        match op {
            Op::Put | Op::PutIfAbsent | Op::PutFile => Err(injected(key, "outage")),
            _ => Ok(()),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_over_the_limit_is_refused_and_kept_for_the_next_start() {
    let mut s = setup();
    s.config.max_backlog_bytes = 1;
    s.config.segment_age = Duration::from_millis(10);
    let down = Arc::new(HookedStore::new(s.store.clone(), StoreDown));
    let wal = s.open_with(down);
    let accepted = parts(Signal::Logs, 5, 1);
    wal.ingest(accepted.clone()).await.unwrap();
    let refused = wal.ingest(parts(Signal::Logs, 5, 2)).await.unwrap_err();
    assert!(
        matches!(refused.as_ref(), Error::Overloaded(_)),
        "{refused}"
    );
    assert!(refused.retryable());
    wal.close().await;
    assert_eq!(s.segments_left(), 1, "the accepted request waits on disk");
    assert!(s.messages().await.is_empty());
    // The store is back: the next start converts it.
    s.open().close().await;
    let messages = s.messages().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].1, rows(&accepted));
    assert_eq!(messages[0].0.files[0].table, Table::Logs.name());
}
