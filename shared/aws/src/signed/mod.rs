//! S3 PutObject and SQS SendMessage as SigV4-signed HTTP/1.1 requests: the
//! ingest function's [`ObjectSink`](otlp2parquet_core::ports::ObjectSink)
//! ([`S3Sink`]) and [`MessageSink`](otlp2parquet_core::ports::MessageSink)
//! ([`SqsSink`]).
//!
//! Why not the AWS SDK, which the rest of the crate uses: those two calls
//! are all the ingest function makes, and the SDK's clients bring about
//! 2 MB to its binary (the smithy runtime, an HTTP/2 stack, S3's checksum
//! tables), a quarter of the function's 8 MB size goal. What the SDK did
//! for those two calls is here, kept to what they need:
//!
//! - signing: `aws-sigv4`, the SDK's own signer, with S3's settings (no
//!   double encoding, an unsigned payload guarded by a CRC32 checksum that
//!   S3 verifies, as the SDK sends by default);
//! - endpoints: `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL_SQS`, then
//!   `AWS_ENDPOINT_URL` (unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`),
//!   then the region's endpoint in its partition; virtual-hosted bucket
//!   addressing on AWS, path-style on an overridden endpoint;
//! - retries as the SDK's standard mode: `AWS_MAX_ATTEMPTS` attempts (3),
//!   exponential backoff with full jitter from 1 s up to 20 s, for network
//!   errors, 5xx and throttling; and its 3.1 s connect timeout;
//! - errors: the service's code and message (S3's XML, SQS's JSON), so a
//!   `NoSuchBucket` or `AccessDenied` reads as it does from the SDK.
//!
//! Credentials are the ones Lambda gives a function in its variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`): the
//! execution role's, fixed for the life of the execution environment.

mod s3;
mod sqs;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rand::Rng;

use crate::config::{ConfigError, Variables};

pub use s3::S3Sink;
pub use sqs::SqsSink;

/// The SDK's default connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// The first retry waits up to this long, each later one twice as long…
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// …up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// Attempts per call unless `AWS_MAX_ATTEMPTS` says otherwise.
const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Error replies are a few hundred bytes; more is not an AWS error body.
const MAX_REPLY_BYTES: usize = 1024 * 1024;
/// S3 and moto close idle connections after some seconds; a pooled
/// connection older than this is not reused.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// What both sinks share: the region, the credentials, the endpoints, the
/// retry policy and one pool of connections. Cheap to clone.
#[derive(Clone)]
pub struct SignedClient {
    inner: Arc<Inner>,
}

struct Inner {
    region: String,
    credentials: Credentials,
    s3_endpoint: Endpoint,
    sqs_endpoint: Endpoint,
    max_attempts: u32,
    /// Built on first use: loading the system's root certificates is work a
    /// cold start that answers `/health` need not do.
    http: OnceLock<Result<HttpsClient, String>>,
}

/// Where a service's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// The region's endpoint of the service in AWS (`https://sqs.<region>.<dns suffix>`).
    Regional,
    /// An endpoint set by a variable (MinIO, LocalStack, moto), with S3's
    /// addressing style.
    Overridden { url: String, path_style: bool },
}

impl std::fmt::Debug for SignedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedClient")
            .field("region", &self.inner.region)
            .field("s3_endpoint", &self.inner.s3_endpoint)
            .field("sqs_endpoint", &self.inner.sqs_endpoint)
            .field("max_attempts", &self.inner.max_attempts)
            .finish_non_exhaustive()
    }
}

