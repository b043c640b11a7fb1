//! Iceberg for otlp2parquet: opening catalogs, creating the tables, and the
//! commit stage that appends compacted files exactly once.
//!
//! The stages upstream (ingest, compaction) only need the `iceberg` crate's
//! spec types, which the core crate uses; this crate adds the catalog crates
//! (SQLite through `iceberg-catalog-sql`, REST) and the one writer of every
//! table. Its error type says which failures are worth retrying, honouring
//! iceberg's own retryable errors (commit conflicts).
#![deny(missing_docs)]

pub mod catalog;
pub mod commit;
pub mod deployment;
mod error;
pub mod rest;
pub mod s3tables;
pub mod storage;

pub use error::Error;
pub use iceberg::NamespaceIdent;
