//! The ingest Lambda: sets up logging, reads its settings, builds its AWS
//! clients once per cold start and serves the OTLP/HTTP router
//! ([`handler::router`]) to API Gateway and function URL events.
//!
//! A missing or invalid variable ends the process before the runtime loop
//! starts: Lambda reports it as an init error carrying the message.

use otlp2parquet_aws::signed::SignedClient;
use otlp2parquet_ingest_lambda::handler::{self, IngestSettings};

// Lambda hands an environment one event at a time: one thread runs it (the
// conversion goes to tokio's blocking pool), and none are started for nothing.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    otlp2parquet_aws::lambda::init_logging();
    let settings = IngestSettings::from_variables(&otlp2parquet_aws::config::environment())
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let aws = SignedClient::from_variables(&otlp2parquet_aws::config::environment())
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let router = handler::router(&settings, aws);
    lambda_http::run(tower::ServiceExt::map_request(
        router,
        handler::without_path_prefix::<lambda_http::Body>,
    ))
    .await
}
