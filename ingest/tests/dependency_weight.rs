//! The ingest function links decoding, conversion, Parquet writing, the
//! HTTP router and two signed HTTP calls (S3 PutObject, SQS SendMessage) —
//! no DataFusion, no SQLite, no Iceberg catalog, not even the `iceberg`
//! crate or zstd, and not the AWS SDK — so it stays small and starts fast.

use otlp2parquet_testkit::dependencies::{forbidden, normal_dependencies};

#[test]
fn the_ingest_function_links_no_datafusion_sqlite_or_catalog() {
    let crates = normal_dependencies(
        "otlp2parquet-ingest-lambda",
        env!("CARGO_MANIFEST_DIR"),
        "aws-sigv4",
    );
    let found = forbidden(
        &crates,
        &[
            "datafusion",
            "sqlx",
            "libsqlite3-sys",
            "iceberg",
            "brotli",
            // Raw files are LZ4; zstd is for compacted ones.
            "zstd",
            "otlp2parquet-compact",
            "otlp2parquet-iceberg",
            // About 2 MB of the binary: see otlp2parquet_aws::signed.
            "aws-sdk-",
            "aws-config",
            "aws-smithy-http-client",
            "aws-smithy-checksums",
        ],
    );
    assert!(found.is_empty(), "the ingest function links {found:?}");
}
