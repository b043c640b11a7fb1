//! The ingest stage: an export request in, durable raw Parquet files and
//! "raw file written" messages out.
//!
//! A client's data is acknowledged only after `ingest` returns: by then every
//! raw file is durable in the object store and one message listing all of them is
//! in the queue. One message per request, not per file, makes a request atomic: if
//! storing its third file fails, no message names the first two, they are orphans
//! (never committed, removable by age), and the client's retry cannot double them.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;

use crate::convert::{Limits, Rejections, convert_with};
use crate::messages::{RawFileWritten, RawFilesWritten};
use crate::otlp::ExportRequest;
use crate::parquet::ParquetWriterBuilder;
use crate::partition::{partition_path, split_by_day};
use crate::ports::{MessageSink, ObjectSink, ObjectStore, Queue, SendOptions};
use crate::schema::arrow_schema;
use crate::{Error, Table};

/// What an ingest did.
#[derive(Debug, Default)]
pub struct IngestOutcome {
    /// Records written.
    pub accepted: u64,
    /// Records refused, with reasons (OTLP `partial_success`).
    pub rejections: Rejections,
    /// The raw files written and announced.
    pub files: Vec<RawFileWritten>,
}

/// Where raw files of `table` go: `<namespace>/<table>/data/raw/<partition>/<uuid>.parquet`.
pub fn raw_file_key(namespace: &str, table: Table, day: Option<i32>) -> String {
    named_raw_file_key(namespace, table, day, &uuid::Uuid::now_v7().to_string())
}

/// [`raw_file_key`] with a name chosen by the caller, for writers that must
/// name a file the same way when they write it again after a crash. `name`
/// must be unique among the raw files of the warehouse.
pub fn named_raw_file_key(namespace: &str, table: Table, day: Option<i32>, name: &str) -> String {
    format!(
        "{namespace}/{}/data/raw/{}/{name}.parquet",
        table.name(),
        partition_path(table, day),
    )
}

/// One raw Parquet file, encoded in memory, not yet stored.
#[derive(Debug)]
pub struct EncodedRawFile {
    /// Destination table.
    pub table: Table,
    /// Day partition of its rows.
    pub day: Option<i32>,
    /// Rows in it.
    pub rows: u64,
    /// The Parquet bytes.
    pub bytes: Vec<u8>,
}

/// The CPU half of ingest: converts `request` and encodes one Parquet file per
/// table and day. Synchronous, so a server can run it off its async workers.
pub fn encode_raw_files(
    request: ExportRequest,
    limits: &Limits,
    writer: &ParquetWriterBuilder,
) -> Result<(Vec<EncodedRawFile>, Rejections), Error> {
    let (parts, rejections) = day_parts(request, limits)?;
    Ok((encode_day_parts(parts, writer)?, rejections))
}

/// Encodes `parts` into one raw file per table and day: parts of the same
/// table and day (from one request or several) share a file.
pub fn encode_day_parts(
    parts: impl IntoIterator<Item = DayPart>,
    writer: &ParquetWriterBuilder,
) -> Result<Vec<EncodedRawFile>, Error> {
    let mut by_file: BTreeMap<(Table, Option<i32>), Vec<RecordBatch>> = BTreeMap::new();
    for (table, day, batch) in parts {
        by_file.entry((table, day)).or_default().push(batch);
    }
    by_file
        .into_iter()
        .map(|((table, day), batches)| {
            let schema = arrow_schema(table).clone();
            let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
            // The writer buffers batches into row groups itself: no concatenation.
            let bytes = writer.write(schema, &batches, Vec::new())?;
            Ok(EncodedRawFile {
                table,
                day,
                rows,
                bytes,
            })
        })
        .collect()
}

/// The I/O half of ingest: stores each file durably, then queues one
/// [`RawFilesWritten`] message naming them all.
pub async fn store_raw_files<S, Q>(
    files: Vec<EncodedRawFile>,
    rejections: Rejections,
    namespace: &str,
    store: &S,
    queue: &Q,
) -> Result<IngestOutcome, Error>
where
    S: ObjectSink + ?Sized,
    Q: MessageSink + ?Sized,
{
    let named = files
        .into_iter()
        .map(|file| (raw_file_key(namespace, file.table, file.day), file))
        .collect();
    let mut outcome = announce_raw_files(named, &SendOptions::default(), store, queue).await?;
    outcome.rejections = rejections;
    Ok(outcome)
}

