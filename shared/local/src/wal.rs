//! A write-ahead log in front of the raw files: what `serve` acknowledges.
//!
//! Making each group of requests durable as raw Parquet cost the group an
//! encode (4 ms for a few hundred rows), a file create, two fsyncs (file and
//! directory) and a SQLite transaction with its own fsync before any request of
//! the group could be answered: 14 ms per request under load (see the README's
//! benchmarks). Here a request's converted rows are appended, as Arrow IPC, to
//! the open segment file; a group of requests costs one write and one
//! `fdatasync`, and every request of the group is answered after it.
//!
//! A background drainer, at a lower priority, turns each sealed segment into
//! one raw Parquet file per table and day and one "raw files written" message:
//! the same output as the Lambda's ingest, so compaction and commit are the
//! same code. Segments are sealed when they reach a size or an age, so raw
//! files are few and large.
//!
//! Nothing lost, nothing doubled:
//! - a segment is recycled only after its message is queued; after a crash it
//!   is drained again, and because its raw files are named after it and its
//!   message carries its id as deduplication id, that rewrites the same files
//!   and the compactor's claims make a second message harmless;
//! - a crash during an append leaves a torn record at the end of the last
//!   segment; that record was never acknowledged (its `fdatasync` had not
//!   returned), and its length and checksum show where it starts;
//! - a record that cannot be read back although its checksum holds (a bug,
//!   not a torn write) is moved to `dead-letter/` beside the segments with the
//!   reason, and the rest of its segment is drained;
//! - accepted data that is not yet converted is bounded: beyond
//!   [`WalConfig::max_backlog_bytes`] requests are refused as overloaded (503
//!   with Retry-After) until the drainer catches up.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Cursor, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::ipc::reader::{StreamReader, read_record_batch};
use arrow::ipc::writer::{
    CompressionContext, DictionaryTracker, IpcDataGenerator, IpcWriteOptions,
};
use otlp2parquet_core::crash::crash_point;
use otlp2parquet_core::ingest::{
    DayPart, Ingestor, announce_raw_files, encode_day_parts, named_raw_file_key,
};
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::ports::{ObjectStore, Queue, SendOptions};
use otlp2parquet_core::schema::arrow_schema;
use otlp2parquet_core::telemetry::Telemetry;
use otlp2parquet_core::{Error, Table};
use tokio::sync::oneshot;

/// Extension of segment files.
pub const SEGMENT_EXTENSION: &str = "wal";
/// Where records and segments that cannot be converted are kept, inside the
/// log's directory.
pub const DEAD_LETTER_DIR: &str = "dead-letter";
/// Drained segment files kept for reuse, inside the log's directory.
///
/// Appending to a new file makes every `fdatasync` commit the file system's
/// journal (the file's size changed), which waits for whatever else the
/// journal carries: under load, behind compaction's large files, syncs took
/// up to 140 ms. Overwriting blocks a file already has changes no metadata, so
/// the sync writes only the data. Drained segments are therefore zero-filled
/// to the segment size and kept here (PostgreSQL recycles its WAL files for
/// the same reason), and new segments are taken from here first.
pub const FREE_DIR: &str = "free";
/// Files kept in [`FREE_DIR`].
const FREE_SEGMENTS: usize = 3;
/// Bytes of records written with one `fdatasync` at most: a group larger than
/// this waits for the next.
const MAX_GROUP_BYTES: usize = 8 * 1024 * 1024;
/// Longest wait between attempts to drain a segment whose store or queue fails.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Settings of the log.
#[derive(Clone)]
pub struct WalConfig {
    /// Directory of the segment files.
    pub dir: PathBuf,
    /// Namespace the raw files are laid out under.
    pub namespace: String,
    /// How raw files are encoded.
    pub writer: ParquetWriterBuilder,
    /// A segment is sealed once it holds this many bytes...
    pub segment_bytes: u64,
    /// ...or this long after its first record.
    pub segment_age: Duration,
    /// Requests are refused while this many bytes of records wait to be drained.
    pub max_backlog_bytes: u64,
}

