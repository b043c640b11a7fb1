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

/// An S3 client for `config`, addressing buckets as
/// [`Variables::s3_path_style`](crate::config::Variables::s3_path_style)
/// says: the S3 endpoint counts as overridden when `config` has an endpoint
/// or `AWS_ENDPOINT_URL_S3` is set (unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`).
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let path_style = path_style(
        config.endpoint_url().is_some(),
        &crate::config::environment(),
    );
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

fn path_style<F: Fn(&str) -> Option<String>>(
    endpoint_in_config: bool,
    variables: &crate::config::Variables<F>,
) -> bool {
    let overridden = endpoint_in_config
        || (!variables.ignores_configured_endpoints()
            && variables.optional("AWS_ENDPOINT_URL_S3").is_some());
    variables
        .s3_path_style(overridden)
        .inspect_err(|e| tracing::warn!(error = %e, "S3 addressing left at its default"))
        .unwrap_or(overridden)
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

#[cfg(test)]
mod tests {
    use crate::config::Variables;

    fn path_style(endpoint_in_config: bool, pairs: &[(&str, &str)]) -> bool {
        super::path_style(endpoint_in_config, &Variables::from_pairs(pairs))
    }

    #[test]
    fn an_ignored_s3_endpoint_leaves_buckets_virtual_hosts() {
        let s3_endpoint = ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:5000");
        assert!(!path_style(false, &[]));
        assert!(path_style(true, &[]));
        assert!(path_style(false, &[s3_endpoint]));
        assert!(!path_style(
            false,
            &[s3_endpoint, ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")]
        ));
        assert!(!path_style(
            true,
            &[("OTLP2PARQUET_S3_PATH_STYLE", "false")]
        ));
        assert!(path_style(true, &[("OTLP2PARQUET_S3_PATH_STYLE", "maybe")]));
    }
}