impl SignedClient {
    /// The client the variables describe, as Lambda gives them to a
    /// function: the region (`AWS_REGION`, or `AWS_DEFAULT_REGION`), the
    /// execution role's keys, the endpoints and `AWS_MAX_ATTEMPTS` (see the
    /// module docs), `OTLP2PARQUET_S3_PATH_STYLE=true|false` to choose S3's
    /// addressing against the default. A missing or invalid one is an error
    /// naming it.
    pub fn from_variables<F: Fn(&str) -> Option<String>>(
        variables: &Variables<F>,
    ) -> Result<SignedClient, ConfigError> {
        let region = variables
            .optional("AWS_REGION")
            .or_else(|| variables.optional("AWS_DEFAULT_REGION"))
            .ok_or_else(|| {
                ConfigError::new(
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
        let ignore_endpoints = variables.ignores_configured_endpoints();
        let endpoint = |specific: &'static str| -> Result<Option<String>, ConfigError> {
            if ignore_endpoints {
                return Ok(None);
            }
            let (name, url) = match variables.optional(specific) {
                Some(url) => (specific, url),
                None => match variables.optional("AWS_ENDPOINT_URL") {
                    Some(url) => ("AWS_ENDPOINT_URL", url),
                    None => return Ok(None),
                },
            };
            let parsed: Uri = url.parse().map_err(|_| invalid_endpoint(name))?;
            if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
                return Err(invalid_endpoint(name));
            }
            Ok(Some(url.trim_end_matches('/').to_string()))
        };
        let s3_url = endpoint("AWS_ENDPOINT_URL_S3")?;
        let path_style = variables.s3_path_style(s3_url.is_some())?;
        let s3_endpoint = match s3_url {
            Some(url) => Endpoint::Overridden { url, path_style },
            None => Endpoint::Regional,
        };
        let sqs_endpoint = match endpoint("AWS_ENDPOINT_URL_SQS")? {
            Some(url) => Endpoint::Overridden {
                url,
                path_style: true,
            },
            None => Endpoint::Regional,
        };
        let max_attempts = variables.number("AWS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS as usize)?;
        if max_attempts == 0 {
            return Err(ConfigError::new(
                "AWS_MAX_ATTEMPTS",
                "should be at least 1 (1: no retries)",
            ));
        }
        Ok(SignedClient {
            inner: Arc::new(Inner {
                region,
                credentials,
                s3_endpoint,
                sqs_endpoint,
                max_attempts: u32::try_from(max_attempts).unwrap_or(u32::MAX),
                http: OnceLock::new(),
            }),
        })
    }

    /// The connection pool, built on first use.
    fn http(&self) -> Result<&HttpsClient, CallError> {
        self.inner
            .http
            .get_or_init(|| {
                let mut connector = HttpConnector::new();
                connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
                connector.enforce_http(false);
                connector.set_nodelay(true);
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
                    .map_err(|e| format!("loading the system's root certificates: {e}"))?
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(connector);
                Ok(Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                    .build(https))
            })
            .as_ref()
            .map_err(|message| CallError {
                attempts: 0,
                kind: CallErrorKind::Transport(message.clone()),
            })
    }

    /// Signs and sends `call`, retrying as the module docs say, and returns
    /// the body of its 2xx reply.
    async fn send(&self, call: &SignedCall) -> Result<Bytes, CallError> {
        let http = self.http()?;
        let mut attempt = 1;
        loop {
            let result = self.attempt(http, call).await;
            let kind = match result {
                Ok(body) => return Ok(body),
                Err(kind) => kind,
            };
            if !kind.retryable() || attempt >= self.inner.max_attempts {
                return Err(CallError {
                    attempts: attempt,
                    kind,
                });
            }
            let delay = backoff(attempt, rand::rng().random::<f64>());
            tracing::warn!(
                operation = call.operation,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %kind,
                "AWS call failed; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, http: &HttpsClient, call: &SignedCall) -> Result<Bytes, CallErrorKind> {
        let request = self.signed_request(call)?;
        let response = http
            .request(request)
            .await
            .map_err(|e| CallErrorKind::Transport(error_chain(&e)))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_REPLY_BYTES)
            .collect()
            .await
            .map_err(|e| CallErrorKind::Transport(format!("reading the reply: {e}")))?
            .to_bytes();
        if status.is_success() {
            return Ok(body);
        }
        let (code, message) = (call.parse_error)(&body);
        Err(CallErrorKind::Service {
            status,
            code,
            message,
        })
    }

    /// `call` as an HTTP request, signed now.
    fn signed_request(&self, call: &SignedCall) -> Result<Request<Full<Bytes>>, CallErrorKind> {
        use aws_sigv4::http_request::{
            PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest,
            SigningSettings, UriPathNormalizationMode, sign,
        };

        let unsigned = |e: &dyn std::fmt::Display| CallErrorKind::Signing(e.to_string());
        let mut settings = SigningSettings::default();
        let body = if call.unsigned_payload {
            // S3's settings: the path is already encoded once, as S3 wants
            // it signed, and the payload's hash is sent as a header.
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            SignableBody::UnsignedPayload
        } else {
            SignableBody::Bytes(&call.body)
        };
        let identity = self.inner.credentials.clone().into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.inner.region)
            .name(call.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| unsigned(&e))?
            .into();
        let signable = SignableRequest::new(
            call.method.as_str(),
            &call.url,
            call.headers
                .iter()
                .map(|(name, value)| (*name, value.as_str())),
            body,
        )
        .map_err(|e| unsigned(&e))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| unsigned(&e))?
            .into_parts();
        let mut request = Request::builder()
            .method(call.method.clone())
            .uri(&call.url);
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        let mut request = request
            .body(Full::new(call.body.clone()))
            .map_err(|e| unsigned(&e))?;
        instructions.apply_to_request_http1x(&mut request);
        Ok(request)
    }
}

/// Reads an error reply's body: the service's error code and message.
type ErrorParser = fn(&[u8]) -> (Option<String>, String);

/// One AWS call: what to send, and how to read its service's errors.
struct SignedCall {
    /// For logs: `S3.PutObject`, `SQS.SendMessage`.
    operation: &'static str,
    /// The signing name: `s3`, `sqs`.
    service: &'static str,
    method: Method,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    /// S3's way: `UNSIGNED-PAYLOAD` (the body's integrity is the checksum
    /// header's job, and TLS's) rather than hashing every raw file twice.
    unsigned_payload: bool,
    /// The error code and message of an error reply's body.
    parse_error: ErrorParser,
}

/// Why a call failed, after how many attempts.
#[derive(Debug)]
struct CallError {
    attempts: u32,
    kind: CallErrorKind,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.attempts {
            0 | 1 => write!(f, "{}", self.kind),
            n => write!(f, "{} (after {n} attempts)", self.kind),
        }
    }
}

