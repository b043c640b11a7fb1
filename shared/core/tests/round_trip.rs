//! Every field of every record survives decode → Arrow → Parquet → read back.
//!
//! Each test encodes a request (generated or hand-written), decodes it as an
//! OTLP/HTTP server would, converts it, writes Parquet, reads the file back with the
//! `parquet` crate, and compares every column of every row with what the
//! independent oracle in `support` says the record must become.

mod support;

use std::io::Write;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use otlp2parquet_core::convert::convert;
use otlp2parquet_core::otlp::{self, Compression, DecodeLimits, ExportRequest, Format};
use otlp2parquet_core::{Signal, Table};
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use support::{Row, arrow_rows, expected_rows, parquet_round_trip};

fn assert_rows_equal(table: Table, expected: &[Row], actual: &[Row]) {
    assert_eq!(expected.len(), actual.len(), "{table}: row count");
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        let mut columns: Vec<_> = e.keys().chain(a.keys()).collect();
        columns.sort();
        columns.dedup();
        for c in columns {
            assert_eq!(e.get(c), a.get(c), "{table} row {i} column {c}");
        }
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Sends `request` through every encoding and checks the tables it lands in.
fn check(request: &ExportRequest) {
    let expected = expected_rows(request);
    for format in [Format::Protobuf, Format::Json] {
        for compression in [Compression::None, Compression::Gzip] {
            let mut body = match format {
                Format::Protobuf => request.encode_protobuf(),
                Format::Json => request.encode_json(),
            };
            if compression == Compression::Gzip {
                body = gzip(&body);
            }
            let decoded = otlp::decode(
                request.signal(),
                format,
                compression,
                &body,
                DecodeLimits::default(),
            )
            .unwrap_or_else(|e| panic!("{format:?}/{compression:?}: {e}"));
            let converted = convert(decoded).unwrap();
            assert_eq!(converted.rejections.count, 0, "{:?}", converted.rejections);
            let tables: Vec<Table> = converted.batches.iter().map(|(t, _)| *t).collect();
            assert_eq!(
                tables,
                expected.keys().copied().collect::<Vec<_>>(),
                "{format:?}"
            );
            for (table, batch) in &converted.batches {
                let (_, read_back) = parquet_round_trip(*table, batch);
                assert_rows_equal(*table, &expected[table], &arrow_rows(&read_back));
            }
        }
    }
}

fn string(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(v.to_string())),
    })
}

fn any(v: Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value,
        ..Default::default()
    }
}

// Generated traffic of every signal, in every encoding.
#[test]
fn generated_requests_round_trip() {
    for signal in Signal::ALL {
        let mut generator = Generator::new(GeneratorConfig {
            records_per_request: 250,
            services: 4,
            ..Default::default()
        });
        for _ in 0..2 {
            check(&generator.next_request(signal));
        }
    }
}

// JSON as encoded here decodes to exactly the request that was encoded.
#[test]
fn json_encoding_is_lossless() {
    for signal in Signal::ALL {
        let request = Generator::new(GeneratorConfig {
            records_per_request: 100,
            ..Default::default()
        })
        .next_request(signal);
        let decoded = otlp::decode_body(signal, Format::Json, &request.encode_json()).unwrap();
        // Not assert_eq!: the Debug dump of a whole request would bury the message.
        assert!(
            decoded == request,
            "{signal}: JSON round trip changed the request"
        );
    }
}

fn nested_value() -> Option<AnyValue> {
    any(Value::KvlistValue(KeyValueList {
        values: vec![
            kv(
                "list",
                any(Value::ArrayValue(ArrayValue {
                    values: vec![
                        any(Value::IntValue(i64::MIN)).unwrap(),
                        any(Value::DoubleValue(-0.25)).unwrap(),
                        any(Value::BoolValue(false)).unwrap(),
                        any(Value::BytesValue(vec![0, 1, 2, 255])).unwrap(),
                        AnyValue { value: None },
                    ],
                })),
            ),
            kv(
                "nested",
                any(Value::KvlistValue(KeyValueList {
                    values: vec![kv("deep", string("ünïcødé ✓ \"quoted\"\n"))],
                })),
            ),
        ],
    }))
}

