//! The ingest stage: an export request in, durable raw Parquet files and
//! "raw file written" messages out.
//!
//! A client's data is acknowledged only after `ingest` returns: by then every
//! raw file is durable in the object store and its message is in the compaction
//! queue. Should writing a message fail after its file was written, the file is
//! an orphan (never committed, removable by age) and the client retries: data is
//! neither lost nor doubled, because only queued files are ever compacted.

use serde::{Deserialize, Serialize};

use crate::catalog::{partition_path, split_by_day};
use crate::convert::{Rejections, convert};
use crate::otlp::ExportRequest;
use crate::parquet::ParquetWriterBuilder;
use crate::ports::{ObjectStore, Queue};
use crate::schema::TableDefinition;
use crate::{Error, Table};

/// The message the ingest stage sends for each raw file it wrote.
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

/// Converts `request`, writes one raw Parquet file per table and day, and queues
/// a [`RawFileWritten`] message for each; see the module docs.
pub async fn ingest(
    request: ExportRequest,
    namespace: &str,
    store: &dyn ObjectStore,
    queue: &dyn Queue,
    writer: &ParquetWriterBuilder,
) -> Result<IngestOutcome, IngestError> {
    let converted = convert(request)?;
    let mut outcome = IngestOutcome {
        rejections: converted.rejections,
        ..Default::default()
    };
    for (table, batch) in converted.batches {
        let schema = TableDefinition::get(table).arrow_schema.clone();
        for (day, part) in split_by_day(table, &batch)? {
            let rows = part.num_rows() as u64;
            let bytes = writer.write(schema.clone(), &[part], Vec::new())?;
            let key = raw_file_key(namespace, table, day);
            let size = bytes.len() as u64;
            store.put(&key, bytes.into()).await?;
            crate::crash::crash_point("ingest-after-raw-write");
            let message = RawFileWritten {
                table: table.name().to_string(),
                key,
                day,
                rows,
                bytes: size,
            };
            let body =
                serde_json::to_vec(&message).map_err(|e| crate::ports::QueueError::Backend {
                    queue: queue.name().to_string(),
                    message: e.to_string(),
                })?;
            queue.send(&body).await?;
            crate::crash::crash_point("ingest-after-enqueue");
            outcome.accepted += rows;
            outcome.files.push(message);
        }
    }
    Ok(outcome)
}