impl WalConfig {
    /// Defaults for a log in `dir`: 16 MiB or 500 ms segments, 1 GiB backlog.
    pub fn new(dir: impl Into<PathBuf>, namespace: impl Into<String>) -> Self {
        WalConfig {
            dir: dir.into(),
            namespace: namespace.into(),
            writer: ParquetWriterBuilder::for_raw_files(),
            segment_bytes: 16 * 1024 * 1024,
            segment_age: Duration::from_millis(500),
            max_backlog_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// A segment's name: a sequence number (the order segments are drained in)
/// and a random id, unique across the warehouse's lifetime, which names its
/// raw files (sequence numbers start again once the log is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SegmentId {
    seq: u64,
    id: String,
}

impl SegmentId {
    fn file_name(&self) -> String {
        format!("{:020}-{}.{SEGMENT_EXTENSION}", self.seq, self.id)
    }

    fn parse(file_name: &str) -> Option<SegmentId> {
        let stem = file_name.strip_suffix(&format!(".{SEGMENT_EXTENSION}"))?;
        let (seq, id) = stem.split_once('-')?;
        Some(SegmentId {
            seq: seq.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// A segment no longer written to, waiting for the drainer.
#[derive(Debug)]
struct Sealed {
    name: SegmentId,
    path: PathBuf,
    bytes: u64,
    /// Left by a previous run.
    recovered: bool,
}

type Reply = oneshot::Sender<io::Result<()>>;

enum Command {
    Append { record: Vec<u8>, reply: Reply },
    Close,
}

/// The [`Ingestor`] of `serve`; see the module docs.
pub struct WalIngestor {
    commands: mpsc::Sender<Command>,
    backlog: Arc<AtomicU64>,
    max_backlog_bytes: u64,
    /// Whether requests are being refused for a full backlog: logged when that
    /// starts and ends, not for each of the thousands of requests in between.
    refusing: AtomicBool,
    closing: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl WalIngestor {
    /// Opens the log in `config.dir` (creating it), hands every segment a
    /// previous run left to the drainer, and starts the writer and the drainer.
    /// Their I/O runs on threads of their own; the drainer's store and queue
    /// calls on a runtime of its own.
    pub fn open(
        config: WalConfig,
        store: Arc<dyn ObjectStore>,
        queue: Arc<dyn Queue>,
        telemetry: Arc<Telemetry>,
    ) -> Result<WalIngestor, Error> {
        let dir = config.dir.clone();
        let io = |source| Error::Io {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&config.dir).map_err(io)?;
        let left = existing_segments(&config.dir).map_err(io)?;
        let backlog: u64 = left.iter().map(|s| s.bytes).sum();
        if !left.is_empty() {
            tracing::info!(
                segments = left.len(),
                bytes = backlog,
                "converting what a previous run accepted"
            );
        }
        let next_seq = left.last().map_or(1, |s| s.name.seq + 1);
        let (sealed_tx, sealed_rx) = mpsc::channel();
        for segment in left {
            let _ = sealed_tx.send(segment);
        }
        let backlog = Arc::new(AtomicU64::new(backlog));
        let closing = Arc::new(AtomicBool::new(false));
        let (commands, commands_rx) = mpsc::channel();
        let config = Arc::new(config);
        telemetry.set_ingest_backlog_bytes(backlog.load(Ordering::Relaxed));
        let writer = SegmentWriter {
            config: config.clone(),
            next_seq,
            open: None,
            sealed: sealed_tx,
            backlog: backlog.clone(),
            telemetry: telemetry.clone(),
        };
        let drainer = Drainer {
            config: config.clone(),
            store,
            queue,
            telemetry,
            backlog: backlog.clone(),
            closing: closing.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || writer.run(commands_rx))
            .map_err(io)?;
        let drainer = std::thread::Builder::new()
            .name("wal-drainer".into())
            .spawn(move || drainer.run(sealed_rx))
            .map_err(io)?;
        Ok(WalIngestor {
            commands,
            backlog,
            max_backlog_bytes: config.max_backlog_bytes,
            refusing: AtomicBool::new(false),
            closing,
            threads: Mutex::new(vec![writer, drainer]),
        })
    }

    /// Bytes of records appended and not yet drained.
    pub fn backlog_bytes(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Seals the open segment and waits until the drainer has converted every
    /// segment (or, if the store or queue fails, left the rest for the next
    /// start). Appends after this fail with [`Error::Stopped`].
    pub async fn close(&self) {
        let _ = self.commands.send(Command::Close);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        let closing = self.closing.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut threads = threads.into_iter();
            // The writer first: once it has sealed its last segment, the
            // drainer only has to finish, and may give up on failures.
            if let Some(writer) = threads.next() {
                let _ = writer.join();
            }
            closing.store(true, Ordering::Relaxed);
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

#[async_trait::async_trait]
impl Ingestor for WalIngestor {
    async fn ingest(&self, parts: Vec<DayPart>) -> Result<u64, Arc<Error>> {
        let backlog = self.backlog_bytes();
        if backlog >= self.max_backlog_bytes {
            if !self.refusing.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    backlog_mib = backlog >> 20,
                    limit_mib = self.max_backlog_bytes >> 20,
                    "the write-ahead log's backlog is full: answering 503 until Parquet conversion catches up"
                );
            }
            return Err(Arc::new(Error::Overloaded(format!(
                "{} MiB of accepted data wait to be converted to Parquet (the limit is {} MiB)",
                backlog >> 20,
                self.max_backlog_bytes >> 20
            ))));
        }
        if self.refusing.load(Ordering::Relaxed) && self.refusing.swap(false, Ordering::Relaxed) {
            tracing::info!(
                backlog_mib = backlog >> 20,
                "the write-ahead log's backlog is below its limit again: accepting requests"
            );
        }
        let rows = parts.iter().map(|(_, _, b)| b.num_rows() as u64).sum();
        let record = encode_record(&parts)?;
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Append { record, reply })
            .map_err(|_| Arc::new(Error::Stopped))?;
        match answer.await {
            Ok(Ok(())) => Ok(rows),
            Ok(Err(source)) => Err(Arc::new(Error::Io {
                path: "write-ahead log".into(),
                source,
            })),
            Err(_) => Err(Arc::new(Error::Stopped)),
        }
    }
}

/// The files in the free pool of the log in `dir`.
fn free_segments(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir.join(FREE_DIR))
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default()
}

/// The segments in `dir`, in the order they were written.
fn existing_segments(dir: &Path) -> io::Result<Vec<Sealed>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().and_then(SegmentId::parse) else {
            continue;
        };
        segments.push(Sealed {
            name,
            path: entry.path(),
            bytes: entry.metadata()?.len(),
            recovered: true,
        });
    }
    segments.sort_by_key(|s| s.name.seq);
    Ok(segments)
}

// A record is `length: u32 LE, crc32 of the payload: u32 LE, the segment's
// sequence number: u64 LE, payload`; the payload is `format: u8` and an LZ4
// block with its uncompressed size prepended. The block holds `parts: u32 LE`
// and, for each part, `table name length: u8, table name, has day: u8, day:
// i32 LE`, then (format 2) `metadata length: u32 LE, body length: u64 LE` and
// an Arrow IPC record batch message: its flatbuffer metadata and its body;
// (format 1, written before December 2026) `IPC length: u64 LE` and an Arrow
// IPC stream of one batch. One record per request, so a torn write loses
// whole requests. The sequence number tells this segment's records from those
// a recycled file still holds past them.
//
// Format 2 leaves the schema out: every batch of a table has the table's
// schema (`arrow_schema`), and encoding it with each request was 6% of the
// receiver's CPU and parsing it back as much of the drainer's (perf, traces
// load). LZ4 because Arrow IPC of a request is about three times its protobuf
// (30 KB for 19 spans): uncompressed, the log wrote 57 MB/s under load, and
// every byte of it is on the path of an fdatasync.
const HEADER: usize = 16;
/// Payload format: LZ4, each part an IPC stream with its schema.
const FORMAT_LZ4_IPC_STREAM: u8 = 1;
/// Payload format: LZ4, each part an IPC record batch message without schema.
const FORMAT_LZ4_IPC_BATCH: u8 = 2;
/// Largest uncompressed record accepted when reading a log back.
const MAX_RECORD_BYTES: usize = 1 << 30;

fn arrow_error(table: Table) -> impl Fn(arrow::error::ArrowError) -> Error {
    move |source| Error::Arrow {
        table: table.name(),
        source,
    }
}

/// One request's rows as a log record.
fn encode_record(parts: &[DayPart]) -> Result<Vec<u8>, Error> {
    let generator = IpcDataGenerator::default();
    let options = IpcWriteOptions::default();
    let mut body = Vec::new();
    body.extend((parts.len() as u32).to_le_bytes());
    for (table, day, batch) in parts {
        let name = table.name().as_bytes();
        body.push(name.len() as u8);
        body.extend(name);
        body.push(u8::from(day.is_some()));
        body.extend(day.unwrap_or(0).to_le_bytes());
        // No dictionary-encoded columns in any table: nothing but the batch.
        let (_, message) = generator
            .encode(
                batch,
                &mut DictionaryTracker::new(false),
                &options,
                &mut CompressionContext::default(),
            )
            .map_err(arrow_error(*table))?;
        body.extend((message.ipc_message.len() as u32).to_le_bytes());
        body.extend((message.arrow_data.len() as u64).to_le_bytes());
        body.extend(&message.ipc_message);
        body.extend(&message.arrow_data);
    }
    let compressed = lz4_flex::block::compress_prepend_size(&body);
    drop(body);
    frame_record(FORMAT_LZ4_IPC_BATCH, &compressed)
}

/// A log record whose payload is the `format` byte and `content`: the header
/// holds the payload's length and checksum; [`stamp`] sets its sequence number.
fn frame_record(format: u8, content: &[u8]) -> Result<Vec<u8>, Error> {
    let mut record = Vec::with_capacity(HEADER + 1 + content.len());
    record.extend([0u8; HEADER]);
    record.push(format);
    record.extend(content);
    let payload_len =
        u32::try_from(record.len() - HEADER).map_err(|_| Error::ConversionTooLarge {
            estimated: record.len() as u64,
            limit: u32::MAX as u64,
        })?;
    let crc = crc32fast::hash(&record[HEADER..]);
    record[..4].copy_from_slice(&payload_len.to_le_bytes());
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(record)
}

/// Sets the segment sequence number of `record`, made by [`encode_record`].
fn stamp(record: &mut [u8], seq: u64) {
    record[8..16].copy_from_slice(&seq.to_le_bytes());
}

/// The payloads of the whole records of segment `seq` at the start of
/// `bytes`, and how many bytes follow the last of them (unused space of a
/// preallocated or recycled file, or a write a crash cut short).
fn split_records(bytes: &[u8], seq: u64) -> (Vec<&[u8]>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER {
        let word =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let length = word(at) as usize;
        let crc = word(at + 4);
        let mut record_seq = [0u8; 8];
        record_seq.copy_from_slice(&bytes[at + 8..at + 16]);
        if u64::from_le_bytes(record_seq) != seq {
            break;
        }
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + length) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        records.push(payload);
        at += HEADER + length;
    }
    (records, bytes.len() - at)
}

/// Reads `n` bytes from the front of `rest`.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if rest.len() < n {
        return Err(format!("the record ends {} bytes early", n - rest.len()));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn array<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    out.copy_from_slice(take(rest, N)?);
    Ok(out)
}

/// One record's rows; the error says what is wrong with it.
fn decode_record(payload: &[u8]) -> Result<Vec<DayPart>, String> {
    let (format, compressed) = payload.split_first().ok_or("an empty record")?;
    if !matches!(*format, FORMAT_LZ4_IPC_STREAM | FORMAT_LZ4_IPC_BATCH) {
        return Err(format!("unknown record format {format}"));
    }
    let size = compressed
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("the record ends before its size")?;
    if size > MAX_RECORD_BYTES {
        return Err(format!("the record claims {size} bytes uncompressed"));
    }
    let body = lz4_flex::block::decompress_size_prepended(compressed).map_err(|e| e.to_string())?;
    let mut rest = body.as_slice();
    let count = u32::from_le_bytes(array(&mut rest)?);
    let mut parts = Vec::new();
    for _ in 0..count {
        let name_len = array::<1>(&mut rest)?[0] as usize;
        let name = std::str::from_utf8(take(&mut rest, name_len)?).map_err(|e| e.to_string())?;
        let table = Table::from_name(name).ok_or_else(|| format!("unknown table {name:?}"))?;
        let has_day = array::<1>(&mut rest)?[0] != 0;
        let day = i32::from_le_bytes(array(&mut rest)?);
        let day = has_day.then_some(day);
        if *format == FORMAT_LZ4_IPC_BATCH {
            let metadata_len = u32::from_le_bytes(array(&mut rest)?) as usize;
            let body_len = u64::from_le_bytes(array(&mut rest)?);
            let metadata = take(&mut rest, metadata_len)?;
            let batch_body = take(
                &mut rest,
                usize::try_from(body_len).map_err(|e| e.to_string())?,
            )?;
            parts.push((table, day, read_batch(table, metadata, batch_body)?));
        } else {
            let ipc_len = u64::from_le_bytes(array(&mut rest)?);
            let ipc = take(
                &mut rest,
                usize::try_from(ipc_len).map_err(|e| e.to_string())?,
            )?;
            let reader =
                StreamReader::try_new(Cursor::new(ipc), None).map_err(|e| e.to_string())?;
            for batch in reader {
                parts.push((table, day, batch.map_err(|e| e.to_string())?));
            }
        }
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last part", rest.len()));
    }
    Ok(parts)
}

/// A record batch of `table` from an IPC message's metadata and body.
fn read_batch(table: Table, metadata: &[u8], body: &[u8]) -> Result<RecordBatch, String> {
    let message = arrow::ipc::root_as_message(metadata).map_err(|e| e.to_string())?;
    let header = message
        .header_as_record_batch()
        .ok_or("the IPC message is not a record batch")?;
    // Validated as it is read (offsets, UTF-8): the checksum rules out torn
    // writes, not bugs.
    read_record_batch(
        &Buffer::from(body),
        header,
        arrow_schema(table).clone(),
        &HashMap::new(),
        None,
        &message.version(),
    )
    .map_err(|e| e.to_string())
}

/// The segment being written.
struct OpenSegment {
    name: SegmentId,
    path: PathBuf,
    file: File,
    bytes: u64,
    opened: Instant,
}

/// Owns the open segment: appends groups of records, seals segments.
struct SegmentWriter {
    config: Arc<WalConfig>,
    next_seq: u64,
    open: Option<OpenSegment>,
    sealed: mpsc::Sender<Sealed>,
    backlog: Arc<AtomicU64>,
    telemetry: Arc<Telemetry>,
}

impl SegmentWriter {
    fn run(mut self, commands: mpsc::Receiver<Command>) {
        loop {
            let first = match &self.open {
                Some(open) => {
                    let left = self
                        .config
                        .segment_age
                        .saturating_sub(open.opened.elapsed());
                    match commands.recv_timeout(left) {
                        Ok(command) => command,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            self.seal();
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match commands.recv() {
                    Ok(command) => command,
                    Err(_) => break,
                },
            };
            // Group commit: everything that arrived while the last group was
            // being synced goes out with one fdatasync.
            let mut group = Vec::new();
            let mut group_bytes = 0;
            let mut closing = false;
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append { record, reply } => {
                        group_bytes += record.len();
                        group.push((record, reply));
                    }
                    Command::Close => closing = true,
                }
                if !closing && group_bytes < MAX_GROUP_BYTES {
                    next = commands.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.append(group);
            }
            let full = self
                .open
                .as_ref()
                .is_some_and(|open| open.bytes >= self.config.segment_bytes);
            if full || closing {
                self.seal();
            }
            if closing {
                break;
            }
        }
        self.seal();
    }

    /// Writes `group` and syncs it, then answers each of its requests.
    fn append(&mut self, mut group: Vec<(Vec<u8>, Reply)>) {
        let bytes: usize = group.iter().map(|(record, _)| record.len()).sum();
        let result = self.write_synced(&mut group, bytes as u64);
        match result {
            Ok(()) => {
                let backlog = self.backlog.fetch_add(bytes as u64, Ordering::Relaxed);
                self.telemetry
                    .set_ingest_backlog_bytes(backlog + bytes as u64);
                crash_point("ingest-after-wal-append");
                for (_, reply) in group {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = group.len(), "appending to the write-ahead log failed");
                // What reached the file after the last synced group is cut off
                // (best effort: a torn tail is also found when draining), and
                // the next group starts a new segment.
                if let Some(open) = &self.open {
                    let _ = open.file.set_len(open.bytes);
                    let _ = open.file.sync_data();
                }
                self.seal();
                for (_, reply) in group {
                    let _ = reply.send(Err(io::Error::new(e.kind(), e.to_string())));
                }
            }
        }
    }

    fn write_synced(&mut self, group: &mut [(Vec<u8>, Reply)], bytes: u64) -> io::Result<()> {
        let open = match self.open.take() {
            Some(open) => open,
            None => self.create()?,
        };
        let open = self.open.insert(open);
        for (record, _) in group.iter_mut() {
            stamp(record, open.name.seq);
            open.file.write_all(record)?;
        }
        open.file.sync_data()?;
        open.bytes += bytes;
        Ok(())
    }

    /// A new segment file, its directory entry synced so that it survives a
    /// crash: a drained one recycled if there is one (see [`FREE_DIR`]).
    fn create(&mut self) -> io::Result<OpenSegment> {
        let name = SegmentId {
            seq: self.next_seq,
            id: uuid::Uuid::now_v7().to_string(),
        };
        self.next_seq += 1;
        let path = self.config.dir.join(name.file_name());
        let recycled = free_segments(&self.config.dir)
            .into_iter()
            .find(|free| fs::rename(free, &path).is_ok());
        let file = match recycled {
            Some(_) => OpenOptions::new().write(true).open(&path)?,
            None => OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?,
        };
        File::open(&self.config.dir)?.sync_all()?;
        Ok(OpenSegment {
            name,
            path,
            file,
            bytes: 0,
            opened: Instant::now(),
        })
    }

    fn seal(&mut self) {
        let Some(open) = self.open.take() else { return };
        if open.bytes == 0 {
            let _ = fs::remove_file(&open.path);
            return;
        }
        // If the drainer is gone, the segment stays for the next start.
        let _ = self.sealed.send(Sealed {
            name: open.name,
            path: open.path,
            bytes: open.bytes,
            recovered: false,
        });
    }
}

/// Turns sealed segments into raw files and their messages.
struct Drainer {
    config: Arc<WalConfig>,
    store: Arc<dyn ObjectStore>,
    queue: Arc<dyn Queue>,
    telemetry: Arc<Telemetry>,
    backlog: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
}

impl Drainer {
    fn run(self, sealed: mpsc::Receiver<Sealed>) {
        otlp2parquet_core::lower_thread_priority();
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the write-ahead log's drainer; segments stay for the next start");
                return;
            }
        };
        for segment in sealed {
            let mut delay = Duration::from_millis(500);
            loop {
                match runtime.block_on(self.drain(&segment)) {
                    Ok(()) => break,
                    Err(e) if e.retryable() && self.closing.load(Ordering::Relaxed) => {
                        tracing::error!(segment = %segment.path.display(), error = %e,
                            "draining a segment failed while shutting down; it stays for the next start");
                        return;
                    }
                    Err(e) if e.retryable() => {
                        tracing::error!(segment = %segment.path.display(), error = %e,
                            "draining a segment failed; retrying in {delay:?}");
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(MAX_RETRY_DELAY);
                    }
                    Err(e) => {
                        tracing::error!(segment = %segment.path.display(), error = %e,
                            "a segment cannot be converted; moved to {DEAD_LETTER_DIR}/");
                        if let Err(e) = self.dead_letter(&segment.path, None, &e.to_string()) {
                            tracing::error!(error = %e, "moving the segment failed; it stays for the next start");
                        }
                        self.release(segment.bytes);
                        break;
                    }
                }
            }
        }
    }

    async fn drain(&self, segment: &Sealed) -> Result<(), Error> {
        let io = |source| Error::Io {
            path: segment.path.clone(),
            source,
        };
        let bytes = fs::read(&segment.path).map_err(io)?;
        let (records, unused) = split_records(&bytes, segment.name.seq);
        if segment.recovered {
            // A torn last record, if any, was never acknowledged.
            tracing::info!(segment = %segment.path.display(), records = records.len(), unused_bytes = unused,
                "converting a segment a previous run left");
        }
        let mut parts = Vec::new();
        for (n, payload) in records.iter().enumerate() {
            match decode_record(payload) {
                Ok(record) => parts.extend(record),
                Err(reason) => {
                    tracing::error!(segment = %segment.path.display(), record = n, %reason,
                        "a record cannot be read back; moved to {DEAD_LETTER_DIR}/");
                    self.dead_letter(&segment.path, Some((n, payload)), &reason)
                        .map_err(io)?;
                }
            }
        }
        let started = Instant::now();
        let files = encode_day_parts(parts, &self.config.writer)?
            .into_iter()
            .map(|file| {
                let key = named_raw_file_key(
                    &self.config.namespace,
                    file.table,
                    file.day,
                    &segment.name.id,
                );
                (key, file)
            })
            .collect();
        let encoded = started.elapsed();
        let options =
            SendOptions::default().with_deduplication_id(format!("wal-{}", segment.name.id));
        let outcome =
            announce_raw_files(files, &options, self.store.as_ref(), self.queue.as_ref()).await?;
        self.telemetry.record_raw_files(
            outcome.files.len(),
            outcome.files.iter().map(|f| f.bytes).sum(),
        );
        self.recycle(&segment.path).map_err(io)?;
        self.release(segment.bytes);
        tracing::debug!(
            segment = %segment.path.display(),
            records = records.len(),
            rows = outcome.accepted,
            files = outcome.files.len(),
            encode_ms = encoded.as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "segment drained"
        );
        Ok(())
    }

    /// Takes a segment's bytes off the backlog.
    fn release(&self, bytes: u64) {
        let before = self.backlog.fetch_sub(bytes, Ordering::Relaxed);
        self.telemetry
            .set_ingest_backlog_bytes(before.saturating_sub(bytes));
    }

    /// Puts a drained segment into the free pool, zero-filled up to the
    /// segment size, or deletes it when the pool is full.
    fn recycle(&self, segment: &Path) -> io::Result<()> {
        let free = self.config.dir.join(FREE_DIR);
        if free_segments(&self.config.dir).len() >= FREE_SEGMENTS {
            return fs::remove_file(segment);
        }
        // Preallocate before renaming: a crash leaves either a drained
        // segment (drained again) or a complete free file.
        let file = OpenOptions::new().write(true).open(segment)?;
        let len = file.metadata()?.len();
        if len < self.config.segment_bytes {
            let mut file = &file;
            file.seek(SeekFrom::Start(len))?;
            let zeros = vec![0u8; 1 << 20];
            let mut left = self.config.segment_bytes - len;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                file.write_all(&zeros[..n])?;
                left -= n as u64;
            }
        }
        file.sync_all()?;
        fs::create_dir_all(&free)?;
        fs::rename(segment, free.join(uuid::Uuid::now_v7().to_string()))
    }

    /// Moves a whole segment (`record` = None) or copies one of its records
    /// into the dead-letter directory, with the reason beside it.
    fn dead_letter(
        &self,
        segment: &Path,
        record: Option<(usize, &[u8])>,
        reason: &str,
    ) -> io::Result<()> {
        let dir = self.config.dir.join(DEAD_LETTER_DIR);
        fs::create_dir_all(&dir)?;
        let file_name = segment
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("segment");
        let target = match record {
            Some((n, _)) => dir.join(format!("{file_name}.record-{n}")),
            None => dir.join(file_name),
        };
        fs::write(format!("{}.reason.txt", target.display()), reason)?;
        match record {
            Some((_, payload)) => fs::write(&target, payload)?,
            None => fs::rename(segment, &target)?,
        }
        File::open(&dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests;