/// Stores each file at its key, then queues one [`RawFilesWritten`] message
/// naming them all, sent with `options` (a deduplication id makes sending it
/// again after a crash harmless).
///
/// Generic over the two operations it calls ([`ObjectSink`], [`MessageSink`])
/// rather than over `dyn` ports: every object store and queue serves, `dyn`
/// ones included, and so does a backend that offers only those two (the
/// ingest Lambda's signed-HTTP clients, which keep the AWS SDK out of it).
pub async fn announce_raw_files<S, Q>(
    files: Vec<(String, EncodedRawFile)>,
    options: &SendOptions,
    store: &S,
    queue: &Q,
) -> Result<IngestOutcome, Error>
where
    S: ObjectSink + ?Sized,
    Q: MessageSink + ?Sized,
{
    let mut outcome = IngestOutcome::default();
    if files.is_empty() {
        return Ok(outcome);
    }
    for (key, file) in files {
        let size = file.bytes.len() as u64;
        store.put_object(&key, file.bytes.into()).await?;
        outcome.accepted += file.rows;
        outcome.files.push(RawFileWritten {
            table: file.table.name().to_string(),
            key,
            day: file.day,
            rows: file.rows,
            bytes: size,
        });
    }
    crate::crash::crash_point("ingest-after-raw-write");
    let message = RawFilesWritten {
        files: outcome.files.clone(),
    };
    // A plain struct of strings and numbers always serializes.
    let body = serde_json::to_vec(&message).unwrap_or_default();
    queue.send_message(&body, options).await?;
    crate::crash::crash_point("ingest-after-enqueue");
    Ok(outcome)
}

/// Converts `request`, writes one raw Parquet file per table and day, and queues
/// a [`RawFilesWritten`] message naming them; see the module docs.
pub async fn ingest(
    request: ExportRequest,
    namespace: &str,
    store: &dyn ObjectStore,
    queue: &dyn Queue,
    writer: &ParquetWriterBuilder,
) -> Result<IngestOutcome, Error> {
    let (files, rejections) = encode_raw_files(request, &Limits::default(), writer)?;
    store_raw_files(files, rejections, namespace, store, queue).await
}

/// The rows of one table and day of a request: what ingest writes into one file.
pub type DayPart = (Table, Option<i32>, RecordBatch);

/// Converts `request` within `limits` and splits its rows by table and day.
/// Synchronous CPU work: a server runs it off its async workers.
pub fn day_parts(
    request: ExportRequest,
    limits: &Limits,
) -> Result<(Vec<DayPart>, Rejections), Error> {
    let converted = convert_with(request, limits)?;
    let mut parts = Vec::new();
    for (table, batch) in converted.batches {
        for (day, part) in split_by_day(table, &batch)? {
            parts.push((table, day, part));
        }
    }
    Ok((parts, converted.rejections))
}

/// What the OTLP/HTTP receiver hands a request's rows to: it returns once they
/// are durable (the number of rows written), or fails having made nothing of
/// them durable.
///
/// `otlp2parquet serve` appends them to a local write-ahead log that becomes
/// raw files behind it (`otlp2parquet_local::WalIngestor`); a Lambda, which
/// serves one request at a time, writes each request's files directly
/// ([`DirectIngestor`]); a long-running server with no local disk of its own
/// groups concurrent requests into shared files in the object store
/// ([`crate::group::GroupCommitter`]).
#[async_trait::async_trait]
pub trait Ingestor: Send + Sync {
    /// Makes `parts` durable; see the trait docs.
    async fn ingest(&self, parts: Vec<DayPart>) -> Result<u64, Arc<Error>>;
}

/// An [`Ingestor`] that writes each request's files itself, one file per table
/// and day, then sends one message naming them.
///
/// The ports are type parameters (by default `dyn`): any [`ObjectSink`] and
/// [`MessageSink`] will do (see [`announce_raw_files`]).
pub struct DirectIngestor<S: ?Sized = dyn ObjectStore, Q: ?Sized = dyn Queue> {
    /// Where raw files go.
    pub store: Arc<S>,
    /// Where their message goes.
    pub queue: Arc<Q>,
    /// The namespace raw files are laid out under.
    pub namespace: String,
    /// How raw files are encoded.
    pub writer: ParquetWriterBuilder,
}

#[async_trait::async_trait]
impl<S, Q> Ingestor for DirectIngestor<S, Q>
where
    S: ObjectSink + ?Sized,
    Q: MessageSink + ?Sized,
{
    async fn ingest(&self, parts: Vec<DayPart>) -> Result<u64, Arc<Error>> {
        let files = encode_day_parts(parts, &self.writer)?;
        let outcome = store_raw_files(
            files,
            Rejections::default(),
            &self.namespace,
            self.store.as_ref(),
            self.queue.as_ref(),
        )
        .await?;
        Ok(outcome.accepted)
    }
}
