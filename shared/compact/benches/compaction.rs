//! Compaction: 1,000 small raw files merged into 128 MiB files, as `serve` does it.
//!
//! Writes the raw files through the real ingest stage into a local warehouse,
//! then times one `compact_batch` over all of their messages (DataFusion scan,
//! sort with its memory limit and spills, Parquet encoding, rolling outputs,
//! claims and deletes) and reports rows/s, the peak heap above the baseline
//! (counting allocator) and the process's peak RSS during compaction.
//!
//! `COMPACTION_BENCH_FILES` (default 1000) and `COMPACTION_BENCH_ROWS` (rows per
//! raw file, default 3000) scale it; `COMPACTION_BENCH_DIR` picks the disk.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use otlp2parquet_compact::{CompactConfig, Stores, compact};
use otlp2parquet_core::Signal;
use otlp2parquet_core::ingest::ingest;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::ports::Queue;
use otlp2parquet_local::{LocalFsStore, SqliteQueues};
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};

use otlp2parquet_testkit::alloc as common;

use common::{Counting, LIVE, PEAK};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

const MIB: f64 = 1024.0 * 1024.0;

/// Set (to a directory) in the child process that writes the inputs.
const PREPARE_ENV: &str = "COMPACTION_BENCH_PREPARE_INTO";

/// Writes the raw files through the ingest stage; returns their total size.
async fn prepare(dir: &Path, files: usize, rows_per_file: usize) -> u64 {
    let warehouse = dir.join("wh");
    std::fs::create_dir_all(&warehouse).unwrap();
    let store = LocalFsStore::new(&warehouse);
    let queues = SqliteQueues::open(&dir.join("q.db")).await.unwrap();
    let raw = queues.queue("raw", "raw-dlq", 5);
    let mut generator = Generator::new(GeneratorConfig {
        records_per_request: rows_per_file,
        ..Default::default()
    });
    let writer = ParquetWriterBuilder::new();
    let mut raw_bytes = 0;
    for _ in 0..files {
        let outcome = ingest(
            generator.next_request(Signal::Logs),
            "otel",
            &store,
            &raw,
            &writer,
        )
        .await
        .unwrap();
        raw_bytes += outcome.files.iter().map(|f| f.bytes).sum::<u64>();
    }
    raw_bytes
}

fn main() {
    otlp2parquet_core::tune_allocator();
    // The runtime `otlp2parquet serve` uses (see cli/src/serve.rs).
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(otlp2parquet_core::MAX_BLOCKING_THREADS)
        .build()
        .unwrap()
        .block_on(run());
}

async fn run() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let files = env("COMPACTION_BENCH_FILES", 1000);
    let rows_per_file = env("COMPACTION_BENCH_ROWS", 3000);
    if let Ok(dir) = std::env::var(PREPARE_ENV) {
        let bytes = prepare(Path::new(&dir), files, rows_per_file).await;
        std::fs::write(Path::new(&dir).join("raw-bytes"), bytes.to_string()).unwrap();
        return;
    }
    let parent = std::env::var("COMPACTION_BENCH_DIR").unwrap_or_else(|_| "/tmp".into());
    let dir = tempfile::tempdir_in(parent).unwrap();
    // The inputs are written by a child process, so that what this process's
    // allocator kept from writing them does not count as compaction's memory.
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .env(PREPARE_ENV, dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "writing the inputs failed");
    let raw_bytes: u64 = std::fs::read_to_string(dir.path().join("raw-bytes"))
        .unwrap()
        .parse()
        .unwrap();
    let warehouse = dir.path().join("wh");
    let store = std::sync::Arc::new(LocalFsStore::new(&warehouse));
    let queues = SqliteQueues::open(&dir.path().join("q.db")).await.unwrap();
    let raw = queues.queue("raw", "raw-dlq", 5);
    let data = queues.queue("data", "data-dlq", 5);
    let rows = (files * rows_per_file) as f64;
    eprintln!(
        "{files} raw files, {} rows, {:.1} MiB written; compacting…",
        files * rows_per_file,
        raw_bytes as f64 / MIB
    );

    let defaults = CompactConfig::new(dir.path().join("scratch"));
    let config = CompactConfig {
        memory_limit_bytes: env(
            "COMPACTION_BENCH_MEMORY_MIB",
            defaults.memory_limit_bytes >> 20,
        ) << 20,
        sort_partitions: env("COMPACTION_BENCH_PARTITIONS", defaults.sort_partitions),
        batch_rows: env("COMPACTION_BENCH_BATCH_ROWS", defaults.batch_rows),
        merge_reservation_bytes: env(
            "COMPACTION_BENCH_MERGE_MIB",
            defaults.merge_reservation_bytes >> 20,
        ) << 20,
        ..defaults
    };
    eprintln!(
        "memory limit {} MiB, {} sort stream(s), {} rows per batch, {} MiB merge reservation",
        config.memory_limit_bytes >> 20,
        config.sort_partitions,
        config.batch_rows,
        config.merge_reservation_bytes >> 20
    );
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let start = Instant::now();
    let messages = raw
        .receive(files, std::time::Duration::from_secs(600))
        .await
        .unwrap();
    let stores = Stores::single(store.clone());
    let outcome = compact(&messages, Some(&data), &stores, &config).await;
    let elapsed = start.elapsed().as_secs_f64();
    let peak_heap = PEAK.load(Ordering::Relaxed) - baseline;
    assert!(outcome.outcomes.iter().all(|o| o.is_done()), "{outcome:?}");
    assert_eq!(outcome.inputs, files);
    assert_eq!(outcome.rows as f64, rows);
    assert_eq!(data.depth().await.unwrap(), 1);

    let mut sizes = Vec::new();
    let mut stack = vec![warehouse.join("otel/logs/data")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                sizes.push(entry.metadata().unwrap().len() as f64 / MIB);
            }
        }
    }
    sizes.sort_by(f64::total_cmp);
    println!(
        "| raw files | rows | raw MiB | outputs (MiB) | seconds | rows/s | peak heap | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {files} | {} | {:.1} | {} ({}) | {elapsed:.1} | {:.0} | {:.0} MiB | {:.0} MiB |",
        files * rows_per_file,
        raw_bytes as f64 / MIB,
        outcome.outputs,
        sizes
            .iter()
            .map(|s| format!("{s:.1}"))
            .collect::<Vec<_>>()
            .join(", "),
        rows / elapsed,
        peak_heap as f64 / MIB,
        peak_rss() as f64 / MIB,
    );
}
