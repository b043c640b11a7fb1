//! The clients the SDK half of the crate is built from.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// The SDK configuration from the environment (the default provider chain),
/// with [`https_client`].
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The HTTP client every AWS client here uses, credential providers
/// included: the SDK's own (hyper, rustls, the system's roots) with ring for
/// cryptography — the workspace links no aws-lc (see the workspace manifest).
/// An SDK configuration built without it has no HTTP client and fails its
/// first request.
pub fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// An S3 client for `config`. Path-style addressing (`endpoint/bucket/key`)
/// when the S3 endpoint is overridden (`AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT_URL_S3`, or in `config`): MinIO, LocalStack and moto serve
/// buckets there, while virtual-hosted names (`bucket.127.0.0.1`) resolve
/// nowhere. `OTLP2PARQUET_S3_PATH_STYLE=true|false` decides otherwise (the SDK
/// has no variable of its own for it).
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let overridden = config.endpoint_url().is_some()
        || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|v| !v.is_empty());
    let path_style = match std::env::var("OTLP2PARQUET_S3_PATH_STYLE").as_deref() {
        Ok("true") => true,
        Ok("false") => false,
        _ => overridden,
    };
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// An SQS client for `config`.
pub fn sqs_client(config: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(config)
}

/// What an AWS error says: its HTTP status, error code and a message that
/// carries the whole cause chain.
pub(crate) struct ErrorReport {
    pub(crate) status: Option<u16>,
    pub(crate) code: Option<String>,
    pub(crate) message: String,
}

impl ErrorReport {
    // S3 and SQS share the SDK's error types (smithy's `SdkError`,
    // `ProvideErrorMetadata`, HTTP response), so one report serves both.
    pub(crate) fn of<E>(err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        ErrorReport {
            status: err.raw_response().map(|r| r.status().as_u16()),
            code: err.code().map(str::to_string),
            message: aws_sdk_s3::error::DisplayErrorContext(err).to_string(),
        }
    }

    /// Whether the service asked us to slow down.
    pub(crate) fn throttled(&self) -> bool {
        matches!(self.status, Some(429 | 503))
            || self.code.as_deref().is_some_and(|code| {
                matches!(
                    code,
                    "SlowDown"
                        | "Throttling"
                        | "ThrottlingException"
                        | "RequestThrottled"
                        | "RequestLimitExceeded"
                        | "TooManyRequestsException"
                )
            })
    }
}
