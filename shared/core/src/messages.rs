//! The bodies the stages send each other through their queues.
//!
//! They are JSON, so that a message in a dead-letter queue can be read by a
//! person (`otlp2parquet dlq show`), and strict (`deny_unknown_fields`), so that
//! a message of another stage or version is refused as poison rather than
//! half understood.

use serde::{Deserialize, Serialize};

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

/// The message the compactor sends for each finished compaction: the files to
/// append to one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFilesReady {
    /// The destination table (`logs`, `metrics_sum`, …).
    pub table: String,
    /// Id of the compaction that produced the files. The committer records it in
    /// the snapshot, so a message sent twice is committed once.
    pub compaction: String,
    /// Rows in all the files.
    pub rows: u64,
    /// The files as Iceberg `DataFile`s, in the JSON form of Iceberg's manifest
    /// entries (format version 2): path, size, counts, bounds, partition.
    pub data_files: Vec<String>,
}
