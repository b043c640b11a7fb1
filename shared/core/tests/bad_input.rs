//! Bad input gets a precise error or a counted rejection, never a panic.
//!
//! Whole-request errors (the body cannot be read as the signal's export request)
//! are `Error` values flagged `is_bad_input`; records that are readable but invalid
//! are dropped one by one and counted, and the rest of the request is kept.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use otlp2parquet_core::convert::{Limits, convert, convert_with};
use otlp2parquet_core::otlp::{self, Compression, DecodeLimits, ExportRequest, Format};
use otlp2parquet_core::{Error, Signal};
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use rand::{RngCore, SeedableRng};

fn decode(signal: Signal, format: Format, body: &[u8]) -> Result<ExportRequest, Error> {
    otlp::decode(
        signal,
        format,
        Compression::None,
        body,
        DecodeLimits::default(),
    )
}

// Truncating a valid protobuf anywhere either fails cleanly or yields a shorter
// valid message; it never panics. Cutting inside the first record's bytes fails.
#[test]
fn truncated_protobuf_is_an_error() {
    for signal in Signal::ALL {
        let body = Generator::new(GeneratorConfig {
            records_per_request: 20,
            ..Default::default()
        })
        .next_request(signal)
        .encode_protobuf();
        let mut errors = 0;
        for cut in (1..body.len()).step_by(7) {
            if let Err(e) = decode(signal, Format::Protobuf, &body[..cut]) {
                assert!(e.is_bad_input());
                assert!(
                    e.to_string()
                        .starts_with(&format!("invalid OTLP {signal} protobuf")),
                    "{e}"
                );
                errors += 1;
            }
        }
        assert!(errors > 0, "{signal}");
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    for _ in 0..2000 {
        let len = (rng.next_u32() % 512) as usize;
        let mut body = vec![0u8; len];
        rng.fill_bytes(&mut body);
        for signal in Signal::ALL {
            for format in [Format::Protobuf, Format::Json] {
                if let Ok(request) = decode(signal, format, &body) {
                    // Whatever decoded must convert without an error.
                    convert(request).unwrap();
                }
            }
        }
    }
}

#[test]
fn invalid_json_names_the_place() {
    let cases: &[(&str, &str)] = &[
        ("{", "$"),
        ("[]", "$"),
        (r#"{"resourceLogs": {}}"#, "resourceLogs"),
        (
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"spanId":"xyz"}]}]}]}"#,
            "resourceLogs[0].scopeLogs[0].logRecords[0].spanId",
        ),
        (
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"bytesValue":"!!!"}}]}]}]}"#,
            "resourceLogs[0].scopeLogs[0].logRecords[0].body.bytesValue",
        ),
        (
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"soon"}]}]}]}"#,
            "resourceLogs[0].scopeLogs[0].logRecords[0].timeUnixNano",
        ),
    ];
    for (body, path) in cases {
        let err = decode(Signal::Logs, Format::Json, body.as_bytes()).unwrap_err();
        assert!(err.is_bad_input());
        match &err {
            Error::InvalidJson { path: p, .. } => assert_eq!(p, path, "{body}: {err}"),
            other => panic!("{body}: {other}"),
        }
    }
}

// A payload of one signal sent to another signal's endpoint is refused.
#[test]
fn json_of_the_wrong_signal_is_refused() {
    let logs = Generator::new(GeneratorConfig::default())
        .next_request(Signal::Logs)
        .encode_json();
    for signal in [Signal::Traces, Signal::Metrics] {
        let err = decode(signal, Format::Json, &logs).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `resourceLogs`"),
            "{err}"
        );
    }
}

#[test]
fn wrong_content_type_and_encoding() {
    for ct in ["text/plain", "application/xml", "", "multipart/form-data"] {
        assert!(matches!(
            Format::from_content_type(ct),
            Err(Error::UnsupportedContentType(_))
        ));
    }
    assert!(matches!(
        Compression::from_content_encoding(Some("deflate")),
        Err(Error::UnsupportedContentEncoding(_))
    ));
}

