//! The core of otlp2parquet: OTLP in, Arrow and Parquet out, and the ingest stage.
//!
//! This is the crate the ingest Lambda links, so it holds only what turning a
//! request into durable raw files needs, and nothing of compaction (DataFusion),
//! catalogs (sqlx, the Iceberg catalog crates) or HTTP serving (axum):
//!
//! - [`otlp`] decodes OTLP/HTTP bodies (protobuf or JSON, optionally gzip) into the
//!   generated `opentelemetry-proto` request types.
//! - [`convert`] turns a decoded request into one Arrow `RecordBatch` per destination
//!   table, rejecting invalid records one by one the way OTLP's `partial_success` does.
//! - [`schema`] defines those tables once: columns, the Arrow schemas whose every
//!   field carries the Iceberg field id readers map columns by, and (the `iceberg`
//!   feature) the Iceberg schemas, partition specs and sort orders.
//! - [`partition`] splits rows by day and names partition directories; with the
//!   `iceberg` feature, `datafile` describes a written file for a catalog from its
//!   footer.
//! - [`parquet`] writes record batches as Parquet files with the project's settings.
//! - [`ports`] are the small traits (object store, queue) every stage runs over;
//!   [`messages`] the bodies the stages send each other; [`stage`] the outcome a
//!   queue-fed stage gives each message it is handed, and the driver that
//!   acknowledges them.
//! - [`ingest`] and [`group`] are the ingest stage: one request at a time, or the
//!   requests of a few milliseconds sharing files.
//!
//! The other stages build on this crate: `otlp2parquet-compact` (DataFusion),
//! `otlp2parquet-iceberg` (catalogs and commits), `otlp2parquet-http` (the
//! OTLP/HTTP router) and `otlp2parquet-local` (the embedded mode's store and queues).
#![deny(missing_docs)]

pub mod convert;
pub mod crash;
#[cfg(feature = "iceberg")]
pub mod datafile;
pub mod dead_letters;
mod error;
pub mod group;
pub mod ingest;
pub mod messages;
pub mod otlp;
pub mod parquet;
pub mod partition;
pub mod ports;
pub mod schema;
mod signal;
pub mod stage;
pub mod telemetry;

pub use error::{Error, Result};

/// The namespace tables are created in unless configured otherwise.
pub const DEFAULT_NAMESPACE: &str = "otel";

/// Blocking threads a runtime running the pipeline should allow (tokio's default
/// is 512). File I/O runs on them; with hundreds of small files in flight, every
/// extra thread takes a glibc malloc arena whose freed memory stays resident,
/// which left compaction at several times its live heap.
pub const MAX_BLOCKING_THREADS: usize = 16;

/// Lowers the scheduling priority (nice 10) of the calling thread and of the
/// threads it starts afterwards. Background work (compaction, commits) calls it
/// so that, on a busy machine, answering clients comes first.
pub fn lower_thread_priority() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: setpriority only changes the scheduling priority; on Linux, who = 0
    // with PRIO_PROCESS means the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Makes glibc malloc give large blocks back to the system. Call it first thing
/// in a process that runs the pipeline.
///
/// glibc raises its mmap threshold each time a large block is freed, so after a
/// while the multi-megabyte buffers of Parquet pages, Arrow batches and sort runs
/// come from the heap, and the holes they leave stay resident: compacting 1,000
/// files took 1.1 GiB of RSS for 345 MiB of live heap. A fixed 1 MiB threshold
/// serves such blocks with mmap, returned on free (664 MiB, at the same speed;
/// 128 KiB got 573 MiB but cost a fifth of the speed in system calls).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc parameter; it is called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}
pub use signal::{Signal, Table};
