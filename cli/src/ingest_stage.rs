//! `otlp2parquet serve --compaction-queue-url URL`: the AWS pipeline's ingest
//! stage as a long-lived server (a container, a VM) instead of a Lambda.
//!
//! The same OTLP/HTTP router as the embedded `serve` and the ingest function,
//! over an ingestor that writes raw Parquet to S3 and sends one message naming
//! it to the compaction queue before the client's 200 — the function's stage,
//! configured by the function's variables (`IngestSettings`). What differs is
//! only what a server can do and a function cannot: concurrent requests share
//! raw files and messages (group commit, `otlp2parquet_core::group`), so a busy
//! server does not make one small file per request. Compaction and commits are
//! left to the compactor and committer (functions, or `otlp2parquet worker`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use otlp2parquet_aws::config::Variables;
use otlp2parquet_aws::{S3Store, SqsQueue};
use otlp2parquet_core::group::{GroupCommitter, GroupConfig};
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::ports::Queue;
use otlp2parquet_core::telemetry::Telemetry;
use otlp2parquet_http::{ReceiverConfig, ReceiverState, router};
use otlp2parquet_ingest_lambda::handler::IngestSettings;
use tokio::sync::watch;
use tracing::info;

use crate::flags::{CatalogKind, ServeArgs};

/// Serves OTLP/HTTP on `args.listen` into S3 and the compaction queue until
/// SIGINT/SIGTERM; requests in flight are answered before it returns.
pub async fn serve(args: &ServeArgs, compaction_queue_url: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.catalog != CatalogKind::Sqlite,
        "--compaction-queue-url runs the AWS pipeline's ingest stage, which has no embedded \
         catalog: set --catalog (OTLP2PARQUET_CATALOG) to s3tables or rest, as for the \
         functions, or none for plain Parquet in OTLP2PARQUET_S3_BUCKET"
    );
    // The flags stand for the variables they share with the function.
    let catalog = args.catalog.as_str();
    let namespace = args.namespace.clone();
    let queue_url = compaction_queue_url.to_string();
    let variables = Variables::from_fn(move |name: &str| match name {
        "OTLP2PARQUET_CATALOG" => Some(catalog.to_string()),
        "OTLP2PARQUET_ICEBERG_NAMESPACE" => Some(namespace.clone()),
        "OTLP2PARQUET_COMPACTION_QUEUE_URL" => Some(queue_url.clone()),
        _ => std::env::var(name).ok(),
    });
    let settings = IngestSettings::from_variables(&variables)?;
    let sdk = otlp2parquet_aws::load_sdk_config().await;
    let store = Arc::new(S3Store::new(
        otlp2parquet_aws::s3_client(&sdk),
        &settings.warehouse.bucket,
        &settings.warehouse.prefix,
    ));
    let queue: Arc<dyn Queue> = Arc::new(SqsQueue::new(
        otlp2parquet_aws::sqs_client(&sdk),
        &settings.compaction_queue_url,
    ));
    // A wrong queue URL or missing credentials should stop the server now,
    // not fail the first client's request.
    queue.depth().await.with_context(|| {
        format!(
            "reaching the compaction queue {} (check the URL, AWS_REGION and credentials)",
            settings.compaction_queue_url
        )
    })?;
    let telemetry = Arc::new(Telemetry::default());
    let ingestor = GroupCommitter::spawn(
        store,
        queue.clone(),
        settings.namespace.clone(),
        ParquetWriterBuilder::for_raw_files(),
        GroupConfig::default(),
        telemetry.clone(),
    );
    let state = ReceiverState::new(
        Arc::new(ingestor),
        ReceiverConfig {
            max_body_bytes: args.max_body_bytes,
            body_timeout: Duration::from_secs_f64(args.body_timeout_secs),
            limits: args.attribute_limits.limits(),
            ..Default::default()
        },
        telemetry,
    )
    .with_watched_queues(vec![queue]);
    let listener = crate::serve::listen(args.listen).await?;
    let addr = listener.local_addr()?;
    let prefix = match settings.warehouse.prefix.as_str() {
        "" => String::new(),
        prefix => format!("/{prefix}"),
    };
    println!(
        "otlp2parquet {version} is listening on http://{addr} (OTLP/HTTP, protobuf or JSON)

  ingest stage of the AWS pipeline ({catalog} mode):
  raw files   s3://{bucket}{prefix}/{namespace}/<table>/data/raw/
  messages    {queue_url}
  compaction and commits: the compactor and committer functions, or
              otlp2parquet worker compact / otlp2parquet worker commit
  health      http://{addr}/health   counters: http://{addr}/metrics
",
        version = env!("CARGO_PKG_VERSION"),
        bucket = settings.warehouse.bucket,
        namespace = settings.namespace,
        queue_url = settings.compaction_queue_url,
    );
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(crate::serve::shutdown_signal(stop_tx));
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        })
        .await?;
    info!("stopped");
    Ok(())
}
