//! Local implementations of the otlp2parquet ports, for the embedded single-process mode.
//!
//! `otlp2parquet serve` runs every stage in one process with nothing to deploy:
//! objects are files in the warehouse directory (fsync'd before a write returns,
//! so an acknowledged request survives a crash) and queues are tables in one
//! SQLite file with the semantics of SQS (visibility timeouts, receive counts,
//! dead-letter queues).
#![deny(missing_docs)]

pub mod fs_store;
pub mod sqlite_queue;
pub mod wal;

pub use fs_store::LocalFsStore;
pub use sqlite_queue::{SqliteQueue, SqliteQueues};
pub use wal::{WalConfig, WalIngestor};
