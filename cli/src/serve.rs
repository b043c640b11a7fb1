//! `otlp2parquet serve`: the whole pipeline in one process.
//!
//! An OTLP/HTTP receiver answers a request once its rows are in the
//! write-ahead log (`.wal/` in the warehouse); in the background the log
//! becomes raw Parquet files, queued in a SQLite file. Every flush interval (or
//! sooner, once enough raw data waits) the compactor merges them into sorted
//! files and queues those, and the single committer appends them to Iceberg
//! tables in the embedded SQLite catalog. SIGINT/SIGTERM stop the receiver, then
//! the log is converted and one last flush drains what was accepted.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use otlp2parquet_compact::{CompactConfig, Stores, clean_scratch, compact};
use otlp2parquet_core::ports::{ObjectStore, Queue, ReceivedMessage};
use otlp2parquet_core::stage::acknowledge;
use otlp2parquet_core::telemetry::Telemetry;
use otlp2parquet_http::{ReceiverConfig, ReceiverState, router};
use otlp2parquet_iceberg::catalog::{
    CATALOG_FILE, CATALOG_NAME, open_local_catalog, open_rest_catalog,
};
use otlp2parquet_iceberg::commit::{CommitConfig, commit};
use otlp2parquet_iceberg::deployment::RestSettings;
use otlp2parquet_local::{LocalFsStore, SqliteQueues, WalConfig, WalIngestor};
use tokio::sync::watch;
use tracing::{error, info};

use crate::flags::{CatalogKind, ServeArgs};

/// Queue file inside the warehouse.
pub const QUEUE_FILE: &str = "queues.db";
/// The queue of raw files waiting to be compacted, and its dead-letter queue.
pub const RAW_FILES_QUEUE: &str = "raw-files";
/// See [`RAW_FILES_QUEUE`].
pub const RAW_FILES_DLQ: &str = "raw-files-dlq";
/// The queue of compacted files waiting to be committed, and its dead-letter queue.
pub const DATA_FILES_QUEUE: &str = "data-files";
/// See [`DATA_FILES_QUEUE`].
pub const DATA_FILES_DLQ: &str = "data-files-dlq";
/// Scratch directory inside the warehouse (compaction outputs being written,
/// sort spills): on the same file system, so finished files are renamed into place.
pub const SCRATCH_DIR: &str = ".scratch";
/// The write-ahead log inside the warehouse: accepted requests not yet
/// converted to raw Parquet files.
pub const WAL_DIR: &str = ".wal";
/// Receives of one message before it goes to the dead-letter queue.
const MAX_RECEIVES: u32 = 5;
/// Messages the flusher takes from a queue at a time. Locally there is no
/// reason for SQS's limit of 10: a flush's whole backlog makes one snapshot.
const BATCH_MESSAGES: usize = 1000;
/// How long received messages stay hidden: longer than one batch's work.
const COMPACT_VISIBILITY: Duration = Duration::from_secs(600);
/// See [`COMPACT_VISIBILITY`].
const COMMIT_VISIBILITY: Duration = Duration::from_secs(300);
/// Delay before a failed message is retried, doubled with every receive.
const RETRY_DELAY: Duration = Duration::from_secs(1);

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(otlp2parquet_core::MAX_BLOCKING_THREADS)
        .build()?;
    runtime.block_on(serve(args))
}

