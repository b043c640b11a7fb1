//! What tests, benchmarks and `otlp2parquet generate` share, kept out of the
//! crates a deployment links.
//!
//! - [`dependencies`] reads a package's dependency tree, for weight checks.
//! - [`generate`] produces deterministic synthetic OTLP traffic.
//! - [`alloc`] is a global allocator that counts live and peak heap, for the
//!   memory benchmarks.
//! - [`store`] wraps an object store with a hook, for fault-injection tests.
//! - [`lambda_runtime_api`] stands in for Lambda's Runtime API, to run the
//!   Lambda binaries themselves.
//! - [`moto`] starts (or finds) the S3/SQS/S3 Tables emulator; [`fault_front`]
//!   fails requests to it on purpose.
//! - [`rest_catalog`] runs a real Iceberg REST catalog and an authenticating
//!   front door to it.
//! - [`files`] writes Parquet data files into a table, for catalog tests.
//! - [`scan`] reads a table back with the `iceberg` crate's own scan.
//!
//! Depending on this crate also turns on the core crate's `json-encoder`
//! feature: OTLP JSON is only ever written by tests and `generate`.
#![deny(missing_docs)]

pub mod alloc;
pub mod dependencies;
pub mod fault_front;
pub mod files;
pub mod generate;
pub mod lambda_runtime_api;
pub mod moto;
pub mod rest_catalog;
pub mod scan;
pub mod store;
