//! `otlp2parquet generate` and `convert` as a user runs them.
//!
//! These run the real binary: generated files of every format convert into one
//! Parquet file per table with the right row counts, and bad input fails with a
//! message naming the file while leaving the output directory without any file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use parquet::file::reader::{FileReader, SerializedFileReader};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_otlp2parquet"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn run(args: &[&str], dir: &Path) -> Output {
    bin().args(args).current_dir(dir).output().unwrap()
}

fn ok(args: &[&str], dir: &Path) {
    let out = run(args, dir);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rows(path: &Path) -> i64 {
    let file = std::fs::File::open(path).unwrap();
    SerializedFileReader::new(file)
        .unwrap()
        .metadata()
        .file_metadata()
        .num_rows()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

// Every signal, in every input format, lands in its tables with every record.
#[test]
fn generated_files_convert_to_tables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &[
            "generate",
            "--signal",
            "logs",
            "--records",
            "300",
            "--out",
            "logs.pb",
        ],
        d,
    );
    ok(
        &[
            "generate",
            "--signal",
            "logs",
            "--records",
            "200",
            "--requests",
            "3",
            "--format",
            "jsonl",
            "--gzip",
            "--out",
            "logs.jsonl.gz",
        ],
        d,
    );
    ok(
        &[
            "generate",
            "--signal",
            "logs",
            "--records",
            "100",
            "--requests",
            "2",
            "--format",
            "json",
            "--out",
            "logs-json",
        ],
        d,
    );
    let mut inputs = vec!["logs.pb".to_string(), "logs.jsonl.gz".to_string()];
    inputs.extend(
        files(&d.join("logs-json"))
            .iter()
            .map(|p| p.display().to_string()),
    );
    let mut args = vec!["convert", "--signal", "logs", "--out", "out"];
    args.extend(inputs.iter().map(String::as_str));
    ok(&args, d);
    assert_eq!(rows(&d.join("out/logs.parquet")), 300 + 600 + 200);

    ok(
        &[
            "generate",
            "--signal",
            "traces",
            "--records",
            "500",
            "--format",
            "json",
            "--out",
            "traces.json",
        ],
        d,
    );
    ok(
        &[
            "convert",
            "--signal",
            "traces",
            "traces.json",
            "--out",
            "out",
        ],
        d,
    );
    assert_eq!(rows(&d.join("out/traces.parquet")), 500);

    ok(
        &[
            "generate",
            "--signal",
            "metrics",
            "--records",
            "1000",
            "--out",
            "metrics.pb",
        ],
        d,
    );
    ok(
        &[
            "convert",
            "--signal",
            "metrics",
            "metrics.pb",
            "--out",
            "out",
        ],
        d,
    );
    let tables: Vec<String> = files(&d.join("out"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        tables,
        [
            "logs.parquet",
            "metrics_exponential_histogram.parquet",
            "metrics_gauge.parquet",
            "metrics_histogram.parquet",
            "metrics_sum.parquet",
            "metrics_summary.parquet",
            "traces.parquet"
        ]
    );
    let metric_rows: i64 = tables
        .iter()
        .filter(|t| t.starts_with("metrics_"))
        .map(|t| rows(&d.join("out").join(t)))
        .sum();
    assert_eq!(metric_rows, 1000);
}

// One bad file among good ones: a non-zero exit, the file named, nothing written.
#[test]
fn bad_input_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &[
            "generate",
            "--signal",
            "logs",
            "--records",
            "10",
            "--out",
            "good.pb",
        ],
        d,
    );
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "bad.json",
            b"{\"resourceLogs\": [{\"scopeLogs\": 5}]}",
            "resourceLogs[0].scopeLogs",
        ),
        (
            "truncated.pb",
            &[0x0a, 0xff, 0x01],
            "invalid OTLP logs protobuf",
        ),
        ("notgzip.json.gz", &[0x1f, 0x8b, 0, 1, 2], "invalid gzip"),
        ("lines.jsonl", b"{}\n{\"resourceSpans\": []}\n", "line 2"),
        ("data.txt", b"{}", "cannot tell the format"),
    ];
    for (name, content, expected) in cases {
        std::fs::write(d.join(name), content).unwrap();
        let out = run(
            &[
                "convert", "--signal", "logs", "good.pb", name, "--out", "out",
            ],
            d,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} was accepted");
        assert!(
            stderr.contains(name) && stderr.contains(expected),
            "{name}: {stderr}"
        );
        assert!(
            files(&d.join("out")).is_empty(),
            "{name} left output behind"
        );
    }
    let out = run(
        &["convert", "--signal", "logs", "missing.pb", "--out", "out"],
        d,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pb"));
}