#[test]
fn oversized_and_bomb_bodies_are_refused() {
    let limits = DecodeLimits {
        max_decoded_bytes: 1000,
    };
    let big = vec![b' '; 1001];
    let err =
        otlp::decode(Signal::Logs, Format::Json, Compression::None, &big, limits).unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge { limit: 1000 }));
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![b' '; 50 * 1024 * 1024]).unwrap();
    let bomb = enc.finish().unwrap();
    let limits = DecodeLimits {
        max_decoded_bytes: 8 * 1024 * 1024,
    };
    let err =
        otlp::decode(Signal::Logs, Format::Json, Compression::Gzip, &bomb, limits).unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge { .. }), "{err}");
}

fn log(trace_id: Vec<u8>, span_id: Vec<u8>, severity: i32) -> LogRecord {
    LogRecord {
        trace_id,
        span_id,
        severity_number: severity,
        ..Default::default()
    }
}

// Records with ids of the wrong length or unknown enum values are dropped and
// counted; the valid records of the same request are kept.
#[test]
fn invalid_records_are_rejected_one_by_one() {
    let request = ExportRequest::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    log(vec![1; 16], vec![1; 8], 9),
                    log(vec![1; 15], vec![], 9),
                    log(vec![], vec![1; 9], 9),
                    log(vec![], vec![], 25),
                    log(vec![], vec![], -1),
                    log(vec![], vec![], 0),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    let converted = convert(request).unwrap();
    assert_eq!(converted.rows(), 2);
    assert_eq!(converted.rejections.count, 4);
    let message = converted.rejections.error_message();
    assert!(
        message.contains(
            "resource_logs[0].scope_logs[0].log_records[1]: trace_id must be 16 bytes, got 15"
        ),
        "{message}"
    );
    assert!(
        message.contains("log_records[3]: severity_number 25 is not a SeverityNumber"),
        "{message}"
    );

    let span = |trace: usize, span: usize, kind: i32| Span {
        trace_id: vec![1; trace],
        span_id: vec![2; span],
        kind,
        ..Default::default()
    };
    let request = ExportRequest::Traces(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(16, 8, 1),
                    span(0, 8, 1),
                    span(16, 0, 1),
                    span(16, 8, 6),
                    span(16, 8, 5),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    let converted = convert(request).unwrap();
    assert_eq!((converted.rows(), converted.rejections.count), (2, 3));
    assert!(
        converted
            .rejections
            .error_message()
            .contains("kind 6 is not a SpanKind")
    );

    let metric = |data| Metric {
        name: "m".into(),
        data: Some(data),
        ..Default::default()
    };
    let request = ExportRequest::Metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric(Data::Sum(Sum {
                        data_points: vec![NumberDataPoint::default(); 3],
                        aggregation_temporality: 7,
                        is_monotonic: true,
                    })),
                    metric(Data::Histogram(Histogram {
                        data_points: vec![
                            HistogramDataPoint {
                                bucket_counts: vec![1, 2, 3],
                                explicit_bounds: vec![1.0],
                                ..Default::default()
                            },
                            HistogramDataPoint {
                                bucket_counts: vec![1, 2],
                                explicit_bounds: vec![1.0],
                                ..Default::default()
                            },
                            HistogramDataPoint {
                                bucket_counts: vec![1, u64::MAX],
                                explicit_bounds: vec![1.0],
                                ..Default::default()
                            },
                        ],
                        aggregation_temporality: 1,
                    })),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    let converted = convert(request).unwrap();
    assert_eq!((converted.rows(), converted.rejections.count), (1, 5));
    let message = converted.rejections.error_message();
    assert!(message.contains("aggregation_temporality 7"), "{message}");
    assert!(
        message.contains("3 bucket_counts do not fit 1 explicit_bounds"),
        "{message}"
    );
}

// Enum numbers outside the spec arrive through JSON too, and are rejected per record.
#[test]
fn unknown_enum_numbers_in_json_are_rejected_per_record() {
    let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","kind":99},
        {"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","kind":"SPAN_KIND_CLIENT","status":{"code":"STATUS_CODE_ERROR"}}
    ]}]}]}"#;
    let request = decode(Signal::Traces, Format::Json, body).unwrap();
    let converted = convert(request).unwrap();
    assert_eq!((converted.rows(), converted.rejections.count), (1, 1));
}

