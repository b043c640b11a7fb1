//! The ingest stage: an export request in, durable raw Parquet files and
//! "raw file written" messages out.
//!
//! A client's data is acknowledged only after `ingest` returns: by then every
//! raw file is durable in the object store and one message listing all of them is
//! in the queue. One message per request, not per file, makes a request atomic: if
//! storing its third file fails, no message names the first two, they are orphans
//! (never committed, removable by age), and the client's retry cannot double them.

use serde::{Deserialize, Serialize};

use crate::catalog::{partition_path, split_by_day};
use crate::convert::{Rejections, convert};
use crate::otlp::ExportRequest;
use crate::parquet::ParquetWriterBuilder;
use crate::ports::{ObjectStore, Queue};
use crate::schema::TableDefinition;
use crate::{Error, Table};

/// The message the ingest stage sends for each request: every raw file it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilesWritten {
    /// The files, one per table and day the request had records for.
    pub files: Vec<RawFileWritten>,
}

/// One raw file of a [`RawFilesWritten`] message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileWritten {
    /// The destination table (`logs`, `metrics_sum`, …).
    pub table: String,
    /// Object key of the raw file.
    pub key: String,
    /// Day partition of every row in the file (days since the epoch), if any.
    pub day: Option<i32>,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
}

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

/// Errors of the ingest stage that are not the client's fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// Converting or encoding failed.
    #[error(transparent)]
    Convert(#[from] Error),
    /// The object store refused the raw file.
    #[error("storing a raw file: {0}")]
    Store(#[from] crate::ports::ObjectStoreError),
    /// The queue refused the message.
    #[error("queueing a raw file message: {0}")]
    Queue(#[from] crate::ports::QueueError),
}

/// Where raw files of `table` go: `<namespace>/<table>/data/raw/<partition>/<uuid>.parquet`.
pub fn raw_file_key(namespace: &str, table: Table, day: Option<i32>) -> String {
    format!(
        "{namespace}/{}/data/raw/{}/{}.parquet",
        table.name(),
        partition_path(table, day),
        uuid::Uuid::now_v7()
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
    writer: &ParquetWriterBuilder,
) -> Result<(Vec<EncodedRawFile>, Rejections), Error> {
    let converted = convert(request)?;
    let mut files = Vec::new();
    for (table, batch) in converted.batches {
        let schema = TableDefinition::get(table).arrow_schema.clone();
        for (day, part) in split_by_day(table, &batch)? {
            let rows = part.num_rows() as u64;
            let bytes = writer.write(schema.clone(), &[part], Vec::new())?;
            files.push(EncodedRawFile {
                table,
                day,
                rows,
                bytes,
            });
        }
    }
    Ok((files, converted.rejections))
}

/// The I/O half of ingest: stores each file durably, then queues one
/// [`RawFilesWritten`] message naming them all.
pub async fn store_raw_files(
    files: Vec<EncodedRawFile>,
    rejections: Rejections,
    namespace: &str,
    store: &dyn ObjectStore,
    queue: &dyn Queue,
) -> Result<IngestOutcome, IngestError> {
    let mut outcome = IngestOutcome {
        rejections,
        ..Default::default()
    };
    if files.is_empty() {
        return Ok(outcome);
    }
    for file in files {
        let key = raw_file_key(namespace, file.table, file.day);
        let size = file.bytes.len() as u64;
        store.put(&key, file.bytes.into()).await?;
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
    queue.send(&body).await?;
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
) -> Result<IngestOutcome, IngestError> {
    let (files, rejections) = encode_raw_files(request, writer)?;
    store_raw_files(files, rejections, namespace, store, queue).await
}