// Hand-written edge cases: empty and missing parts, nested values, bytes, zero
// timestamps, a 1 MiB body, non-ASCII text, duplicate keys.
#[test]
fn log_edge_cases_round_trip() {
    let record = |body: Option<AnyValue>, attributes: Vec<KeyValue>| LogRecord {
        body,
        attributes,
        ..Default::default()
    };
    let request = ExportLogsServiceRequest {
        resource_logs: vec![
            // No resource, no scope, a record with nothing set at all.
            ResourceLogs {
                resource: None,
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: vec![LogRecord::default()],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
            ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", string("édition-ß")),
                        kv("pid", any(Value::IntValue(4242))),
                    ],
                    dropped_attributes_count: 3,
                    entity_refs: vec![],
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "scope".into(),
                        version: "9.9".into(),
                        attributes: vec![kv("scope.attr", any(Value::BoolValue(true)))],
                        dropped_attributes_count: 1,
                    }),
                    log_records: vec![
                        record(nested_value(), vec![kv("nested", nested_value())]),
                        record(any(Value::BytesValue(b"\x00binary\xff".to_vec())), vec![]),
                        record(string(&"x".repeat(1 << 20)), vec![]),
                        record(
                            string("日本語のログ 🚀"),
                            vec![
                                kv("dup", string("first")),
                                kv("other", any(Value::DoubleValue(1e-7))),
                                kv("dup", string("last")),
                                kv("nan", any(Value::DoubleValue(f64::NAN))),
                                kv("empty", None),
                            ],
                        ),
                        LogRecord {
                            time_unix_nano: 1_700_000_000_123_456_789,
                            observed_time_unix_nano: 0,
                            severity_number: 24,
                            severity_text: "FATAL4".into(),
                            flags: 0x101,
                            trace_id: vec![0xff; 16],
                            span_id: vec![0x01; 8],
                            event_name: "app.crash".into(),
                            dropped_attributes_count: u32::MAX,
                            ..Default::default()
                        },
                    ],
                    schema_url: "https://opentelemetry.io/schemas/1.0.0".into(),
                }],
                schema_url: "https://example.com/resource-schema".into(),
            },
        ],
    };
    check(&ExportRequest::Logs(request));
}

#[test]
fn span_edge_cases_round_trip() {
    let span = |kind: i32, start: u64, end: u64| Span {
        trace_id: (1..=16).collect(),
        span_id: (1..=8).collect(),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..Default::default()
    };
    let mut full = span(3, 1_700_000_000_000_000_000, 1_700_000_000_500_000_001);
    full.parent_span_id = vec![9; 8];
    full.trace_state = "vendor=value".into();
    full.name = "SELECT ünïcødé".into();
    full.flags = 0x301;
    full.status = Some(opentelemetry_proto::tonic::trace::v1::Status {
        message: "boom".into(),
        code: 2,
    });
    full.events = vec![
        span::Event {
            time_unix_nano: 0,
            name: "no time".into(),
            attributes: vec![],
            dropped_attributes_count: 0,
        },
        span::Event {
            time_unix_nano: 1_700_000_000_100_000_000,
            name: "exception".into(),
            attributes: vec![kv("exception.stacktrace", nested_value())],
            dropped_attributes_count: 2,
        },
    ];
    full.links = vec![span::Link {
        trace_id: vec![0xab; 16],
        span_id: vec![0xcd; 8],
        trace_state: "a=b".into(),
        attributes: vec![kv("k", string("v"))],
        dropped_attributes_count: 1,
        flags: 0x100,
    }];
    full.dropped_events_count = 5;
    full.dropped_links_count = 6;
    full.dropped_attributes_count = 7;
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: None,
            scope_spans: vec![ScopeSpans {
                scope: None,
                spans: vec![
                    full,
                    // Zero timestamps, and an end before the start (a negative duration).
                    span(0, 0, 0),
                    span(5, 2_000, 1_000),
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    check(&ExportRequest::Traces(request));
}

#[test]
fn metric_edge_cases_round_trip() {
    let point = |value: Option<number_data_point::Value>| NumberDataPoint {
        time_unix_nano: 1_700_000_000_000_000_000,
        value,
        ..Default::default()
    };
    let metric = |name: &str, data: Data| Metric {
        name: name.into(),
        description: "d".into(),
        unit: "1".into(),
        metadata: vec![kv("meta", string("data"))],
        data: Some(data),
    };
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: None,
            scope_metrics: vec![ScopeMetrics {
                scope: None,
                metrics: vec![
                    metric(
                        "gauge",
                        Data::Gauge(Gauge {
                            data_points: vec![
                                // An integer too large for a double keeps its exact value in IntValue.
                                point(Some(number_data_point::Value::AsInt(i64::MAX - 1))),
                                point(Some(number_data_point::Value::AsDouble(-1.5))),
                                point(None),
                            ],
                        }),
                    ),
                    metric(
                        "sum",
                        Data::Sum(Sum {
                            data_points: vec![point(Some(number_data_point::Value::AsInt(0)))],
                            aggregation_temporality: 1,
                            is_monotonic: false,
                        }),
                    ),
                    metric(
                        "histogram",
                        Data::Histogram(Histogram {
                            data_points: vec![
                                HistogramDataPoint::default(),
                                HistogramDataPoint {
                                    count: u64::MAX >> 1,
                                    sum: Some(0.0),
                                    bucket_counts: vec![1, 2],
                                    explicit_bounds: vec![10.0],
                                    ..Default::default()
                                },
                            ],
                            aggregation_temporality: 2,
                        }),
                    ),
                    metric(
                        "exponential",
                        Data::ExponentialHistogram(ExponentialHistogram {
                            data_points: vec![ExponentialHistogramDataPoint {
                                scale: -3,
                                positive: None,
                                negative: Some(
                                    opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets {
                                        offset: -5,
                                        bucket_counts: vec![7, 0, 1],
                                    },
                                ),
                                zero_threshold: 1e-9,
                                ..Default::default()
                            }],
                            aggregation_temporality: 0,
                        }),
                    ),
                    // A metric without data has nothing to store.
                    Metric {
                        name: "empty".into(),
                        ..Default::default()
                    },
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    check(&ExportRequest::Metrics(request));
}
