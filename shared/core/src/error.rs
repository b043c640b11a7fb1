//! The one error type of the core crate.
//!
//! Callers need two answers from an error: whose fault it is (a client sent bad
//! data, so answer 4xx and do not retry) and whether trying again may help. Each
//! variant carries enough context to be shown to a user as it is.

use std::path::PathBuf;

use crate::Signal;

/// Errors of decoding, converting and writing telemetry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The content type is neither OTLP protobuf nor OTLP JSON.
    #[error("unsupported content type {0:?}: send application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    /// The content encoding is neither gzip nor identity.
    #[error("unsupported content encoding {0:?}: send gzip or identity (or no Content-Encoding)")]
    UnsupportedContentEncoding(String),
    /// The (decompressed) body is larger than the configured limit.
    #[error("request body is larger than the limit of {limit} bytes (after decompression)")]
    PayloadTooLarge {
        /// The limit in bytes that was exceeded.
        limit: usize,
    },
    /// Converted, the request would take more memory than allowed: every row
    /// repeats its resource's and scope's attributes, so a small body can
    /// expand enormously.
    #[error(
        "the request would take about {} MiB once converted (the limit is {} MiB): every record \
         repeats its resource's and scope's attributes; send fewer attributes or smaller batches",
        estimated >> 20,
        limit >> 20
    )]
    ConversionTooLarge {
        /// The estimated size in bytes.
        estimated: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The body claimed to be gzip but could not be decompressed.
    #[error("invalid gzip body: {0}")]
    InvalidGzip(#[source] std::io::Error),
    /// The protobuf body could not be decoded as the signal's export request.
    #[error("invalid OTLP {signal} protobuf: {source}")]
    InvalidProtobuf {
        /// The signal the body was decoded as.
        signal: Signal,
        /// What prost reported.
        #[source]
        source: prost::DecodeError,
    },
    /// The JSON body could not be decoded as the signal's export request.
    #[error("invalid OTLP {signal} JSON at {path}: {message}")]
    InvalidJson {
        /// The signal the body was decoded as.
        signal: Signal,
        /// Where in the document decoding failed (`resourceLogs[0].scopeLogs[1]...`).
        path: String,
        /// What was wrong there.
        message: String,
    },
    /// Building Arrow arrays failed; this is a bug in the converter, not bad input.
    #[error("building Arrow data for table {table}: {source}")]
    Arrow {
        /// The table being built.
        table: &'static str,
        /// The Arrow error.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// Writing Parquet failed.
    #[error("writing Parquet: {0}")]
    Parquet(#[from] ::parquet::errors::ParquetError),
    /// An Iceberg schema, partition spec or sort order was rejected by the `iceberg` crate.
    #[cfg(feature = "iceberg")]
    #[error("Iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),
    /// The object store failed or lacks an object.
    #[error(transparent)]
    ObjectStore(#[from] crate::ports::ObjectStoreError),
    /// A record a stage keeps in the state store (a plan, a result, a
    /// pending commit) could not be read as JSON.
    #[error("record {key}: {source}")]
    Record {
        /// The record's key.
        key: String,
        /// What was wrong with it.
        #[source]
        source: serde_json::Error,
    },
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] crate::ports::QueueError),
    /// The ingestor holds as much accepted but not yet converted data as it
    /// may; the client should retry later.
    #[error("{0}; retry later")]
    Overloaded(String),
    /// The ingest group committer is not running (the process is shutting down).
    #[error("the ingest group committer has stopped")]
    Stopped,
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether the input was at fault: an OTLP/HTTP server answers these with a 4xx
    /// and the client must not retry the same payload.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::UnsupportedContentType(_)
                | Error::UnsupportedContentEncoding(_)
                | Error::PayloadTooLarge { .. }
                | Error::ConversionTooLarge { .. }
                | Error::InvalidGzip(_)
                | Error::InvalidProtobuf { .. }
                | Error::InvalidJson { .. }
        )
    }

    /// Whether the same operation may succeed when tried again (I/O hiccups), as
    /// opposed to bad input or a bug that will fail the same way every time.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Io { .. } | Error::Overloaded(_) => true,
            Error::ObjectStore(e) => e.retryable(),
            Error::Queue(e) => e.retryable(),
            #[cfg(feature = "iceberg")]
            Error::Iceberg(e) => e.retryable(),
            _ => false,
        }
    }
}

/// Result alias of the core crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
