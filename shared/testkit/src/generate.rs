//! Deterministic synthetic OTLP traffic, for tests, benchmarks and load generation.
//!
//! The same [`GeneratorConfig`] (seed included) always yields the same requests, so
//! a benchmark measures the same bytes on every run and a failing test can be
//! replayed. The records look like what OpenTelemetry SDKs send: a handful of
//! resource attributes per service, string-heavy record attributes with a bounded
//! number of distinct values, trace context on most records, and every metric type.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge,
    Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    Summary, SummaryDataPoint, exemplar, exponential_histogram_data_point::Buckets, metric::Data,
    number_data_point, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

use otlp2parquet_core::Signal;
use otlp2parquet_core::otlp::ExportRequest;

/// 2026-01-01T00:00:00Z in nanoseconds: the default start of generated time.
pub const DEFAULT_START_UNIX_NANO: u64 = 1_767_225_600_000_000_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Seed of the pseudo-random generator; the same seed gives the same requests.
    pub seed: u64,
    /// Log records, spans or metric data points per request.
    pub records_per_request: usize,
    /// Number of distinct services (resources); each request spreads its records over them.
    pub services: usize,
    /// Number of distinct values each varying attribute takes.
    pub attribute_cardinality: usize,
    /// Approximate size of a log body or span event message in bytes.
    pub body_bytes: usize,
    /// Timestamp of the first record; each record is 1 ms after the one before.
    pub start_unix_nano: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 42,
            records_per_request: 1000,
            services: 10,
            attribute_cardinality: 100,
            body_bytes: 200,
            start_unix_nano: DEFAULT_START_UNIX_NANO,
        }
    }
}

/// Produces requests one after another; see the module docs.
pub struct Generator {
    config: GeneratorConfig,
    rng: SmallRng,
    sequence: u64,
    /// Which metric type comes next; cycles so every request has all five.
    metric_kind: usize,
}

const WORDS: &[&str] = &[
    "request",
    "completed",
    "user",
    "order",
    "payment",
    "failed",
    "retrying",
    "cache",
    "miss",
    "hit",
    "database",
    "query",
    "took",
    "timeout",
    "connection",
    "established",
    "handler",
    "processed",
    "queue",
    "message",
    "checkout",
    "inventory",
    "updated",
    "session",
    "expired",
];

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

impl Generator {
    /// A generator for `config`.
    pub fn new(config: GeneratorConfig) -> Self {
        let rng = SmallRng::seed_from_u64(config.seed);
        Generator {
            config,
            rng,
            sequence: 0,
            metric_kind: 0,
        }
    }

    /// The next request of `signal`.
    pub fn next_request(&mut self, signal: Signal) -> ExportRequest {
        match signal {
            Signal::Logs => ExportRequest::Logs(self.logs()),
            Signal::Traces => ExportRequest::Traces(self.traces()),
            Signal::Metrics => ExportRequest::Metrics(self.metrics()),
        }
    }

    fn next_time(&mut self) -> u64 {
        self.sequence += 1;
        self.config.start_unix_nano + self.sequence * 1_000_000
    }

