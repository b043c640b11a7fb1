//! The ingest function: its settings and the router it serves.
//!
//! The router is `serve`'s own (`otlp2parquet-http`), over an ingestor that
//! writes each request's raw Parquet files to S3 and then sends one message
//! naming them to the compaction queue: the 200 a client gets means both
//! happened. Both calls go through `otlp2parquet_aws::signed`, the two
//! operations without the AWS SDK. `lambda_http` turns API Gateway (REST v1 proxy, HTTP v2) and
//! function URL events into the requests it routes, base64 bodies decoded.

use std::sync::Arc;

use otlp2parquet_aws::config::{CatalogKind, ConfigError, PlainWarehouse, Variables};
use otlp2parquet_aws::signed::{S3Sink, SignedClient, SqsSink};
use otlp2parquet_core::convert::{DEFAULT_MAX_ATTRIBUTE_VALUES, DEFAULT_MAX_ATTRIBUTES, Limits};
use otlp2parquet_core::ingest::DirectIngestor;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::telemetry::Telemetry;
use otlp2parquet_http::{ReceiverConfig, ReceiverState};

/// Lambda refuses a synchronous invocation over 6 MB before the function
/// sees it; binary bodies arrive base64-encoded, so about 4.5 MB of body fit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// What the ingest function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestSettings {
    /// Where raw files go: the plain-mode warehouse, or in S3 Tables mode
    /// the state bucket.
    pub warehouse: PlainWarehouse,
    /// The namespace tables are laid out under.
    pub namespace: String,
    /// Where "raw files written" messages go.
    pub compaction_queue_url: String,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Attribute caps.
    pub max_attributes: usize,
    /// Values per attribute.
    pub max_attribute_values: usize,
}

impl IngestSettings {
    /// Reads and checks the variables (see the README's configuration table).
    pub fn from_variables<F: Fn(&str) -> Option<String>>(
        variables: &Variables<F>,
    ) -> Result<Self, ConfigError> {
        let warehouse = match variables.catalog()? {
            CatalogKind::None => PlainWarehouse::from_variables(variables)?,
            // Raw files go to the state bucket, where the compactor can
            // delete them once compacted (a table bucket cannot delete), and
            // outside every table: no catalog is needed to write them.
            CatalogKind::S3Tables | CatalogKind::Rest => {
                let (bucket, prefix) = variables.s3_uri(
                    "OTLP2PARQUET_STATE_URI",
                    "the general-purpose bucket (and prefix) raw files and the stages' records \
                     go to, s3://bucket/prefix",
                )?;
                PlainWarehouse { bucket, prefix }
            }
        };
        Ok(IngestSettings {
            warehouse,
            namespace: variables.namespace()?,
            compaction_queue_url: variables.queue_url("OTLP2PARQUET_COMPACTION_QUEUE_URL")?,
            max_body_bytes: variables
                .number("OTLP2PARQUET_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
            max_attributes: variables
                .number("OTLP2PARQUET_MAX_ATTRIBUTES", DEFAULT_MAX_ATTRIBUTES)?,
            max_attribute_values: variables.number(
                "OTLP2PARQUET_MAX_ATTRIBUTE_VALUES",
                DEFAULT_MAX_ATTRIBUTE_VALUES,
            )?,
        })
    }
}

/// The request with everything before its OTLP path (`/v1/logs`, …) cut
/// off. A REST API's events carry the stage in the path (`/prod/v1/logs`), and
/// a custom domain's base path mapping adds its own prefix; the router knows
/// only the OTLP paths.
pub fn without_path_prefix<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let uri = request.uri();
    let path = uri.path();
    let Some(start) = path.rfind("/v1/").filter(|&start| start > 0) else {
        return request;
    };
    let mut rewritten = path[start..].to_string();
    if let Some(query) = uri.query() {
        rewritten.push('?');
        rewritten.push_str(query);
    }
    if let Ok(path_and_query) = rewritten.parse() {
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// The OTLP/HTTP router of the function, over clients built once at cold
/// start; give it requests through [`without_path_prefix`].
pub fn router(settings: &IngestSettings, aws: SignedClient) -> axum::Router {
    let ingestor = DirectIngestor {
        store: Arc::new(S3Sink::new(
            aws.clone(),
            &settings.warehouse.bucket,
            &settings.warehouse.prefix,
        )),
        queue: Arc::new(SqsSink::new(aws, &settings.compaction_queue_url)),
        namespace: settings.namespace.clone(),
        writer: ParquetWriterBuilder::for_raw_files(),
    };
    let config = ReceiverConfig {
        max_body_bytes: settings.max_body_bytes,
        too_large_advice: Some(
            "Lambda takes at most 6 MB per request: lower the exporter's batch size \
             (the OpenTelemetry Collector's batch processor: send_batch_max_size) and retry"
                .to_string(),
        ),
        limits: Limits::default()
            .with_max_attributes(settings.max_attributes)
            .with_max_attribute_values(settings.max_attribute_values),
        ..ReceiverConfig::default()
    };
    otlp2parquet_http::router(ReceiverState::new(
        Arc::new(ingestor),
        config,
        Arc::new(Telemetry::default()),
    ))
}

#[cfg(test)]
mod tests {
    use super::without_path_prefix;

    fn path(uri: &str) -> String {
        let request = axum::http::Request::builder().uri(uri).body(()).unwrap();
        without_path_prefix(request).uri().to_string()
    }

    #[test]
    fn stage_and_base_path_prefixes_are_cut_before_the_otlp_path() {
        assert_eq!(path("/prod/v1/logs"), "/v1/logs");
        assert_eq!(path("/telemetry/prod/v1/traces?x=1"), "/v1/traces?x=1");
        assert_eq!(path("/v1/metrics"), "/v1/metrics");
        assert_eq!(path("/health"), "/health");
    }
}