fn banner(addr: SocketAddr, warehouse: &Path, args: &ServeArgs, flush: Duration) {
    let wh = warehouse.display();
    let namespace = &args.namespace;
    let (stored, look) = match args.catalog {
        CatalogKind::Sqlite => (
            format!(
                "Iceberg tables {namespace}.logs, {namespace}.traces, {namespace}.metrics_*
  catalog     SQLite {wh}/{CATALOG_FILE}, catalog name \"{CATALOG_NAME}\""
            ),
            format!(
                "  otlp2parquet tables --warehouse {wh}
  otlp2parquet query --warehouse {wh} \"SELECT ServiceName, count(*) FROM logs GROUP BY 1\"
  python -c \"from pyiceberg.catalog.sql import SqlCatalog; c = SqlCatalog('{CATALOG_NAME}', uri='sqlite:///{wh}/{CATALOG_FILE}', warehouse='file://{wh}'); print(c.load_table('{namespace}.logs').scan().to_pandas())\"
  duckdb: SELECT * FROM iceberg_scan('<metadata file printed by otlp2parquet tables>');"
            ),
        ),
        CatalogKind::Rest => (
            format!(
                "Iceberg tables {namespace}.logs, {namespace}.traces, {namespace}.metrics_*
  catalog     REST {}",
                args.rest_uri.as_deref().unwrap_or("-")
            ),
            format!(
                "  python -c \"from pyiceberg.catalog.rest import RestCatalog; c = RestCatalog('rest', uri='{}'); print(c.load_table('{namespace}.logs').scan().to_pandas())\"",
                args.rest_uri.as_deref().unwrap_or("-")
            ),
        ),
        // s3tables is refused before: only the AWS pipeline writes there.
        CatalogKind::None | CatalogKind::S3tables => (
            format!("plain Parquet files (no catalog) under {wh}/{namespace}/<table>/data/"),
            format!(
                "  duckdb: SELECT * FROM read_parquet('{wh}/{namespace}/logs/data/*/*.parquet');"
            ),
        ),
    };
    println!(
        "otlp2parquet {version} is listening on http://{addr} (OTLP/HTTP, protobuf or JSON)

  warehouse   {wh}  ({stored})
  flushes     every {flush:?} (or once {flush_mib} MiB wait), and on shutdown (Ctrl-C):
              raw files merged into sorted files of up to {target} MiB, then committed
  health      http://{addr}/health   counters: http://{addr}/metrics

Send data:
  export OTEL_EXPORTER_OTLP_ENDPOINT=http://{addr} OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
  curl -X POST http://{addr}/v1/logs -H 'Content-Type: application/json' \\
    -d '{{\"resourceLogs\":[{{\"resource\":{{\"attributes\":[{{\"key\":\"service.name\",\"value\":{{\"stringValue\":\"demo\"}}}}]}},\"scopeLogs\":[{{\"logRecords\":[{{\"timeUnixNano\":\"'$(date +%s%N)'\",\"severityText\":\"INFO\",\"body\":{{\"stringValue\":\"hello\"}}}}]}}]}}]}}'

Look at it (after the next flush):
{look}
",
        version = env!("CARGO_PKG_VERSION"),
        flush_mib = args.flush_bytes / (1024 * 1024),
        target = args.target_file_mib,
    );
}

/// Binds the OTLP/HTTP listener, saying what to check when it cannot.
pub(crate) async fn listen(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr} (is another server using the port?)"))
}

/// Sends `true` on `tx` at the first SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal(tx: watch::Sender<bool>) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    info!("shutting down: no new requests, finishing what was accepted");
    let _ = tx.send(true);
}

/// The stages behind the receiver, run by one task: compaction, then commit.
struct Flusher {
    raw_files: Arc<dyn Queue>,
    data_files: Arc<dyn Queue>,
    store: Arc<dyn ObjectStore>,
    /// `None` in plain Parquet mode: compacted files are the end product.
    catalog: Option<Arc<dyn iceberg::Catalog>>,
    compact: CompactConfig,
    commit: CommitConfig,
    telemetry: Arc<Telemetry>,
}

/// Settings of the AWS pipeline that mean nothing to the embedded one: better to
/// refuse to start than to write locally when the user asked for S3.
const AWS_ONLY: [&str; 3] = [
    "OTLP2PARQUET_S3_BUCKET",
    "OTLP2PARQUET_S3_REGION",
    "OTLP2PARQUET_STATE_URI",
];

/// The REST catalog's address and authentication: the flags, and the
/// `OTLP2PARQUET_ICEBERG_REST_*` variables the functions read (SigV4, OAuth2).
async fn rest_catalog_config(
    args: &ServeArgs,
) -> anyhow::Result<otlp2parquet_iceberg::rest::RestCatalogConfig> {
    let (uri, token) = (args.rest_uri.clone(), args.rest_token.clone());
    let variables = otlp2parquet_aws::config::Variables::from_fn(move |name: &str| match name {
        "OTLP2PARQUET_ICEBERG_REST_URI" => uri.clone(),
        "OTLP2PARQUET_ICEBERG_REST_TOKEN" => token.clone(),
        _ => std::env::var(name).ok(),
    });
    let settings = RestSettings::from_variables(&variables, None).map_err(|e| {
        anyhow::anyhow!("{e} (--rest-uri and --rest-token set the first two of these)")
    })?;
    // Only SigV4 needs the AWS configuration: without it, a laptop with no
    // AWS set-up need not wait for the SDK to look for a region.
    let sdk = match settings.signs_with_sigv4() {
        true => Some(otlp2parquet_aws::load_sdk_config().await),
        false => None,
    };
    Ok(settings.config(sdk.as_ref())?)
}