fn attribute(i: usize) -> opentelemetry_proto::tonic::common::v1::KeyValue {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    KeyValue {
        key: format!("attribute.{i:06}"),
        value: Some(AnyValue {
            value: Some(Value::StringValue(format!("value-{i}"))),
        }),
        ..Default::default()
    }
}

// A small body whose resource attributes would be repeated on every one of its
// records (10,000 × 10,000: a 0.5 MiB body, gigabytes of columns) is refused
// before any column is built, with a message that says why; a request with the
// same attributes on a few records goes through.
#[test]
fn a_request_that_would_expand_to_gigabytes_is_refused() {
    let request = |records: usize| {
        ExportRequest::Logs(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: (0..10_000).map(attribute).collect(),
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: (0..records)
                        .map(|i| log(vec![], vec![], 9 + (i % 2) as i32))
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
    };
    let body = request(10_000).encode_protobuf();
    assert!(body.len() < 1024 * 1024, "{} bytes", body.len());
    let started = std::time::Instant::now();
    let err = convert(decode(Signal::Logs, Format::Protobuf, &body).unwrap()).unwrap_err();
    assert!(matches!(err, Error::ConversionTooLarge { .. }), "{err}");
    assert!(err.is_bad_input());
    assert!(err.to_string().contains("smaller batches"), "{err}");
    // Refused by an estimate, not by building the columns first.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    let converted = convert(request(10)).unwrap();
    assert_eq!(converted.rows(), 10);
}

fn map_len(batch: &arrow::array::RecordBatch, column: &str, row: usize) -> usize {
    use arrow::array::{Array, AsArray};
    let map = batch.column_by_name(column).unwrap().as_map();
    map.value(row).len()
}

fn long(batch: &arrow::array::RecordBatch, column: &str, row: usize) -> i64 {
    use arrow::array::AsArray;
    batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(row)
}

// Attributes over the caps are dropped and counted in the row's
// *DroppedAttributesCount columns, on top of what the sender already dropped;
// the records themselves are kept.
#[test]
fn attributes_over_the_caps_are_dropped_and_counted() {
    let mut record = log(vec![], vec![], 9);
    record.attributes = (0..50).map(attribute).collect();
    record.dropped_attributes_count = 3;
    let request = ExportRequest::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: (0..30).map(attribute).collect(),
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![record, log(vec![], vec![], 9)],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    let limits = Limits::default().with_max_attributes(20);
    let converted = convert_with(request, &limits).unwrap();
    assert_eq!(converted.rejections.count, 0);
    let (_, batch) = &converted.batches[0];
    assert_eq!(batch.num_rows(), 2);
    assert_eq!(map_len(batch, "LogAttributes", 0), 20);
    assert_eq!(long(batch, "LogDroppedAttributesCount", 0), 3 + 30);
    assert_eq!(map_len(batch, "LogAttributes", 1), 0);
    assert_eq!(long(batch, "LogDroppedAttributesCount", 1), 0);
    for row in 0..2 {
        assert_eq!(map_len(batch, "ResourceAttributes", row), 20);
        assert_eq!(long(batch, "ResourceDroppedAttributesCount", row), 10);
    }
}

// A data point has no dropped count and its attributes name its time series:
// one over the caps is rejected with a reason, the others are kept.
#[test]
fn a_data_point_over_the_caps_is_rejected() {
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
        number_data_point,
    };
    let point = |attributes: usize| NumberDataPoint {
        attributes: (0..attributes).map(attribute).collect(),
        time_unix_nano: 1_700_000_000_000_000_000,
        value: Some(number_data_point::Value::AsInt(1)),
        ..Default::default()
    };
    let request = ExportRequest::Metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue.depth".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: vec![point(5), point(6), point(0)],
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    let limits = Limits::default().with_max_attributes(5);
    let converted = convert_with(request, &limits).unwrap();
    assert_eq!((converted.rows(), converted.rejections.count), (2, 1));
    let message = converted.rejections.error_message();
    assert!(
        message.contains("(queue.depth) data_points[1]: the data point has 6 attributes"),
        "{message}"
    );
}
