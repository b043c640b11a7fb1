//! AWS implementations of the pipeline's ports: [`S3Store`] (an
//! [`ObjectStore`](otlp2parquet_core::ports::ObjectStore) in a general-purpose
//! bucket or a table bucket's location) and [`SqsQueue`] (a
//! [`Queue`](otlp2parquet_core::ports::Queue), standard or FIFO).
//!
//! Clients are built once from the SDK's own configuration chain
//! ([`load_sdk_config`]): credentials, region and endpoints come from the
//! standard `AWS_*` variables, including `AWS_ENDPOINT_URL` and the
//! service-specific `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL_SQS`, so the same
//! code runs against AWS, MinIO, LocalStack or moto. The ingest function
//! reads the same variables without the chain's other sources
//! ([`sdk_config_from_variables`]).

pub mod config;
pub mod lambda;
mod s3;
mod sqs;
mod table_locations;

pub use s3::S3Store;
pub use sqs::SqsQueue;
pub use table_locations::TableLocations;

/// The SDK configuration from the environment (the default provider chain),
/// with [`https_client`].
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .load()
        .await
}

/// The SDK configuration from variables alone, as Lambda gives them to a
/// function: the region (`AWS_REGION`), the execution role's credentials
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and,
/// unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`, the endpoints
/// (`AWS_ENDPOINT_URL`, and `AWS_ENDPOINT_URL_S3`, `_SQS`, … before it), with
/// [`https_client`]. Retries and the connect timeout are the SDK's defaults.
///
/// The ingest function's configuration, where [`load_sdk_config`]'s chain
/// would only ever find the same variables: its other sources (profile
/// files, SSO, web identity, ECS, IMDS, with an STS client) are half a
/// megabyte of code in a function that has a size goal. A missing region or
/// key is a start-up error naming the variable, not a failed first request.
pub fn sdk_config_from_variables<F>(
    variables: config::Variables<F>,
) -> Result<aws_config::SdkConfig, config::ConfigError>
where
    F: Fn(&str) -> Option<String> + Send + Sync + 'static,
{
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};

    let region = variables
        .optional("AWS_REGION")
        .or_else(|| variables.optional("AWS_DEFAULT_REGION"))
        .ok_or_else(|| {
            config::ConfigError::new(
                "AWS_REGION",
                "not set; it should hold the region of the buckets and queues, e.g. \
                 eu-west-1 (Lambda sets it)",
            )
        })?;
    let role = "(Lambda sets it from the function's execution role)";
    let credentials = Credentials::new(
        variables.required("AWS_ACCESS_KEY_ID", &format!("an access key id {role}"))?,
        variables.required(
            "AWS_SECRET_ACCESS_KEY",
            &format!("the access key's secret {role}"),
        )?,
        variables.optional("AWS_SESSION_TOKEN"),
        None,
        "environment",
    );
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(https_client());
    let ignore_endpoints = variables
        .optional("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
    if !ignore_endpoints {
        builder.set_endpoint_url(variables.optional("AWS_ENDPOINT_URL"));
        builder = builder.service_config(ServiceVariables(variables));
    }
    Ok(builder.build())
}

/// Service-specific settings from variables, named as the SDK's own loader
/// names them (`AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`), without its
/// profile files.
struct ServiceVariables<F: Fn(&str) -> Option<String>>(config::Variables<F>);

impl<F: Fn(&str) -> Option<String>> std::fmt::Debug for ServiceVariables<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceVariables")
    }
}

impl<F> aws_types::service_config::LoadServiceConfig for ServiceVariables<F>
where
    F: Fn(&str) -> Option<String> + Send + Sync,
{
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        let service = key.service_id().to_uppercase().replace(' ', "_");
        let specific = format!("{}_{service}", key.env());
        self.0
            .optional(&specific)
            .or_else(|| self.0.optional(key.env()))
    }
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

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// What an AWS error says: its HTTP status, error code and a message that
/// carries the whole cause chain.
struct ErrorReport {
    status: Option<u16>,
    code: Option<String>,
    message: String,
}

impl ErrorReport {
    // S3 and SQS share the SDK's error types (smithy's `SdkError`,
    // `ProvideErrorMetadata`, HTTP response), so one report serves both.
    fn of<E>(err: &SdkError<E, HttpResponse>) -> Self
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
    fn throttled(&self) -> bool {
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
    use aws_types::service_config::ServiceConfigKey;

    use super::sdk_config_from_variables;
    use crate::config::Variables;

    const CREDENTIALS: [(&str, &str); 2] = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
    ];

    fn endpoint_of(sdk: &aws_config::SdkConfig, service: &str) -> Option<String> {
        let key = ServiceConfigKey::builder()
            .service_id(service)
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .unwrap();
        sdk.service_config()?.load_config(key)
    }

    #[tokio::test]
    async fn region_credentials_and_endpoints_come_from_the_variables() {
        let mut pairs = CREDENTIALS.to_vec();
        pairs.extend([
            ("AWS_REGION", "eu-west-1"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_ENDPOINT_URL", "http://everything:1"),
            ("AWS_ENDPOINT_URL_SQS", "http://queues:2"),
        ]);
        let sdk = sdk_config_from_variables(Variables::from_pairs(&pairs)).unwrap();
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(sdk.endpoint_url(), Some("http://everything:1"));
        assert_eq!(endpoint_of(&sdk, "SQS").as_deref(), Some("http://queues:2"));
        assert_eq!(
            endpoint_of(&sdk, "S3").as_deref(),
            Some("http://everything:1")
        );
        let credentials = aws_credential_types::provider::ProvideCredentials::provide_credentials(
            &sdk.credentials_provider().unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(credentials.session_token(), Some("token"));
    }

    #[test]
    fn endpoints_can_be_ignored_and_the_region_may_be_the_default_one() {
        let mut pairs = CREDENTIALS.to_vec();
        pairs.extend([
            ("AWS_DEFAULT_REGION", "us-east-2"),
            ("AWS_ENDPOINT_URL", "http://everything:1"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        let sdk = sdk_config_from_variables(Variables::from_pairs(&pairs)).unwrap();
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("us-east-2"));
        assert_eq!(sdk.endpoint_url(), None);
        assert_eq!(endpoint_of(&sdk, "S3"), None);
    }

    #[test]
    fn a_missing_region_or_key_names_its_variable() {
        let no_region = sdk_config_from_variables(Variables::from_pairs(&CREDENTIALS));
        assert_eq!(no_region.unwrap_err().variable, "AWS_REGION");
        let no_secret = sdk_config_from_variables(Variables::from_pairs(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ]));
        let error = no_secret.unwrap_err();
        assert_eq!(error.variable, "AWS_SECRET_ACCESS_KEY");
        assert!(error.to_string().contains("execution role"), "{error}");
    }
}
