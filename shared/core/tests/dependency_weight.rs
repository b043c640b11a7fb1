//! The core crate stays light enough for the ingest Lambda: its normal
//! dependency tree holds no DataFusion, no sqlx, no axum and, without its
//! `iceberg` feature, not even the `iceberg` crate. Those belong to the
//! compaction, catalog, local and HTTP crates.

use otlp2parquet_testkit::dependencies::{forbidden, normal_dependencies};

/// Crates (or crate-name prefixes) that must never be a normal dependency of
/// `otlp2parquet-core`.
const FORBIDDEN: &[&str] = &[
    "datafusion",
    "sqlx",
    "axum",
    "iceberg",
    "libsqlite3-sys",
    // Parquet's codecs beyond the ones written and read here (zstd; lz4 in
    // the write-ahead log): iceberg asked for all of them.
    "brotli",
    "snap",
];

#[test]
fn the_core_crate_links_no_datafusion_sqlx_axum_or_catalog() {
    let crates = normal_dependencies(
        "otlp2parquet-core",
        env!("CARGO_MANIFEST_DIR"),
        "arrow-array",
    );
    let found = forbidden(&crates, FORBIDDEN);
    assert!(
        found.is_empty(),
        "otlp2parquet-core depends on {found:?}; keep them in the stage crates"
    );
}
