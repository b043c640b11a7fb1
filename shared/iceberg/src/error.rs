//! The one error type of the Iceberg crate.

/// Errors of opening catalogs, creating tables and committing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The catalog or the `iceberg` crate refused.
    #[error("Iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),
    /// The state store (commit records) or another part of the core failed.
    #[error(transparent)]
    Core(#[from] otlp2parquet_core::Error),
    /// A directory could not be created or resolved.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another committer holds the table's pending commit.
    #[error("table {table}: another commit is in progress (started {age_secs} s ago)")]
    Busy {
        /// The table.
        table: String,
        /// How long ago the other commit started.
        age_secs: u64,
    },
}

impl Error {
    /// Whether the same operation may succeed when tried again: iceberg's
    /// retryable errors (commit conflicts), storage hiccups, a busy table.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Iceberg(e) => e.retryable(),
            Error::Core(e) => e.retryable(),
            Error::Io { .. } => true,
            Error::Busy { .. } => true,
        }
    }
}

impl From<otlp2parquet_core::ports::ObjectStoreError> for Error {
    fn from(e: otlp2parquet_core::ports::ObjectStoreError) -> Self {
        Error::Core(e.into())
    }
}

/// Result alias of the Iceberg crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
