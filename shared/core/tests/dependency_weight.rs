//! The core crate stays light enough for the ingest Lambda: its normal
//! dependency tree holds no DataFusion, no sqlx, no axum and no Iceberg catalog
//! crate. Those belong to the compaction, catalog, local and HTTP crates.

use otlp2parquet_testkit::dependencies::{forbidden, normal_dependencies};

/// Crates (or crate-name prefixes) that must never be a normal dependency of
/// `otlp2parquet-core`.
const FORBIDDEN: &[&str] = &[
    "datafusion",
    "sqlx",
    "axum",
    "iceberg-catalog-",
    "libsqlite3-sys",
];

#[test]
fn the_core_crate_links_no_datafusion_sqlx_axum_or_catalog() {
    let crates = normal_dependencies(
        "otlp2parquet-core",
        env!("CARGO_MANIFEST_DIR"),
        "arrow-array",
    );
    assert!(crates.iter().any(|c| c == "iceberg"));
    let found = forbidden(&crates, FORBIDDEN);
    assert!(
        found.is_empty(),
        "otlp2parquet-core depends on {found:?}; keep them in the stage crates"
    );
}
