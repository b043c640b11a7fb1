//! OTLP/HTTP request bodies in, generated `opentelemetry-proto` request types out.
//!
//! An OTLP/HTTP body is described by three things: the signal (from the URL path),
//! the `Content-Type` (protobuf or JSON) and the `Content-Encoding` (gzip or none).
//! [`decode`] takes all three and returns an [`ExportRequest`], or an [`Error`] that
//! says what is wrong and, for JSON, where. Decompression is capped so that a small
//! gzip bomb is refused rather than inflated into memory.

mod json;

use std::io::Read;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::{Error, Result, Signal};

/// Default cap on a decompressed request body: 64 MiB.
pub const DEFAULT_MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;

/// How a request body is serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/x-protobuf`: the binary protobuf encoding.
    Protobuf,
    /// `application/json`: the OTLP JSON mapping of protobuf.
    Json,
}

impl Format {
    /// Parses a `Content-Type` header value (parameters such as `charset` are ignored).
    pub fn from_content_type(content_type: &str) -> Result<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
            "application/json" => Ok(Format::Json),
            _ => Err(Error::UnsupportedContentType(content_type.to_string())),
        }
    }

    /// The `Content-Type` to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

/// How a request body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// `Content-Encoding: gzip`.
    Gzip,
}

impl Compression {
    /// Parses a `Content-Encoding` header value; a missing header is `identity`.
    pub fn from_content_encoding(encoding: Option<&str>) -> Result<Self> {
        match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Ok(Compression::None),
            Some("gzip") | Some("x-gzip") => Ok(Compression::Gzip),
            Some(_) => Err(Error::UnsupportedContentEncoding(
                encoding.unwrap_or_default().to_string(),
            )),
        }
    }
}

/// A decoded export request of any signal.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportRequest {
    /// A logs export.
    Logs(ExportLogsServiceRequest),
    /// A traces export.
    Traces(ExportTraceServiceRequest),
    /// A metrics export.
    Metrics(ExportMetricsServiceRequest),
}

impl ExportRequest {
    /// The request's signal.
    pub fn signal(&self) -> Signal {
        match self {
            ExportRequest::Logs(_) => Signal::Logs,
            ExportRequest::Traces(_) => Signal::Traces,
            ExportRequest::Metrics(_) => Signal::Metrics,
        }
    }

    /// Number of log records, spans or metric data points in the request.
    pub fn item_count(&self) -> usize {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        match self {
            ExportRequest::Logs(r) => r
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len())
                .sum(),
            ExportRequest::Traces(r) => r
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum(),
            ExportRequest::Metrics(r) => r
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                    Some(Data::Summary(s)) => s.data_points.len(),
                    None => 0,
                })
                .sum(),
        }
    }

    /// The size of the request's protobuf encoding, without encoding it.
    pub fn encoded_len(&self) -> usize {
        match self {
            ExportRequest::Logs(r) => r.encoded_len(),
            ExportRequest::Traces(r) => r.encoded_len(),
            ExportRequest::Metrics(r) => r.encoded_len(),
        }
    }

    /// Serializes the request as OTLP protobuf.
    pub fn encode_protobuf(&self) -> Vec<u8> {
        match self {
            ExportRequest::Logs(r) => r.encode_to_vec(),
            ExportRequest::Traces(r) => r.encode_to_vec(),
            ExportRequest::Metrics(r) => r.encode_to_vec(),
        }
    }

    /// Serializes the request as OTLP JSON (lowerCamelCase, hex ids, 64-bit integers as strings).
    /// Only tests, benchmarks and `otlp2parquet generate` write OTLP JSON: the
    /// encoder is built with the `json-encoder` feature.
    #[cfg(feature = "json-encoder")]
    pub fn encode_json(&self) -> Vec<u8> {
        json::encode(self)
    }
}

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest body accepted after decompression, in bytes.
    pub max_decoded_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_decoded_bytes: DEFAULT_MAX_DECODED_BYTES,
        }
    }
}

