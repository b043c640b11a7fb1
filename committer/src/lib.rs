//! The committer function's handler, shared by its Lambda binary (`main.rs`)
//! and by `otlp2parquet worker`, which feeds it from SQS itself.

pub mod handler;
