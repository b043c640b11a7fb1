//! The OTLP/HTTP receiver: one axum `Router` for `POST /v1/{logs,traces,metrics}`.
//!
//! The router hands each decoded request to an [`Ingestor`]: `otlp2parquet
//! serve` plugs in the group committer, the ingest Lambda a direct writer, so
//! both answer with the same status codes and OTLP bodies.
//!
//! It answers as the OTLP/HTTP specification says: `200` with an
//! `Export*ServiceResponse` (carrying `partial_success` when records were
//! rejected) only after the ingest stage made the data durable; `400` for data
//! that cannot be decoded, `413` for bodies over the limit, `415` for content
//! types and encodings it does not speak, `408` for bodies that arrive too
//! slowly, and `503` with `Retry-After` when it is overloaded or its storage
//! fails. Errors carry a `google.rpc.Status`, encoded like the request.

#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::sync::Semaphore;

use otlp2parquet_core::convert::{Limits, Rejections, refuse_before_decoding};
use otlp2parquet_core::ingest::{Ingestor, day_parts};
use otlp2parquet_core::otlp::{self, Compression, DecodeLimits, Format};
use otlp2parquet_core::ports::Queue;
use otlp2parquet_core::telemetry::Telemetry;
use otlp2parquet_core::{Error, Signal};

/// Plain request bodies up to this size are converted on the async worker
/// that read them, larger or compressed ones on a blocking thread.
const INLINE_CONVERSION_BYTES: usize = 64 * 1024;

/// Limits and settings of the receiver.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Largest request body accepted as sent (compressed or not), in bytes.
    pub max_body_bytes: usize,
    /// Largest request body after decompression, in bytes.
    pub max_decoded_bytes: usize,
    /// Request bytes being processed at once; past this, requests get 503.
    pub max_in_flight_bytes: usize,
    /// Time a client has to send its whole body.
    pub body_timeout: Duration,
    /// Caps on attributes and on the converted size of one request.
    pub limits: Limits,
    /// Said after the limit in a 413's message: what the client should do
    /// (a Lambda behind API Gateway: lower the batch size).
    pub too_large_advice: Option<String>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            max_body_bytes: 16 * 1024 * 1024,
            max_decoded_bytes: otlp::DEFAULT_MAX_DECODED_BYTES,
            max_in_flight_bytes: 256 * 1024 * 1024,
            body_timeout: Duration::from_secs(30),
            limits: Limits::default(),
            too_large_advice: None,
        }
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct ReceiverState {
    ingestor: Arc<dyn Ingestor>,
    config: Arc<ReceiverConfig>,
    in_flight: Arc<Semaphore>,
    telemetry: Arc<Telemetry>,
    watched: Vec<Arc<dyn Queue>>,
}

impl ReceiverState {
    /// State for a receiver handing requests to `ingestor`, counting into
    /// `telemetry`.
    pub fn new(
        ingestor: Arc<dyn Ingestor>,
        config: ReceiverConfig,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        // The semaphore counts kilobytes: permits are u32 and bodies can be large.
        let permits = (config.max_in_flight_bytes / 1024).max(1);
        ReceiverState {
            ingestor,
            in_flight: Arc::new(Semaphore::new(permits)),
            config: Arc::new(config),
            telemetry,
            watched: Vec::new(),
        }
    }

    /// Reports the depth of these queues (the pipeline's queues and their
    /// dead-letter queues) at `/metrics`.
    pub fn with_watched_queues(mut self, queues: Vec<Arc<dyn Queue>>) -> Self {
        self.watched = queues;
        self
    }
}

async fn metrics(State(state): State<ReceiverState>) -> Response {
    let mut depths = Vec::new();
    for queue in &state.watched {
        let depth = queue.depth().await.unwrap_or(0);
        depths.push((format!("{{queue=\"{}\"}}", queue.name()), depth));
    }
    let body = state.telemetry.render(&[(
        "otlp2parquet_queue_depth",
        "Messages waiting in each queue (dead-letter queues end in -dlq).",
        depths,
    )]);
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}

/// The OTLP/HTTP routes, plus `GET /health`.
pub fn router(state: ReceiverState) -> Router {
    Router::new()
        .route("/v1/logs", post(|s, h, b| export(Signal::Logs, s, h, b)))
        .route(
            "/v1/traces",
            post(|s, h, b| export(Signal::Traces, s, h, b)),
        )
        .route(
            "/v1/metrics",
            post(|s, h, b| export(Signal::Metrics, s, h, b)),
        )
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            status(
                StatusCode::NOT_FOUND,
                None,
                "not an OTLP/HTTP path: POST to /v1/logs, /v1/traces or /v1/metrics",
            )
        })
        .with_state(state)
}

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn grpc_code(http: StatusCode) -> i32 {
    match http {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => 3, // INVALID_ARGUMENT
        StatusCode::REQUEST_TIMEOUT => 4,                                  // DEADLINE_EXCEEDED
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => 8, // RESOURCE_EXHAUSTED
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => 12,      // UNIMPLEMENTED
        StatusCode::SERVICE_UNAVAILABLE => 14,                             // UNAVAILABLE
        _ => 13,                                                           // INTERNAL
    }
}