async fn serve(mut args: ServeArgs) -> anyhow::Result<()> {
    if args.rest_uri.is_some() && args.catalog == CatalogKind::Sqlite {
        args.catalog = CatalogKind::Rest;
    }
    if let Some(url) = args.compaction_queue_url.clone() {
        return crate::ingest_stage::serve(&args, &url).await;
    }
    if let Some(var) = AWS_ONLY.into_iter().find(|v| std::env::var_os(v).is_some()) {
        anyhow::bail!(
            "{var} is set, but without --compaction-queue-url (OTLP2PARQUET_COMPACTION_QUEUE_URL) \
             serve runs the embedded pipeline in a local warehouse: set the queue URL to run as \
             the AWS pipeline's ingest stage, or unset {var} to run locally"
        );
    }
    anyhow::ensure!(
        args.catalog != CatalogKind::S3tables,
        "--catalog s3tables: the embedded pipeline cannot write to S3 Tables; run the AWS \
         pipeline (serve --compaction-queue-url as its ingest stage, see the README's \"On AWS\")"
    );
    anyhow::ensure!(
        args.flush_interval_secs.is_finite() && args.flush_interval_secs > 0.0,
        "--flush-interval must be a positive number of seconds, got {}",
        args.flush_interval_secs
    );
    anyhow::ensure!(
        args.body_timeout_secs.is_finite() && args.body_timeout_secs > 0.0,
        "--body-timeout must be a positive number of seconds, got {}",
        args.body_timeout_secs
    );
    anyhow::ensure!(
        args.target_file_mib > 0,
        "--target-file-mib must be at least 1"
    );
    std::fs::create_dir_all(&args.warehouse)
        .with_context(|| format!("creating the warehouse {}", args.warehouse.display()))?;
    let warehouse = args.warehouse.canonicalize()?;
    let catalog: Option<Arc<dyn iceberg::Catalog>> = match args.catalog {
        CatalogKind::Sqlite => Some(Arc::new(
            open_local_catalog(&warehouse)
                .await
                .with_context(|| format!("opening the catalog in {}", warehouse.display()))?,
        )),
        CatalogKind::Rest => {
            let config = rest_catalog_config(&args).await?;
            let uri = config.uri.clone();
            Some(Arc::new(open_rest_catalog(config).await.with_context(
                || format!("connecting to the REST catalog at {uri}"),
            )?))
        }
        CatalogKind::None | CatalogKind::S3tables => None,
    };
    let queues = SqliteQueues::open(&warehouse.join(QUEUE_FILE)).await?;
    // This process is the queues' only consumer: what is in flight now was taken
    // by a previous run that did not finish; hand it out again right away.
    let recovered = queues.release_in_flight().await?;
    if recovered > 0 {
        info!(
            messages = recovered,
            "recovered messages a previous run had not finished"
        );
    }
    let raw_files: Arc<dyn Queue> =
        Arc::new(queues.queue(RAW_FILES_QUEUE, RAW_FILES_DLQ, MAX_RECEIVES));
    let data_files: Arc<dyn Queue> =
        Arc::new(queues.queue(DATA_FILES_QUEUE, DATA_FILES_DLQ, MAX_RECEIVES));
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFsStore::new(&warehouse));
    let scratch = warehouse.join(SCRATCH_DIR);
    clean_scratch(&scratch);

    let telemetry = Arc::new(Telemetry::default());
    // Requests are durable once appended to the log; raw files are made from
    // it in the background.
    let wal = Arc::new(WalIngestor::open(
        WalConfig {
            max_backlog_bytes: args.wal_backlog_mib.saturating_mul(1024 * 1024),
            ..WalConfig::new(warehouse.join(WAL_DIR), args.namespace.clone())
        },
        store.clone(),
        raw_files.clone(),
        telemetry.clone(),
    )?);
    let state = ReceiverState::new(
        wal.clone(),
        ReceiverConfig {
            max_body_bytes: args.max_body_bytes,
            body_timeout: Duration::from_secs_f64(args.body_timeout_secs),
            limits: args.attribute_limits.limits(),
            ..Default::default()
        },
        telemetry.clone(),
    )
    .with_watched_queues(vec![
        raw_files.clone(),
        data_files.clone(),
        Arc::new(queues.dead_letter_queue(RAW_FILES_DLQ)),
        Arc::new(queues.dead_letter_queue(DATA_FILES_DLQ)),
    ]);
    let listener = listen(args.listen).await?;
    let addr = listener.local_addr()?;
    let flush = Duration::from_secs_f64(args.flush_interval_secs);
    banner(addr, &warehouse, &args, flush);

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(shutdown_signal(stop_tx));

    let flusher = Arc::new(Flusher {
        raw_files,
        data_files,
        store,
        catalog,
        compact: CompactConfig {
            namespace: args.namespace.clone(),
            target_file_bytes: args.target_file_mib * 1024 * 1024,
            memory_limit_bytes: args.compaction_memory_mib * 1024 * 1024,
            ..CompactConfig::new(scratch)
        },
        commit: CommitConfig {
            namespace: args.namespace.clone(),
            ..Default::default()
        },
        telemetry,
    });
    // Compaction and commits run on a runtime (so a core) of their own, at a
    // lower priority: DataFusion sorting on the receiver's workers made clients wait.
    let (http_done_tx, http_done_rx) = watch::channel(false);
    let background = {
        let flusher = flusher.clone();
        let stop = stop_rx.clone();
        let flush_bytes = args.flush_bytes;
        std::thread::Builder::new().name("flusher".into()).spawn(
            move || -> std::io::Result<()> {
                otlp2parquet_core::lower_thread_priority();
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .max_blocking_threads(otlp2parquet_core::MAX_BLOCKING_THREADS)
                    .build()?
                    .block_on(flush_loop(flusher, stop, http_done_rx, flush, flush_bytes));
                Ok(())
            },
        )?
    };

    let mut stop = stop_rx.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
    // Every acknowledged request is in the log: once it is converted and
    // queued, the flusher drains it all.
    wal.close().await;
    let _ = http_done_tx.send(true);
    match tokio::task::spawn_blocking(move || background.join()).await? {
        Ok(result) => result.context("running the flusher")?,
        Err(_) => anyhow::bail!("the flusher thread panicked"),
    }
    info!("stopped");
    Ok(())
}