#[derive(Debug)]
enum CallErrorKind {
    /// No reply: connecting, TLS, the connection lost, a reply cut short.
    Transport(String),
    /// The request could not be signed (no retry helps).
    Signing(String),
    /// The service answered with an error.
    Service {
        status: StatusCode,
        code: Option<String>,
        message: String,
    },
}

impl std::fmt::Display for CallErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallErrorKind::Transport(message) => write!(f, "no reply: {message}"),
            CallErrorKind::Signing(message) => write!(f, "signing the request: {message}"),
            CallErrorKind::Service {
                status,
                code,
                message,
            } => {
                write!(f, "{}", status.as_u16())?;
                if let Some(code) = code {
                    write!(f, " {code}")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
        }
    }
}

impl CallErrorKind {
    /// Whether the service asked us to slow down.
    fn throttled(&self) -> bool {
        let CallErrorKind::Service { status, code, .. } = self else {
            return false;
        };
        status.as_u16() == 429
            || code.as_deref().is_some_and(|code| {
                matches!(
                    code,
                    "SlowDown"
                        | "Throttling"
                        | "ThrottlingException"
                        | "ThrottledException"
                        | "RequestThrottled"
                        | "RequestThrottledException"
                        | "RequestLimitExceeded"
                        | "TooManyRequestsException"
                        | "ProvisionedThroughputExceededException"
                        | "BandwidthLimitExceeded"
                        | "KmsThrottled"
                )
            })
    }

    /// Whether the same call may succeed when tried again: what the SDK's
    /// standard retry mode retries.
    fn retryable(&self) -> bool {
        match self {
            CallErrorKind::Transport(_) => true,
            CallErrorKind::Signing(_) => false,
            CallErrorKind::Service { status, code, .. } => {
                matches!(status.as_u16(), 500 | 502 | 503 | 504)
                    || self.throttled()
                    || code.as_deref().is_some_and(|code| {
                        matches!(
                            code,
                            "RequestTimeout" | "RequestTimeoutException" | "InternalError"
                        )
                    })
            }
        }
    }
}

/// The wait before retry number `attempt` (1 for the first retry), with
/// `jitter` drawn from [0, 1): full jitter over an exponential ceiling.
fn backoff(attempt: u32, jitter: f64) -> Duration {
    let ceiling = INITIAL_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    ceiling.mul_f64(jitter.clamp(0.0, 1.0))
}

/// `error` and its sources on one line: hyper's errors say little alone
/// ("client error (Connect)").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn invalid_endpoint(name: &'static str) -> ConfigError {
    ConfigError::new(
        name,
        "should be the http(s) URL of the service's endpoint, e.g. http://localhost:9000",
    )
}