fn encoded(
    format: Option<Format>,
    protobuf: Vec<u8>,
    json: serde_json::Value,
) -> (HeaderValue, Vec<u8>) {
    match format {
        Some(Format::Protobuf) => (HeaderValue::from_static("application/x-protobuf"), protobuf),
        _ => (
            HeaderValue::from_static("application/json"),
            serde_json::to_vec(&json).unwrap_or_default(),
        ),
    }
}

/// An error response; `format` is the request's, JSON when it is unknown.
fn status(http: StatusCode, format: Option<Format>, message: impl Into<String>) -> Response {
    let message = message.into();
    let code = grpc_code(http);
    let (content_type, body) = encoded(
        format,
        RpcStatus {
            code,
            message: message.clone(),
        }
        .encode_to_vec(),
        serde_json::json!({ "code": code, "message": message }),
    );
    let mut response = (http, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    if matches!(
        http,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
    ) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn success(signal: Signal, format: Format, rejections: &Rejections) -> Response {
    let rejected = rejections.count as i64;
    let message = rejections.error_message();
    let protobuf = match (signal, rejected > 0) {
        (Signal::Logs, partial) => ExportLogsServiceResponse {
            partial_success: partial.then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: message.clone(),
            }),
        }
        .encode_to_vec(),
        (Signal::Traces, partial) => ExportTraceServiceResponse {
            partial_success: partial.then(|| ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message.clone(),
            }),
        }
        .encode_to_vec(),
        (Signal::Metrics, partial) => ExportMetricsServiceResponse {
            partial_success: partial.then(|| ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message: message.clone(),
            }),
        }
        .encode_to_vec(),
    };
    let field = match signal {
        Signal::Logs => "rejectedLogRecords",
        Signal::Traces => "rejectedSpans",
        Signal::Metrics => "rejectedDataPoints",
    };
    let json = if rejected > 0 {
        // int64 is a string in the protobuf JSON mapping.
        serde_json::json!({ "partialSuccess": { field: rejected.to_string(), "errorMessage": message } })
    } else {
        serde_json::json!({})
    };
    let (content_type, body) = encoded(Some(format), protobuf, json);
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

