//! The core crate stays light enough for the ingest Lambda: its normal
//! dependency tree holds no DataFusion, no sqlx, no axum and no Iceberg catalog
//! crate. Those belong to the compaction, catalog, local and HTTP crates.

use std::process::Command;

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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--package",
            "otlp2parquet-core",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--locked",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8(output.stdout).unwrap();
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    // The tree is the real one, not an empty answer.
    assert!(crates.contains(&"arrow-array"), "{tree}");
    assert!(crates.contains(&"iceberg"), "{tree}");
    let found: Vec<&&str> = crates
        .iter()
        .filter(|name| FORBIDDEN.iter().any(|f| name.starts_with(f)))
        .collect();
    assert!(
        found.is_empty(),
        "otlp2parquet-core depends on {found:?}; keep them in the stage crates"
    );
}