/// Decompresses `body` if needed, refusing to produce more than the limit.
pub fn decompress<'a>(
    body: &'a [u8],
    compression: Compression,
    limits: DecodeLimits,
) -> Result<std::borrow::Cow<'a, [u8]>> {
    let limit = limits.max_decoded_bytes;
    match compression {
        Compression::None if body.len() > limit => Err(Error::PayloadTooLarge { limit }),
        Compression::None => Ok(std::borrow::Cow::Borrowed(body)),
        Compression::Gzip => {
            // Read one byte past the limit: reaching it means the body is too large,
            // and we learn that without inflating the rest of a possible bomb.
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
            let mut decoder = flate2::read::MultiGzDecoder::new(body).take(limit as u64 + 1);
            decoder.read_to_end(&mut out).map_err(Error::InvalidGzip)?;
            if out.len() > limit {
                return Err(Error::PayloadTooLarge { limit });
            }
            Ok(std::borrow::Cow::Owned(out))
        }
    }
}

/// Decodes an uncompressed body of the given signal and format.
pub fn decode_body(signal: Signal, format: Format, body: &[u8]) -> Result<ExportRequest> {
    match format {
        Format::Protobuf => decode_protobuf(signal, body),
        Format::Json => json::decode(signal, body),
    }
}

/// Decodes an OTLP/HTTP body: decompress, then parse as `format`.
pub fn decode(
    signal: Signal,
    format: Format,
    compression: Compression,
    body: &[u8],
    limits: DecodeLimits,
) -> Result<ExportRequest> {
    let plain = decompress(body, compression, limits)?;
    decode_body(signal, format, &plain)
}

fn decode_protobuf(signal: Signal, body: &[u8]) -> Result<ExportRequest> {
    let invalid = |source| Error::InvalidProtobuf { signal, source };
    Ok(match signal {
        Signal::Logs => {
            ExportRequest::Logs(ExportLogsServiceRequest::decode(body).map_err(invalid)?)
        }
        Signal::Traces => {
            ExportRequest::Traces(ExportTraceServiceRequest::decode(body).map_err(invalid)?)
        }
        Signal::Metrics => {
            ExportRequest::Metrics(ExportMetricsServiceRequest::decode(body).map_err(invalid)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::from_content_type("application/json; charset=utf-8").unwrap(),
            Format::Json
        );
        assert_eq!(
            Format::from_content_type("Application/X-Protobuf").unwrap(),
            Format::Protobuf
        );
        assert!(matches!(
            Format::from_content_type("text/plain"),
            Err(Error::UnsupportedContentType(_))
        ));
        assert!(matches!(
            Compression::from_content_encoding(Some("br")),
            Err(Error::UnsupportedContentEncoding(_))
        ));
    }

    #[test]
    fn gzip_bomb_is_refused_without_inflating_it() {
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        let limits = DecodeLimits {
            max_decoded_bytes: 1024 * 1024,
        };
        let err = decompress(&bomb, Compression::Gzip, limits).unwrap_err();
        assert!(matches!(err, Error::PayloadTooLarge { limit } if limit == 1024 * 1024));
    }

    #[test]
    fn gzip_round_trip_and_garbage() {
        let data = b"hello otlp".repeat(100);
        let compressed = gzip(&data);
        let out = decompress(&compressed, Compression::Gzip, DecodeLimits::default()).unwrap();
        assert_eq!(&*out, &data[..]);
        let err = decompress(b"not gzip", Compression::Gzip, DecodeLimits::default()).unwrap_err();
        assert!(matches!(err, Error::InvalidGzip(_)));
    }

    #[test]
    fn empty_bodies_are_empty_requests() {
        for signal in Signal::ALL {
            let pb = decode_body(signal, Format::Protobuf, b"").unwrap();
            assert_eq!(pb.item_count(), 0);
            let js = decode_body(signal, Format::Json, b"{}").unwrap();
            assert_eq!(js.item_count(), 0);
        }
    }
}