/// The DNS suffix of `region`'s partition: the regions of China, of the
/// European Sovereign Cloud and of the isolated partitions have their own.
fn dns_suffix(region: &str) -> &'static str {
    const PARTITIONS: [(&str, &str); 6] = [
        ("cn-", "amazonaws.com.cn"),
        ("eusc-", "amazonaws.eu"),
        ("us-isob-", "sc2s.sgov.gov"),
        ("us-isof-", "csp.hci.ic.gov"),
        ("us-iso-", "c2s.ic.gov"),
        ("eu-isoe-", "cloud.adc-e.uk"),
    ];
    PARTITIONS
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("amazonaws.com", |(_, suffix)| suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [(&str, &str); 2] = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
    ];

    fn client(pairs: &[(&str, &str)]) -> Result<SignedClient, ConfigError> {
        let mut all = KEYS.to_vec();
        all.extend_from_slice(pairs);
        SignedClient::from_variables(&Variables::from_pairs(&all))
    }

    #[test]
    fn endpoints_come_from_the_service_variable_then_the_general_one() {
        let client = client(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://everything:1/"),
            ("AWS_ENDPOINT_URL_SQS", "http://queues:2"),
        ])
        .unwrap();
        assert_eq!(
            client.inner.s3_endpoint,
            Endpoint::Overridden {
                url: "http://everything:1".into(),
                path_style: true
            }
        );
        assert_eq!(
            client.inner.sqs_endpoint,
            Endpoint::Overridden {
                url: "http://queues:2".into(),
                path_style: true
            }
        );
        assert_eq!(client.inner.max_attempts, 3);
    }

    #[test]
    fn endpoints_can_be_ignored_and_the_region_may_be_the_default_one() {
        let client = client(&[
            ("AWS_DEFAULT_REGION", "us-east-2"),
            ("AWS_ENDPOINT_URL", "http://everything:1"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
            ("AWS_MAX_ATTEMPTS", "5"),
        ])
        .unwrap();
        assert_eq!(client.inner.region, "us-east-2");
        assert_eq!(client.inner.s3_endpoint, Endpoint::Regional);
        assert_eq!(client.inner.sqs_endpoint, Endpoint::Regional);
        assert_eq!(client.inner.max_attempts, 5);
    }

    #[test]
    fn a_missing_or_invalid_variable_is_named() {
        let no_region = SignedClient::from_variables(&Variables::from_pairs(&KEYS));
        assert_eq!(no_region.unwrap_err().variable, "AWS_REGION");
        let no_secret = SignedClient::from_variables(&Variables::from_pairs(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ]));
        let error = no_secret.unwrap_err();
        assert_eq!(error.variable, "AWS_SECRET_ACCESS_KEY");
        assert!(error.to_string().contains("execution role"), "{error}");
        for (name, value) in [
            ("AWS_ENDPOINT_URL_S3", "localhost:9000"),
            ("AWS_ENDPOINT_URL", "ftp://host"),
            ("AWS_MAX_ATTEMPTS", "0"),
            ("OTLP2PARQUET_S3_PATH_STYLE", "yes"),
        ] {
            let error = client(&[("AWS_REGION", "eu-west-1"), (name, value)]).unwrap_err();
            assert_eq!(error.variable, name, "{error}");
        }
    }

    #[test]
    fn network_errors_5xx_and_throttling_are_retried_and_client_errors_are_not() {
        let service = |status: u16, code: &str| CallErrorKind::Service {
            status: StatusCode::from_u16(status).unwrap(),
            code: Some(code.to_string()),
            message: String::new(),
        };
        assert!(CallErrorKind::Transport("reset".into()).retryable());
        assert!(service(503, "SlowDown").retryable());
        assert!(service(503, "SlowDown").throttled());
        assert!(service(500, "InternalError").retryable());
        assert!(service(400, "ThrottlingException").throttled());
        assert!(service(400, "RequestTimeout").retryable());
        assert!(!service(403, "AccessDenied").retryable());
        assert!(!service(404, "NoSuchBucket").retryable());
        assert!(!service(400, "InvalidParameterValue").retryable());
        assert!(!CallErrorKind::Signing("bad".into()).retryable());
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling_with_full_jitter() {
        assert_eq!(
            backoff(1, 0.999_999),
            Duration::from_secs(1).mul_f64(0.999_999)
        );
        assert_eq!(backoff(2, 0.5), Duration::from_secs(1));
        assert_eq!(backoff(3, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(30, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(4, 0.0), Duration::ZERO);
    }

    #[test]
    fn partitions_have_their_own_dns_suffix() {
        assert_eq!(dns_suffix("eu-west-1"), "amazonaws.com");
        assert_eq!(dns_suffix("us-gov-west-1"), "amazonaws.com");
        assert_eq!(dns_suffix("cn-north-1"), "amazonaws.com.cn");
        assert_eq!(dns_suffix("us-isob-east-1"), "sc2s.sgov.gov");
        assert_eq!(dns_suffix("us-iso-east-1"), "c2s.ic.gov");
    }
}
