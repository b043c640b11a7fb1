//! The ingest function's settings and router, shared by its Lambda binary
//! (`main.rs`) and by `otlp2parquet serve`, which runs the same stage as a
//! long-lived server when given the AWS pipeline's compaction queue.

pub mod handler;
