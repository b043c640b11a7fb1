//! The committer Lambda: sets up logging, reads its settings, builds its AWS
//! clients and the catalog once per cold start and hands each SQS
//! batch to [`Committer`].
//!
//! A missing or invalid variable ends the process before the runtime loop
//! starts: Lambda reports it as an init error carrying the message.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use otlp2parquet_committer_lambda::handler::{Committer, CommitterSettings};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    otlp2parquet_aws::lambda::init_logging();
    let settings = CommitterSettings::from_variables(&otlp2parquet_aws::config::environment())
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = otlp2parquet_aws::load_sdk_config().await;
    let committer = Arc::new(
        Committer::new(&settings, &sdk)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "cannot reach the catalog"))?,
    );
    // SQS events from the commit queue, and a schedule's events to commit
    // what staging gathered (OTLP2PARQUET_COMMIT_BATCH_COMPACTIONS).
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let committer = committer.clone();
        async move { Ok::<_, lambda_runtime::Error>(committer.handle_event(event.payload).await?) }
    }))
    .await
}
