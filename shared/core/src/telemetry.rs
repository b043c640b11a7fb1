//! Counters of the pipeline, rendered in the Prometheus text format at `/metrics`.
//!
//! Plain atomics rather than a metrics library: a handful of monotonic counters
//! is all the embedded mode needs, and the text format is a few lines to write.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Signal;

/// Label sets (`{signal="logs"}`, or empty) and their values.
pub type Samples = Vec<(String, u64)>;

/// Monotonic counters shared by the receiver and the committer.
#[derive(Debug, Default)]
pub struct Telemetry {
    accepted: [AtomicU64; 3],
    rejected: [AtomicU64; 3],
    requests_ok: AtomicU64,
    requests_client_error: AtomicU64,
    requests_unavailable: AtomicU64,
    raw_files_written: AtomicU64,
    raw_bytes_written: AtomicU64,
    compactions: AtomicU64,
    compacted_files: AtomicU64,
    compaction_failures: AtomicU64,
    commits: AtomicU64,
    committed_files: AtomicU64,
    committed_rows: AtomicU64,
    commit_failures: AtomicU64,
    ingest_backlog_bytes: AtomicU64,
}

fn index(signal: Signal) -> usize {
    match signal {
        Signal::Logs => 0,
        Signal::Traces => 1,
        Signal::Metrics => 2,
    }
}

impl Telemetry {
    /// Counts an ingested request.
    pub fn record_ingest(&self, signal: Signal, accepted: u64, rejected: u64) {
        self.accepted[index(signal)].fetch_add(accepted, Ordering::Relaxed);
        self.rejected[index(signal)].fetch_add(rejected, Ordering::Relaxed);
    }

    /// Counts raw files written (one group commit writes several requests' rows).
    pub fn record_raw_files(&self, files: usize, bytes: u64) {
        self.raw_files_written
            .fetch_add(files as u64, Ordering::Relaxed);
        self.raw_bytes_written.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Sets how many bytes of acknowledged requests are not yet written as raw
    /// files (what `serve`'s write-ahead log holds).
    pub fn set_ingest_backlog_bytes(&self, bytes: u64) {
        self.ingest_backlog_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Bytes of raw files written so far (a flush starts early once enough wait).
    pub fn raw_bytes_written(&self) -> u64 {
        self.raw_bytes_written.load(Ordering::Relaxed)
    }

    /// Counts a compaction batch.
    pub fn record_compaction(&self, compactions: usize, outputs: usize, failed: usize) {
        self.compactions
            .fetch_add(compactions as u64, Ordering::Relaxed);
        self.compacted_files
            .fetch_add(outputs as u64, Ordering::Relaxed);
        self.compaction_failures
            .fetch_add(failed as u64, Ordering::Relaxed);
    }

    /// Counts a response by its HTTP status.
    pub fn record_response(&self, status: u16) {
        let counter = match status {
            200..=299 => &self.requests_ok,
            503 | 429 => &self.requests_unavailable,
            _ => &self.requests_client_error,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a commit batch.
    pub fn record_commit(&self, files: usize, rows: u64, failed: usize) {
        if files > 0 {
            self.commits.fetch_add(1, Ordering::Relaxed);
        }
        self.committed_files
            .fetch_add(files as u64, Ordering::Relaxed);
        self.committed_rows.fetch_add(rows, Ordering::Relaxed);
        self.commit_failures
            .fetch_add(failed as u64, Ordering::Relaxed);
    }

    /// The counters in the Prometheus text exposition format, plus the given
    /// gauges (name, help, value).
    pub fn render(&self, gauges: &[(&str, &str, Samples)]) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let per_signal = |counters: &[AtomicU64; 3]| -> Samples {
            Signal::ALL
                .iter()
                .map(|s| (format!("{{signal=\"{s}\"}}"), load(&counters[index(*s)])))
                .collect()
        };
        let single = |c: &AtomicU64| vec![(String::new(), load(c))];
        let counters: [(&str, &str, Samples); 13] = [
            (
                "otlp2parquet_records_accepted_total",
                "Records written durably.",
                per_signal(&self.accepted),
            ),
            (
                "otlp2parquet_records_rejected_total",
                "Records refused as invalid (partial_success).",
                per_signal(&self.rejected),
            ),
            (
                "otlp2parquet_http_requests_total",
                "OTLP/HTTP export requests by outcome.",
                vec![
                    ("{outcome=\"ok\"}".to_string(), load(&self.requests_ok)),
                    (
                        "{outcome=\"client_error\"}".to_string(),
                        load(&self.requests_client_error),
                    ),
                    (
                        "{outcome=\"unavailable\"}".to_string(),
                        load(&self.requests_unavailable),
                    ),
                ],
            ),
            (
                "otlp2parquet_raw_files_written_total",
                "Raw Parquet files written by ingest.",
                single(&self.raw_files_written),
            ),
            (
                "otlp2parquet_raw_bytes_written_total",
                "Bytes of raw Parquet files written by ingest.",
                single(&self.raw_bytes_written),
            ),
            (
                "otlp2parquet_compactions_total",
                "Compactions finished (raw files merged into sorted files).",
                single(&self.compactions),
            ),
            (
                "otlp2parquet_compacted_files_total",
                "Files written by compaction.",
                single(&self.compacted_files),
            ),
            (
                "otlp2parquet_compaction_failures_total",
                "Raw-file messages whose compaction failed (retried, then dead-lettered).",
                single(&self.compaction_failures),
            ),
            (
                "otlp2parquet_commits_total",
                "Iceberg snapshots committed.",
                single(&self.commits),
            ),
            (
                "otlp2parquet_committed_files_total",
                "Data files committed.",
                single(&self.committed_files),
            ),
            (
                "otlp2parquet_committed_rows_total",
                "Rows committed.",
                single(&self.committed_rows),
            ),
            (
                "otlp2parquet_commit_failures_total",
                "Messages whose commit failed (retried, then dead-lettered).",
                single(&self.commit_failures),
            ),
            (
                "otlp2parquet_build_info",
                "Always 1; the version is in the label.",
                vec![(format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")), 1)],
            ),
        ];
        let mut out = String::new();
        for (name, help, values) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in values {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        }
        let backlog = (
            "otlp2parquet_ingest_backlog_bytes",
            "Bytes of acknowledged requests not yet written as raw files (the write-ahead log).",
            single(&self.ingest_backlog_bytes),
        );
        for (name, help, values) in std::iter::once(&backlog).chain(gauges) {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, value) in values {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        }
        out
    }
}