// A convert that rejects some records still writes the valid ones and says why.
#[test]
fn rejected_records_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("partial.json"),
        r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"kept"}},{"traceId":"0102","body":{"stringValue":"dropped"}}]}]}]}"#,
    )
    .unwrap();
    let out = bin()
        .args([
            "convert",
            "--signal",
            "logs",
            "partial.json",
            "--out",
            "out",
        ])
        .env("RUST_LOG", "info")
        .current_dir(d)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("trace_id must be 16 bytes, got 2"),
        "{stderr}"
    );
    assert_eq!(rows(&d.join("out/logs.parquet")), 1);
}

// Nonsense settings are refused before anything starts, with a message saying why.
#[test]
fn serve_refuses_a_zero_flush_interval() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "serve",
            "--flush-interval",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--warehouse",
            "wh",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--flush-interval must be a positive number")
    );
    assert!(!dir.path().join("wh").exists(), "nothing created");
}

// serve reads a TOML file; flags and variables win over it; unknown keys are errors.
#[test]
fn serve_configuration_file_and_its_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bad.toml"), "flush_interval_secs = 0\n").unwrap();
    let out = run(&["serve", "--config", "bad.toml"], d);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--flush-interval must be a positive number"),
        "the file's value was used"
    );

    // The flag wins over the file: the failure now comes from the next check,
    // a warehouse path that is a regular file.
    std::fs::write(d.join("not-a-dir"), "").unwrap();
    let out = run(
        &[
            "serve",
            "--config",
            "bad.toml",
            "--flush-interval",
            "1",
            "--warehouse",
            "not-a-dir",
        ],
        d,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("not-a-dir") && !stderr.contains("--flush-interval"),
        "{stderr}"
    );

    std::fs::write(d.join("typo.toml"), "flush_intervall = 5\n").unwrap();
    let out = run(&["serve", "--config", "typo.toml"], d);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("typo.toml") && stderr.contains("flush_intervall"),
        "{stderr}"
    );
}

#[test]
fn help_explains_the_commands() {
    let out = bin().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["convert", "generate", "schema", "serve", "tables", "dlq"] {
        assert!(text.contains(word), "{text}");
    }
    let out = bin().args(["convert", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(".jsonl"));
}

// `--max-attributes` caps what a record keeps: the rest is counted in its
// dropped-attributes column, on top of what the sender had dropped.
#[test]
fn attributes_over_the_cap_are_counted_as_dropped() {
    use parquet::file::statistics::Statistics;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let attributes: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"key":"k{i}","value":{{"intValue":"{i}"}}}}"#))
        .collect();
    std::fs::write(
        d.join("wide.json"),
        format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"wide"}},"droppedAttributesCount":1,"attributes":[{}]}}]}}]}}]}}"#,
            attributes.join(",")
        ),
    )
    .unwrap();
    ok(
        &[
            "convert",
            "--signal",
            "logs",
            "wide.json",
            "--max-attributes",
            "2",
            "--out",
            "out",
        ],
        d,
    );
    let file = std::fs::File::open(d.join("out/logs.parquet")).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    let group = reader.metadata().row_group(0);
    let column = (0..group.num_columns())
        .map(|i| group.column(i))
        .find(|c| c.column_path().string() == "LogDroppedAttributesCount")
        .unwrap();
    let Some(Statistics::Int64(stats)) = column.statistics() else {
        panic!("{:?}", column.statistics())
    };
    assert_eq!((stats.min_opt(), stats.max_opt()), (Some(&4), Some(&4)));
    let keys = (0..group.num_columns())
        .map(|i| group.column(i))
        .find(|c| {
            c.column_path()
                .string()
                .starts_with("LogAttributes.key_value.key")
        })
        .unwrap();
    assert_eq!(keys.num_values(), 2);
}
