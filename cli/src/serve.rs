//! `otlp2parquet serve`: the whole pipeline in one process.
//!
//! An OTLP/HTTP receiver writes raw Parquet files into a local warehouse and
//! queues them in a SQLite file; a single committer appends them to Iceberg
//! tables in the embedded SQLite catalog every flush interval. SIGINT/SIGTERM
//! stop the receiver, then one last commit drains what was accepted.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use otlp2parquet_shared::catalog::{CATALOG_FILE, CATALOG_NAME, open_local_catalog};
use otlp2parquet_shared::commit::{CommitConfig, commit_batch};
use otlp2parquet_shared::http::{ReceiverConfig, ReceiverState, router};
use otlp2parquet_shared::local::{LocalFsStore, SqliteQueues};
use otlp2parquet_shared::ports::Queue;
use otlp2parquet_shared::telemetry::Telemetry;
use tokio::sync::watch;
use tracing::{error, info};

use crate::flags::ServeArgs;

/// Queue file inside the warehouse.
pub const QUEUE_FILE: &str = "queues.db";
/// The queue of raw files waiting to be committed, and its dead-letter queue.
pub const RAW_FILES_QUEUE: &str = "raw-files";
/// See [`RAW_FILES_QUEUE`].
pub const RAW_FILES_DLQ: &str = "raw-files-dlq";
/// Receives of one message before it goes to the dead-letter queue.
const MAX_RECEIVES: u32 = 5;

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

fn banner(addr: SocketAddr, warehouse: &Path, namespace: &str, flush: Duration) {
    let wh = warehouse.display();
    println!(
        "otlp2parquet {version} is listening on http://{addr} (OTLP/HTTP, protobuf or JSON)

  warehouse   {wh}  (Iceberg tables {namespace}.logs, {namespace}.traces, {namespace}.metrics_*)
  catalog     SQLite {wh}/{CATALOG_FILE}, catalog name \"{CATALOG_NAME}\"
  commits     every {flush:?}, and on shutdown (Ctrl-C)
  health      http://{addr}/health   counters: http://{addr}/metrics

Send data:
  export OTEL_EXPORTER_OTLP_ENDPOINT=http://{addr} OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
  curl -X POST http://{addr}/v1/logs -H 'Content-Type: application/json' \\
    -d '{{\"resourceLogs\":[{{\"resource\":{{\"attributes\":[{{\"key\":\"service.name\",\"value\":{{\"stringValue\":\"demo\"}}}}]}},\"scopeLogs\":[{{\"logRecords\":[{{\"timeUnixNano\":\"'$(date +%s%N)'\",\"severityText\":\"INFO\",\"body\":{{\"stringValue\":\"hello\"}}}}]}}]}}]}}'

Look at it:
  otlp2parquet tables --warehouse {wh}
  python -c \"from pyiceberg.catalog.sql import SqlCatalog; c = SqlCatalog('{CATALOG_NAME}', uri='sqlite:///{wh}/{CATALOG_FILE}', warehouse='file://{wh}'); print(c.load_table('{namespace}.logs').scan().to_pandas())\"
  duckdb: SELECT * FROM iceberg_scan('<metadata file printed by otlp2parquet tables>');
",
        version = env!("CARGO_PKG_VERSION"),
    );
}

async fn shutdown_signal(tx: watch::Sender<bool>) {
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
    info!("shutting down: no new requests, committing what was accepted");
    let _ = tx.send(true);
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.flush_interval_secs.is_finite() && args.flush_interval_secs > 0.0,
        "--flush-interval must be a positive number of seconds, got {}",
        args.flush_interval_secs
    );
    std::fs::create_dir_all(&args.warehouse)
        .with_context(|| format!("creating the warehouse {}", args.warehouse.display()))?;
    let warehouse = args.warehouse.canonicalize()?;
    let catalog = open_local_catalog(&warehouse)
        .await
        .with_context(|| format!("opening the catalog in {}", warehouse.display()))?;
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
    let queue: Arc<dyn Queue> =
        Arc::new(queues.queue(RAW_FILES_QUEUE, RAW_FILES_DLQ, MAX_RECEIVES));
    let store = Arc::new(LocalFsStore::new(&warehouse));

    let dead_letters: Arc<dyn Queue> = Arc::new(queues.dead_letter_queue(RAW_FILES_DLQ));
    let telemetry = Arc::new(Telemetry::default());
    let state = ReceiverState::new(
        store.clone(),
        queue.clone(),
        ReceiverConfig {
            max_body_bytes: args.max_body_bytes,
            namespace: args.namespace.clone(),
            ..Default::default()
        },
        telemetry.clone(),
    )
    .with_dead_letter_queue(dead_letters);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "listening on {} (is another server using the port?)",
                args.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let flush = Duration::from_secs_f64(args.flush_interval_secs);
    banner(addr, &warehouse, &args.namespace, flush);

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(shutdown_signal(stop_tx));

    let commit_config = CommitConfig {
        namespace: args.namespace.clone(),
        ..Default::default()
    };
    let committer = {
        let (queue, store, config) = (queue.clone(), store.clone(), commit_config.clone());
        let telemetry = telemetry.clone();
        let mut stop = stop_rx.clone();
        let catalog = open_local_catalog(&warehouse).await?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(flush) => {},
                    _ = stop.changed() => return,
                }
                drain(
                    queue.as_ref(),
                    &catalog,
                    store.as_ref(),
                    &config,
                    &telemetry,
                    Drain::Backlog,
                )
                .await;
            }
        })
    };

    let mut stop = stop_rx.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
    let _ = committer.await;
    // Everything acknowledged is in the queue; commit it before exiting.
    drain(
        queue.as_ref(),
        &catalog,
        store.as_ref(),
        &commit_config,
        &telemetry,
        Drain::Everything,
    )
    .await;
    info!("stopped");
    Ok(())
}

/// How far [`drain`] goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// A flush: commit the backlog, stopping at the first batch that was not
    /// full. Under steady load the queue is never empty; committing until it is
    /// would make a snapshot every few milliseconds instead of one per flush.
    Backlog,
    /// Shutdown: commit until nothing visible is left.
    Everything,
}

/// Commits batches from the queue; see [`Drain`].
async fn drain(
    queue: &dyn Queue,
    catalog: &dyn iceberg::Catalog,
    store: &dyn otlp2parquet_shared::ports::ObjectStore,
    config: &CommitConfig,
    telemetry: &Telemetry,
    how_far: Drain,
) {
    loop {
        match commit_batch(queue, catalog, store, config).await {
            Ok(outcome) => {
                telemetry.record_commit(outcome.files, outcome.rows, outcome.failed);
                let nothing_left = outcome.received == 0 || outcome.failed == outcome.received;
                let backlog_done =
                    how_far == Drain::Backlog && outcome.received < config.max_messages;
                if nothing_left || backlog_done {
                    return;
                }
            }
            Err(e) => {
                error!(error = %e, "commit batch failed");
                return;
            }
        }
    }
}