/// Why a request was not decoded.
enum Refusal {
    /// The body is bad (or too large): the client's to fix.
    Bad(Error),
    /// Its decompressed size does not fit the receiver's in-flight budget now.
    AtCapacity,
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Bad(e)
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn decode_error_status(err: &Error) -> StatusCode {
    match err {
        Error::PayloadTooLarge { .. } | Error::ConversionTooLarge { .. } => {
            StatusCode::PAYLOAD_TOO_LARGE
        }
        Error::UnsupportedContentType(_) | Error::UnsupportedContentEncoding(_) => {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        }
        e if e.is_bad_input() => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The configured advice for a too-large request, as the end of a sentence.
fn advice(config: &ReceiverConfig) -> String {
    config
        .too_large_advice
        .as_ref()
        .map(|advice| format!("; {advice}"))
        .unwrap_or_default()
}

async fn export(
    signal: Signal,
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let telemetry = state.telemetry.clone();
    let response = export_inner(signal, state, headers, body).await;
    telemetry.record_response(response.status().as_u16());
    response
}

async fn export_inner(
    signal: Signal,
    state: ReceiverState,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(content_type) = header_str(&headers, header::CONTENT_TYPE) else {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            "missing Content-Type: send application/x-protobuf or application/json",
        );
    };
    let format = match Format::from_content_type(content_type) {
        Ok(f) => f,
        Err(e) => return status(StatusCode::UNSUPPORTED_MEDIA_TYPE, None, e.to_string()),
    };
    let compression =
        match Compression::from_content_encoding(header_str(&headers, header::CONTENT_ENCODING)) {
            Ok(c) => c,
            Err(e) => {
                return status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    Some(format),
                    e.to_string(),
                );
            }
        };
    let config = &state.config;
    let declared =
        header_str(&headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > config.max_body_bytes) {
        return status(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some(format),
            format!(
                "request body is larger than the limit of {} bytes{}",
                config.max_body_bytes,
                advice(config)
            ),
        );
    }
    // Admission: bound the bytes in flight. A chunked body (no Content-Length, as
    // the JavaScript SDK sends) is charged a provisional 1 MiB and the rest once
    // its size is known, so it can neither bypass the bound nor be refused for
    // the mere lack of a length.
    let at_capacity = || {
        status(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(format),
            "the receiver is at capacity; retry after the Retry-After delay",
        )
    };
    let kib = |bytes: usize| bytes.div_ceil(1024).max(1) as u32;
    let charged = declared.unwrap_or(1024 * 1024);
    let Ok(mut permit) = state.in_flight.clone().try_acquire_many_owned(kib(charged)) else {
        return at_capacity();
    };
    let bytes = match tokio::time::timeout(
        config.body_timeout,
        axum::body::to_bytes(body, config.max_body_bytes),
    )
    .await
    {
        Err(_) => {
            return status(
                StatusCode::REQUEST_TIMEOUT,
                Some(format),
                format!(
                    "the request body did not arrive within {:?}",
                    config.body_timeout
                ),
            );
        }
        Ok(Err(e)) => {
            // A length-limited body reports the limit; anything else is a broken upload.
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            let code = if too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            let advice = if too_large {
                advice(config)
            } else {
                String::new()
            };
            return status(
                code,
                Some(format),
                format!("reading the request body: {e}{advice}"),
            );
        }
        Ok(Ok(bytes)) => bytes,
    };
    if kib(bytes.len()) > kib(charged) {
        match state
            .in_flight
            .clone()
            .try_acquire_many_owned(kib(bytes.len()) - kib(charged))
        {
            Ok(extra) => permit.merge(extra),
            Err(_) => return at_capacity(),
        }
    };
    let limits = DecodeLimits {
        max_decoded_bytes: config.max_decoded_bytes,
    };
    // Decoding and converting take milliseconds of CPU: run them off the async
    // workers, which keep accepting and reading other requests. A compressed
    // body is admitted again once its decompressed size is known: what a request
    // costs in memory follows that size, not the few bytes of a gzip bomb.
    let in_flight = state.in_flight.clone();
    let conversion_limits = config.limits;
    let spawned = std::time::Instant::now();
    // A small plain body takes a fraction of a millisecond: converting it on
    // this worker costs less than handing it to a blocking thread and waiting
    // to be scheduled back (0.8 ms on average under load, 5 ms at p99).
    let inline = compression == Compression::None && bytes.len() <= INLINE_CONVERSION_BYTES;
    let work = move || -> Result<_, Refusal> {
        let began = std::time::Instant::now();
        let plain = otlp::decompress(&bytes, compression, limits)?;
        let decoded_permit = if kib(plain.len()) > kib(bytes.len()) {
            let more = kib(plain.len()) - kib(bytes.len());
            Some(
                in_flight
                    .try_acquire_many_owned(more)
                    .map_err(|_| Refusal::AtCapacity)?,
            )
        } else {
            None
        };
        if format == Format::Protobuf {
            // Refused from the wire bytes: decoding such a request first
            // would take many times its size in memory.
            refuse_before_decoding(signal, &plain, &conversion_limits)?;
        }
        let request = otlp::decode_body(signal, format, &plain)?;
        drop(plain);
        drop(bytes);
        let parts = day_parts(request, &conversion_limits)?;
        tracing::trace!(
            waited_ms = (began - spawned).as_secs_f64() * 1e3,
            convert_ms = began.elapsed().as_secs_f64() * 1e3,
            "request converted"
        );
        Ok((parts, decoded_permit))
    };
    let converted = if inline {
        Ok(work())
    } else {
        tokio::task::spawn_blocking(work).await
    };
    let (parts, rejections) = match converted {
        Ok(Ok(((parts, rejections), decoded_permit))) => {
            if let Some(extra) = decoded_permit {
                permit.merge(extra);
            }
            (parts, rejections)
        }
        Ok(Err(Refusal::Bad(e))) => {
            return status(decode_error_status(&e), Some(format), e.to_string());
        }
        Ok(Err(Refusal::AtCapacity)) => return at_capacity(),
        Err(join) => {
            tracing::error!(%signal, error = %join, "decoding task failed");
            return status(
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(format),
                "internal error while decoding the request",
            );
        }
    };
    let converted_at = std::time::Instant::now();
    let accepted = if parts.is_empty() {
        0
    } else {
        let rows = parts.iter().map(|(_, _, b)| b.num_rows() as u64).sum();
        match state.ingestor.ingest(parts).await {
            Ok(_) => rows,
            Err(e) => {
                // Overload is the ingestor's own back-pressure, logged once
                // per episode there; anything else is a failure to look at.
                if matches!(*e, otlp2parquet_core::Error::Overloaded(_)) {
                    tracing::debug!(%signal, error = %e, "ingest refused");
                } else {
                    tracing::error!(%signal, error = %e, "ingest failed");
                }
                return status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(format),
                    format!("the data could not be stored; retry later: {e}"),
                );
            }
        }
    };
    state
        .telemetry
        .record_ingest(signal, accepted, rejections.count);
    tracing::debug!(
        %signal,
        accepted,
        rejected = rejections.count,
        durable_ms = converted_at.elapsed().as_secs_f64() * 1e3,
        "ingested"
    );
    success(signal, format, &rejections)
}
