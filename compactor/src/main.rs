//! The compactor Lambda: sets up logging, reads its settings, builds its AWS
//! clients once per cold start and hands each SQS batch to
//! [`Compactor`].
//!
//! A missing or invalid variable ends the process before the runtime loop
//! starts: Lambda reports it as an init error carrying the message.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use otlp2parquet_compactor_lambda::handler::{Compactor, CompactorSettings};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    otlp2parquet_aws::lambda::init_logging();
    let settings = CompactorSettings::from_variables(&otlp2parquet_aws::config::environment())
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = otlp2parquet_aws::load_sdk_config().await;
    let compactor = Arc::new(
        Compactor::new(&settings, &sdk)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "cannot reach the tables"))?,
    );
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let compactor = compactor.clone();
        async move { Ok::<_, lambda_runtime::Error>(compactor.handle(event.payload).await) }
    }))
    .await
}
