//! `otlp2parquet worker compact|commit`: a stage of the AWS pipeline as a
//! long-lived process, fed from SQS with the batch and partial-failure
//! semantics of Lambda's event source mapping.
//!
//! The handler is the Lambda function's own (`otlp2parquet-compactor-lambda`,
//! `otlp2parquet-committer-lambda`); this module only replaces the event
//! source: receive up to 10 messages (long polling), hand them to the
//! handler, delete those it did not report as failed. A failed message
//! becomes visible again when its visibility timeout ends, and reaches the
//! dead-letter queue after the queue's maximum receives.

use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use otlp2parquet_aws::SqsQueue;
use otlp2parquet_committer_lambda::handler::{Committer, CommitterSettings};
use otlp2parquet_compactor_lambda::handler::{Compactor, CompactorSettings};
use otlp2parquet_core::ports::{Queue, ReceivedMessage};
use otlp2parquet_core::stage::delete_all_but;
use tracing::info;

use crate::flags::{WorkerArgs, WorkerStage};

/// SQS's limits: 10 messages per receive, 20 s of long polling.
const BATCH: usize = 10;
const LONG_POLL: Duration = Duration::from_secs(20);

pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // The variables first: a wrong one is reported before any AWS call.
        let variables = otlp2parquet_aws::config::environment();
        let settings = match args.stage {
            WorkerStage::Compact => {
                Settings::Compact(CompactorSettings::from_variables(&variables)?)
            }
            WorkerStage::Commit => Settings::Commit(CommitterSettings::from_variables(&variables)?),
        };
        let sdk = otlp2parquet_aws::load_sdk_config().await;
        let sqs = otlp2parquet_aws::sqs_client(&sdk);
        // A batch job stops at the first empty receive: no use waiting long.
        let wait = if args.exit_when_empty {
            Duration::from_secs(1)
        } else {
            LONG_POLL
        };
        match settings {
            Settings::Compact(settings) => {
                let compactor = Compactor::new(&settings, &sdk)
                    .await
                    .map_err(|e| anyhow::anyhow!(e))
                    .context("setting up the compactor")?;
                let source =
                    SqsQueue::new(sqs, &settings.compaction_queue_url).with_long_polling(wait);
                poll(&source, &args, &compactor).await
            }
            Settings::Commit(settings) => {
                let committer = Committer::new(&settings, &sdk)
                    .await
                    .map_err(|e| anyhow::anyhow!(e))
                    .context("setting up the committer")?;
                let source = SqsQueue::new(sqs, &settings.commit_queue_url).with_long_polling(wait);
                poll(&source, &args, &committer).await
            }
        }
    })
}

enum Settings {
    Compact(CompactorSettings),
    Commit(CommitterSettings),
}

/// A stage handler: a batch in, the ids of the messages to hand back out.
#[async_trait]
trait BatchHandler: Sync {
    async fn handle(&self, batch: &[ReceivedMessage]) -> Vec<String>;

    /// The queue had nothing (`last`: and the worker stops now).
    async fn idle(&self, _last: bool) {}
}

#[async_trait]
impl BatchHandler for Compactor {
    async fn handle(&self, batch: &[ReceivedMessage]) -> Vec<String> {
        self.handle_messages(batch).await
    }
}

#[async_trait]
impl BatchHandler for Committer {
    async fn handle(&self, batch: &[ReceivedMessage]) -> Vec<String> {
        self.handle_messages(batch).await
    }

    /// What a schedule does for the function: staged compactions that are
    /// due are committed; all of them when the worker stops.
    async fn idle(&self, last: bool) {
        self.commit_due(last).await;
    }
}

/// Feeds `handler` from `source` until Ctrl-C (or, with `--exit-when-empty`,
/// an empty receive). A batch in progress is finished before stopping.
async fn poll(
    source: &SqsQueue,
    args: &WorkerArgs,
    handler: &dyn BatchHandler,
) -> anyhow::Result<()> {
    let visibility = Duration::from_secs(args.visibility_timeout_secs);
    info!(queue = source.name(), "worker started");
    let mut stop = std::pin::pin!(tokio::signal::ctrl_c());
    let (mut batches, mut handed_back) = (0u64, 0u64);
    loop {
        let received = tokio::select! {
            _ = &mut stop => {
                handler.idle(true).await;
                break;
            }
            received = source.receive(BATCH, visibility) => received,
        };
        let batch = match received {
            Ok(batch) => batch,
            Err(e) => {
                // The queue is unreachable for now (throttled, a network
                // blip): wait rather than spin, and say so.
                tracing::warn!(queue = source.name(), error = %e, "receive failed; retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if batch.is_empty() {
            handler.idle(args.exit_when_empty).await;
            if args.exit_when_empty {
                break;
            }
            continue;
        }
        let failed = handler.handle(&batch).await;
        delete_all_but(source, &batch, &failed).await;
        batches += 1;
        handed_back += failed.len() as u64;
    }
    info!(
        queue = source.name(),
        batches, handed_back, "worker stopped"
    );
    Ok(())
}