    fn pick(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n.max(1))
    }

    fn id<const N: usize>(&mut self) -> Vec<u8> {
        let mut id = [0u8; N];
        self.rng.fill_bytes(&mut id);
        // An all-zero id is invalid in OTLP; make sure we never produce one.
        id[0] |= 1;
        id.to_vec()
    }

    fn sentence(&mut self, bytes: usize) -> String {
        let mut s = String::with_capacity(bytes + 16);
        while s.len() < bytes {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(WORDS[self.pick(WORDS.len())]);
        }
        s
    }

    /// Splits the request's records over services: (service index, record count).
    fn services(&self) -> Vec<(usize, usize)> {
        let services = self
            .config
            .services
            .clamp(1, self.config.records_per_request.max(1));
        let base = self.config.records_per_request / services;
        let extra = self.config.records_per_request % services;
        (0..services)
            .map(|s| (s, base + usize::from(s < extra)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    fn resource(&self, service: usize) -> Resource {
        Resource {
            attributes: vec![
                string("service.name", format!("service-{service:02}")),
                string("service.version", format!("1.{}.0", service % 7)),
                string("service.namespace", "shop"),
                string("deployment.environment", "production"),
                string(
                    "host.name",
                    format!("ip-10-0-{}-{}", service % 4, 10 + service),
                ),
                string(
                    "k8s.pod.name",
                    format!("service-{service:02}-7d9f8b6c4-x{service}k"),
                ),
                string("telemetry.sdk.name", "opentelemetry"),
                string("telemetry.sdk.language", "rust"),
                string("telemetry.sdk.version", "0.31.0"),
            ],
            dropped_attributes_count: 0,
            entity_refs: vec![],
        }
    }

    fn scope(&self) -> InstrumentationScope {
        InstrumentationScope {
            name: "otlp2parquet.generate".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            attributes: vec![],
            dropped_attributes_count: 0,
        }
    }

    fn attributes(&mut self) -> Vec<KeyValue> {
        let c = self.config.attribute_cardinality;
        vec![
            string(
                "http.request.method",
                ["GET", "POST", "PUT", "DELETE"][self.pick(4)],
            ),
            string("http.route", format!("/api/v1/resource/{}", self.pick(c))),
            kv(
                "http.response.status_code",
                Value::IntValue([200, 201, 404, 500][self.pick(4)]),
            ),
            string("user.id", format!("user-{}", self.pick(c))),
            string("code.function", format!("handler_{}", self.pick(c.min(20)))),
            kv(
                "duration.ms",
                Value::DoubleValue(self.rng.random_range(0.1..500.0)),
            ),
            kv("cache.hit", Value::BoolValue(self.rng.random_bool(0.7))),
            string(
                "region",
                ["us-east-1", "eu-west-1", "ap-south-1"][self.pick(3)],
            ),
        ]
    }

    fn logs(&mut self) -> ExportLogsServiceRequest {
        let mut resource_logs = Vec::new();
        for (service, count) in self.services() {
            let mut records = Vec::with_capacity(count);
            for _ in 0..count {
                let time = self.next_time();
                let severity = [5, 9, 9, 9, 13, 17][self.pick(6)];
                let with_trace = self.rng.random_bool(0.8);
                let body = self.sentence(self.config.body_bytes);
                records.push(LogRecord {
                    time_unix_nano: time,
                    observed_time_unix_nano: time + 1_000,
                    severity_number: severity,
                    severity_text: match severity {
                        5 => "DEBUG",
                        9 => "INFO",
                        13 => "WARN",
                        _ => "ERROR",
                    }
                    .to_string(),
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(body)),
                    }),
                    attributes: self.attributes(),
                    dropped_attributes_count: 0,
                    flags: if with_trace { 1 } else { 0 },
                    trace_id: if with_trace { self.id::<16>() } else { vec![] },
                    span_id: if with_trace { self.id::<8>() } else { vec![] },
                    event_name: String::new(),
                });
            }
            resource_logs.push(ResourceLogs {
                resource: Some(self.resource(service)),
                scope_logs: vec![ScopeLogs {
                    scope: Some(self.scope()),
                    log_records: records,
                    schema_url: "https://opentelemetry.io/schemas/1.27.0".to_string(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.27.0".to_string(),
            });
        }
        ExportLogsServiceRequest { resource_logs }
    }

    fn traces(&mut self) -> ExportTraceServiceRequest {
        let mut resource_spans = Vec::new();
        for (service, count) in self.services() {
            let mut spans = Vec::with_capacity(count);
            let mut trace_id = self.id::<16>();
            let mut parent: Vec<u8> = vec![];
            for i in 0..count {
                // Traces of about five spans each, the first one the root.
                if i % 5 == 0 {
                    trace_id = self.id::<16>();
                    parent = vec![];
                }
                let start = self.next_time();
                let span_id = self.id::<8>();
                let events = (0..self.pick(3))
                    .map(|e| span::Event {
                        time_unix_nano: start + 1_000 * (e as u64 + 1),
                        name: ["exception", "retry", "cache.miss"][self.pick(3)].to_string(),
                        attributes: vec![string(
                            "message",
                            self.sentence(self.config.body_bytes / 4),
                        )],
                        dropped_attributes_count: 0,
                    })
                    .collect();
                let links = if self.rng.random_bool(0.1) {
                    vec![span::Link {
                        trace_id: self.id::<16>(),
                        span_id: self.id::<8>(),
                        trace_state: String::new(),
                        attributes: vec![string("link.kind", "follows_from")],
                        dropped_attributes_count: 0,
                        flags: 1,
                    }]
                } else {
                    vec![]
                };
                let error = self.rng.random_bool(0.05);
                spans.push(Span {
                    trace_id: trace_id.clone(),
                    span_id: span_id.clone(),
                    trace_state: String::new(),
                    parent_span_id: parent.clone(),
                    flags: 1,
                    name: format!(
                        "GET /api/v1/resource/{}",
                        self.pick(self.config.attribute_cardinality)
                    ),
                    kind: 1 + self.pick(5) as i32,
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + self.rng.random_range(10_000..50_000_000),
                    attributes: self.attributes(),
                    dropped_attributes_count: 0,
                    events,
                    dropped_events_count: 0,
                    links,
                    dropped_links_count: 0,
                    status: Some(Status {
                        message: if error {
                            "internal error".to_string()
                        } else {
                            String::new()
                        },
                        code: if error { 2 } else { self.pick(2) as i32 },
                    }),
                });
                parent = span_id;
            }
            resource_spans.push(ResourceSpans {
                resource: Some(self.resource(service)),
                scope_spans: vec![ScopeSpans {
                    scope: Some(self.scope()),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            });
        }
        ExportTraceServiceRequest { resource_spans }
    }

    fn exemplars(&mut self, time: u64) -> Vec<Exemplar> {
        if !self.rng.random_bool(0.2) {
            return vec![];
        }
        vec![Exemplar {
            filtered_attributes: vec![string("user.id", format!("user-{}", self.pick(10)))],
            time_unix_nano: time,
            span_id: self.id::<8>(),
            trace_id: self.id::<16>(),
            value: Some(exemplar::Value::AsDouble(self.rng.random_range(0.0..100.0))),
        }]
    }

    fn point_attributes(&mut self) -> Vec<KeyValue> {
        let c = self.config.attribute_cardinality;
        vec![
            string("http.route", format!("/api/v1/resource/{}", self.pick(c))),
            string("http.request.method", ["GET", "POST"][self.pick(2)]),
        ]
    }

    fn metric(&mut self, kind: usize, points: usize) -> Metric {
        let start = self.config.start_unix_nano;
        let (name, unit, data) = match kind {
            0 => {
                let data_points = (0..points)
                    .map(|_| {
                        let time = self.next_time();
                        NumberDataPoint {
                            attributes: self.point_attributes(),
                            start_time_unix_nano: 0,
                            time_unix_nano: time,
                            exemplars: self.exemplars(time),
                            flags: 0,
                            value: Some(number_data_point::Value::AsDouble(
                                self.rng.random_range(0.0..1.0),
                            )),
                        }
                    })
                    .collect();
                (
                    "system.cpu.utilization",
                    "1",
                    Data::Gauge(Gauge { data_points }),
                )
            }
            1 => {
                let data_points = (0..points)
                    .map(|_| {
                        let time = self.next_time();
                        NumberDataPoint {
                            attributes: self.point_attributes(),
                            start_time_unix_nano: start,
                            time_unix_nano: time,
                            exemplars: self.exemplars(time),
                            flags: 0,
                            value: Some(number_data_point::Value::AsInt(
                                self.rng.random_range(0..1_000_000),
                            )),
                        }
                    })
                    .collect();
                (
                    "http.server.request.count",
                    "{request}",
                    Data::Sum(Sum {
                        data_points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    }),
                )
            }
            2 => {
                let bounds = vec![5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];
                let data_points = (0..points)
                    .map(|_| {
                        let time = self.next_time();
                        let counts: Vec<u64> = (0..=bounds.len())
                            .map(|_| self.rng.random_range(0..100))
                            .collect();
                        HistogramDataPoint {
                            attributes: self.point_attributes(),
                            start_time_unix_nano: start,
                            time_unix_nano: time,
                            count: counts.iter().sum(),
                            sum: Some(self.rng.random_range(0.0..10_000.0)),
                            bucket_counts: counts,
                            explicit_bounds: bounds.clone(),
                            exemplars: self.exemplars(time),
                            flags: 0,
                            min: Some(0.5),
                            max: Some(1200.0),
                        }
                    })
                    .collect();
                (
                    "http.server.request.duration",
                    "ms",
                    Data::Histogram(Histogram {
                        data_points,
                        aggregation_temporality: AggregationTemporality::Delta as i32,
                    }),
                )
            }
            3 => {
                let data_points = (0..points)
                    .map(|_| {
                        let time = self.next_time();
                        let positive: Vec<u64> =
                            (0..12).map(|_| self.rng.random_range(0..50)).collect();
                        ExponentialHistogramDataPoint {
                            attributes: self.point_attributes(),
                            start_time_unix_nano: start,
                            time_unix_nano: time,
                            count: positive.iter().sum::<u64>() + 3,
                            sum: Some(self.rng.random_range(0.0..10_000.0)),
                            scale: 3,
                            zero_count: 3,
                            positive: Some(Buckets {
                                offset: -2,
                                bucket_counts: positive,
                            }),
                            negative: Some(Buckets {
                                offset: 0,
                                bucket_counts: vec![],
                            }),
                            flags: 0,
                            exemplars: self.exemplars(time),
                            min: Some(0.0),
                            max: Some(900.0),
                            zero_threshold: 0.0,
                        }
                    })
                    .collect();
                (
                    "rpc.server.duration",
                    "ms",
                    Data::ExponentialHistogram(ExponentialHistogram {
                        data_points,
                        aggregation_temporality: AggregationTemporality::Delta as i32,
                    }),
                )
            }
            _ => {
                let data_points = (0..points)
                    .map(|_| SummaryDataPoint {
                        attributes: self.point_attributes(),
                        start_time_unix_nano: start,
                        time_unix_nano: self.next_time(),
                        count: 100,
                        sum: self.rng.random_range(0.0..10_000.0),
                        quantile_values: [0.0, 0.5, 0.9, 0.99, 1.0]
                            .iter()
                            .map(|&q| ValueAtQuantile {
                                quantile: q,
                                value: q * 100.0,
                            })
                            .collect(),
                        flags: 0,
                    })
                    .collect();
                (
                    "db.query.duration",
                    "ms",
                    Data::Summary(Summary { data_points }),
                )
            }
        };
        Metric {
            name: name.to_string(),
            description: format!("{name} generated by otlp2parquet"),
            unit: unit.to_string(),
            metadata: vec![],
            data: Some(data),
        }
    }

    fn metrics(&mut self) -> ExportMetricsServiceRequest {
        let mut resource_metrics = Vec::new();
        for (service, count) in self.services() {
            // Every metric type in turn, ten data points (attribute sets) per metric.
            let mut metrics = Vec::new();
            let mut left = count;
            while left > 0 {
                let points = left.min(10);
                let kind = self.metric_kind % 5;
                self.metric_kind += 1;
                metrics.push(self.metric(kind, points));
                left -= points;
            }
            resource_metrics.push(ResourceMetrics {
                resource: Some(self.resource(service)),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(self.scope()),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            });
        }
        ExportMetricsServiceRequest { resource_metrics }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_requests() {
        for signal in Signal::ALL {
            let config = GeneratorConfig {
                records_per_request: 57,
                ..Default::default()
            };
            let a = Generator::new(config.clone()).next_request(signal);
            let b = Generator::new(config).next_request(signal);
            assert_eq!(a, b);
            assert_eq!(a.item_count(), 57, "{signal}");
        }
    }

    #[test]
    fn metrics_requests_hold_every_type() {
        use otlp2parquet_core::convert::convert;
        let request = Generator::new(GeneratorConfig {
            records_per_request: 100,
            ..Default::default()
        })
        .next_request(Signal::Metrics);
        let converted = convert(request).unwrap();
        let tables: Vec<_> = converted.batches.iter().map(|(t, _)| *t).collect();
        assert_eq!(tables, Signal::Metrics.tables());
    }

    #[test]
    fn different_seeds_differ() {
        let a = Generator::new(GeneratorConfig::default()).next_request(Signal::Logs);
        let b = Generator::new(GeneratorConfig {
            seed: 7,
            ..Default::default()
        })
        .next_request(Signal::Logs);
        assert_ne!(a, b);
    }
}
