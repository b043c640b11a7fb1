//! [`S3Sink`]: PutObject under a prefix of a bucket.

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use http::Method;
use otlp2parquet_core::ports::{ObjectSink, ObjectStoreError};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{CallError, Endpoint, SignedCall, SignedClient, dns_suffix};

/// What S3 leaves unencoded in a key's path: RFC 3986's unreserved
/// characters and the `/` between segments.
const KEY_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Objects under `prefix` in `bucket`, written with PutObject; keys are
/// relative to the prefix, as in [`crate::S3Store`].
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: SignedClient,
    bucket: String,
    prefix: String,
}

impl S3Sink {
    /// A sink into `bucket`, with keys under `prefix` (leading and trailing
    /// slashes ignored).
    pub fn new(client: SignedClient, bucket: impl Into<String>, prefix: impl AsRef<str>) -> Self {
        S3Sink {
            client,
            bucket: bucket.into(),
            prefix: crate::common::key_prefix(prefix.as_ref()),
        }
    }

    /// The URL of the object at `key` (the prefix's key, not the sink's).
    fn object_url(&self, full_key: &str) -> String {
        let path = utf8_percent_encode(full_key, KEY_PATH);
        let bucket = &self.bucket;
        match &self.client.inner.s3_endpoint {
            Endpoint::Overridden {
                url,
                path_style: true,
            } => format!("{url}/{bucket}/{path}"),
            Endpoint::Overridden {
                url,
                path_style: false,
            } => match url.split_once("://") {
                Some((scheme, host)) => format!("{scheme}://{bucket}.{host}/{path}"),
                None => format!("{url}/{bucket}/{path}"),
            },
            Endpoint::Regional => {
                let region = &self.client.inner.region;
                let host = format!("s3.{region}.{}", dns_suffix(region));
                if virtual_hostable(bucket) {
                    format!("https://{bucket}.{host}/{path}")
                } else {
                    // A name with dots would not match S3's wildcard
                    // certificate as a host name.
                    format!("https://{host}/{bucket}/{path}")
                }
            }
        }
    }

    fn error(&self, key: &str, error: CallError) -> ObjectStoreError {
        let message = format!("S3 PutObject s3://{}/{key}: {error}", self.bucket);
        if error.kind.throttled() {
            ObjectStoreError::Throttled {
                key: key.to_string(),
                message,
            }
        } else {
            ObjectStoreError::Backend {
                key: key.to_string(),
                message,
            }
        }
    }
}

#[async_trait]
impl ObjectSink for S3Sink {
    async fn put_object(&self, key: &str, bytes: Bytes) -> Result<(), ObjectStoreError> {
        let full_key = format!("{}{key}", self.prefix);
        // S3 checks the body against it and refuses a corrupted upload, as
        // the SDK has it do by default.
        let checksum = crc32fast::hash(&bytes).to_be_bytes();
        let call = SignedCall {
            operation: "S3.PutObject",
            service: "s3",
            method: Method::PUT,
            url: self.object_url(&full_key),
            headers: vec![
                (
                    "x-amz-checksum-crc32",
                    base64::engine::general_purpose::STANDARD.encode(checksum),
                ),
                ("content-type", "application/octet-stream".to_string()),
            ],
            body: bytes,
            unsigned_payload: true,
            parse_error: xml_error,
        };
        self.client
            .send(&call)
            .await
            .map(drop)
            .map_err(|e| self.error(&full_key, e))
    }
}

/// Whether `bucket` can be a host name's first label under S3's
/// certificate: lower-case letters, digits and hyphens, 3 to 63 of them.
fn virtual_hostable(bucket: &str) -> bool {
    (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

/// The `<Code>` and `<Message>` of S3's XML error body. An error without a
/// body (HEAD, some 5xx from a proxy) has neither.
fn xml_error(body: &[u8]) -> (Option<String>, String) {
    let text = String::from_utf8_lossy(body);
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(unescape_xml(&text[start..end]))
    };
    (element("Code"), element("Message").unwrap_or_default())
}

fn unescape_xml(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Variables;

    fn sink(pairs: &[(&str, &str)], bucket: &str) -> S3Sink {
        let mut all = vec![
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ];
        all.extend_from_slice(pairs);
        let client = SignedClient::from_variables(&Variables::from_pairs(&all)).unwrap();
        S3Sink::new(client, bucket, "/warehouse/")
    }

    #[test]
    fn buckets_are_virtual_hosts_on_aws_and_paths_on_an_overridden_endpoint() {
        let aws = sink(&[("AWS_REGION", "eu-west-1")], "telemetry");
        assert_eq!(
            aws.object_url("warehouse/otel/logs/day=2026-12-07/a b.parquet"),
            "https://telemetry.s3.eu-west-1.amazonaws.com/warehouse/otel/logs/day%3D2026-12-07/a%20b.parquet"
        );
        let china = sink(&[("AWS_REGION", "cn-north-1")], "my.bucket");
        assert_eq!(
            china.object_url("k"),
            "https://s3.cn-north-1.amazonaws.com.cn/my.bucket/k"
        );
        let moto = sink(
            &[
                ("AWS_REGION", "us-east-1"),
                ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:5000"),
            ],
            "telemetry",
        );
        assert_eq!(moto.object_url("k"), "http://127.0.0.1:5000/telemetry/k");
        let minio = sink(
            &[
                ("AWS_REGION", "us-east-1"),
                ("AWS_ENDPOINT_URL", "https://minio.internal"),
                ("OTLP2PARQUET_S3_PATH_STYLE", "false"),
            ],
            "telemetry",
        );
        assert_eq!(minio.object_url("k"), "https://telemetry.minio.internal/k");
        assert_eq!(minio.prefix, "warehouse/");
    }

    #[test]
    fn s3_error_bodies_give_their_code_and_message() {
        let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code>\
            <Message>The specified bucket does not exist &amp; never did</Message>\
            <BucketName>x</BucketName></Error>";
        assert_eq!(
            xml_error(body),
            (
                Some("NoSuchBucket".to_string()),
                "The specified bucket does not exist & never did".to_string()
            )
        );
        assert_eq!(xml_error(b""), (None, String::new()));
    }

    #[test]
    fn only_plain_names_are_virtual_hosts() {
        assert!(virtual_hostable("telemetry-123"));
        assert!(!virtual_hostable("my.bucket"));
        assert!(!virtual_hostable("Upper"));
        assert!(!virtual_hostable("ab"));
    }
}
