//! AWS implementations of the pipeline's ports, in two halves that a binary
//! picks by feature:
//!
//! - `sdk`: [`S3Store`] (an [`ObjectStore`](otlp2parquet_core::ports::ObjectStore)
//!   in a general-purpose bucket or a table bucket's location) and [`SqsQueue`]
//!   (a [`Queue`](otlp2parquet_core::ports::Queue), standard or FIFO), over
//!   the AWS SDK. Clients are built once from the SDK's own configuration
//!   chain ([`load_sdk_config`]).
//! - `signed`: [`signed::S3Sink`] and [`signed::SqsSink`], S3 PutObject and
//!   SQS SendMessage alone as SigV4-signed HTTP requests: all the ingest
//!   function calls, at a third of the SDK's size (see [`signed`]).
//!
//! Both read credentials, region and endpoints from the standard `AWS_*`
//! variables, including `AWS_ENDPOINT_URL` and the service-specific
//! `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL_SQS`, so the same code runs
//! against AWS, MinIO, LocalStack or moto.

mod common;
pub mod config;
pub mod lambda;
#[cfg(feature = "sdk")]
mod s3;
#[cfg(feature = "sdk")]
mod sdk;
#[cfg(feature = "signed")]
pub mod signed;
#[cfg(feature = "sdk")]
mod sqs;
#[cfg(feature = "sdk")]
mod table_locations;

#[cfg(feature = "sdk")]
pub use s3::S3Store;
#[cfg(feature = "sdk")]
use sdk::ErrorReport;
#[cfg(feature = "sdk")]
pub use sdk::{https_client, load_sdk_config, s3_client, sqs_client};
#[cfg(feature = "sdk")]
pub use sqs::SqsQueue;
#[cfg(feature = "sdk")]
pub use table_locations::TableLocations;
