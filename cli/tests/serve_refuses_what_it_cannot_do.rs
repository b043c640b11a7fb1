//! `serve` refuses, before it listens or writes anything, a configuration that
//! would send data somewhere the user did not ask for: AWS settings without
//! the AWS ingest stage, S3 Tables for the embedded pipeline, the embedded
//! catalog for the AWS ingest stage, or the ingest stage without the
//! function's variables. Each message names what to change.

use std::process::Command;

/// Runs `otlp2parquet serve ARGS` with only `env` (no AWS set-up from the
/// machine) in an empty directory; returns its standard error, asserting
/// that it failed and left the directory empty.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_otlp2parquet"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "serve started: {stderr}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "serve wrote something before refusing: {stderr}"
    );
    stderr
}

#[test]
fn aws_settings_without_the_ingest_stage_are_refused() {
    let stderr = refused(&[], &[("OTLP2PARQUET_STATE_URI", "s3://state/pipeline")]);
    assert!(stderr.contains("OTLP2PARQUET_STATE_URI is set"), "{stderr}");
    assert!(stderr.contains("--compaction-queue-url"), "{stderr}");
}

#[test]
fn the_embedded_pipeline_does_not_write_to_s3_tables() {
    let stderr = refused(&["--catalog", "s3tables"], &[]);
    assert!(stderr.contains("--catalog s3tables"), "{stderr}");
}

#[test]
fn the_ingest_stage_has_no_embedded_catalog() {
    let queue = "https://sqs.us-east-1.amazonaws.com/123456789012/compaction";
    let stderr = refused(&["--compaction-queue-url", queue], &[]);
    assert!(stderr.contains("OTLP2PARQUET_CATALOG"), "{stderr}");
}

#[test]
fn the_ingest_stage_reads_the_functions_variables() {
    let queue = "https://sqs.us-east-1.amazonaws.com/123456789012/compaction";
    let stderr = refused(
        &["--compaction-queue-url", queue],
        &[("OTLP2PARQUET_CATALOG", "s3tables")],
    );
    assert!(stderr.contains("OTLP2PARQUET_STATE_URI"), "{stderr}");
    let stderr = refused(&["--compaction-queue-url", queue, "--catalog", "none"], &[]);
    assert!(stderr.contains("OTLP2PARQUET_S3_BUCKET"), "{stderr}");
}