/// Flushes every `interval`, or once `flush_bytes` of raw files wait, until
/// `stop`; then, once the receiver has answered its last request, drains
/// everything.
async fn flush_loop(
    flusher: Arc<Flusher>,
    mut stop: watch::Receiver<bool>,
    mut http_done: watch::Receiver<bool>,
    interval: Duration,
    flush_bytes: u64,
) {
    // Wake often enough to notice the size threshold.
    let tick = interval.min(Duration::from_secs(1));
    let mut last_flush = tokio::time::Instant::now();
    let mut bytes_at_last_flush = flusher.telemetry.raw_bytes_written();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {},
            _ = stop.changed() => break,
        }
        let bytes = flusher.telemetry.raw_bytes_written();
        if last_flush.elapsed() < interval && bytes - bytes_at_last_flush < flush_bytes {
            continue;
        }
        last_flush = tokio::time::Instant::now();
        bytes_at_last_flush = bytes;
        flusher.flush(Drain::Backlog).await;
    }
    let _ = http_done.wait_for(|done| *done).await;
    flusher.flush(Drain::Everything).await;
}

/// How far a flush goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// A flush: the backlog, stopping at the first batch that was not full.
    /// Under steady load the queues are never empty; draining until they are
    /// would make a snapshot every few milliseconds instead of one per flush.
    Backlog,
    /// Shutdown: until nothing visible is left.
    Everything,
}

impl Flusher {
    async fn flush(&self, how_far: Drain) {
        let commit_queue = self.catalog.as_ref().map(|_| self.data_files.as_ref());
        // The warehouse directory holds both the data and the stages' records.
        let stores = Stores::single(self.store.clone());
        loop {
            let Some(messages) = receive(self.raw_files.as_ref(), COMPACT_VISIBILITY).await else {
                break;
            };
            let report = compact(&messages, commit_queue, &stores, &self.compact).await;
            let acked = acknowledge(
                self.raw_files.as_ref(),
                &messages,
                &report.outcomes,
                RETRY_DELAY,
            )
            .await;
            self.telemetry
                .record_compaction(report.compactions, report.outputs, acked.failed());
            if done(how_far, messages.len(), acked.failed()) {
                break;
            }
        }
        let Some(catalog) = &self.catalog else {
            return;
        };
        loop {
            let Some(messages) = receive(self.data_files.as_ref(), COMMIT_VISIBILITY).await else {
                return;
            };
            let report = commit(
                &messages,
                catalog.as_ref(),
                self.store.as_ref(),
                &self.commit,
            )
            .await;
            let acked = acknowledge(
                self.data_files.as_ref(),
                &messages,
                &report.outcomes,
                RETRY_DELAY,
            )
            .await;
            self.telemetry
                .record_commit(report.files, report.rows, acked.failed());
            if done(how_far, messages.len(), acked.failed()) {
                return;
            }
        }
    }
}

/// The next batch of `queue`, or `None` when it has nothing visible (or fails).
async fn receive(queue: &dyn Queue, visibility: Duration) -> Option<Vec<ReceivedMessage>> {
    match queue.receive(BATCH_MESSAGES, visibility).await {
        Ok(messages) if messages.is_empty() => None,
        Ok(messages) => Some(messages),
        Err(e) => {
            error!(queue = queue.name(), error = %e, "receiving a batch failed");
            None
        }
    }
}

/// Whether a drain loop stops after a batch that received `received` messages.
fn done(how_far: Drain, received: usize, failed: usize) -> bool {
    let nothing_left = received == 0 || failed == received;
    nothing_left || (how_far == Drain::Backlog && received < BATCH_MESSAGES)
}
