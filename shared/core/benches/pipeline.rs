//! Throughput of decode → Arrow → Parquet per signal and encoding, against the
//! decode-only floor (prost into the generated structs) of the same payload.
//!
//! Payloads are 1,000-record export requests from the seeded generator — about
//! what an OpenTelemetry Collector's batch processor sends. Throughput is reported
//! in records (log records, spans, data points) per second on one core.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use otlp2parquet_core::Signal;
use otlp2parquet_core::convert::convert;
use otlp2parquet_core::otlp::{self, Compression, DecodeLimits, ExportRequest, Format};
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::schema::TableDefinition;
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use prost::Message;

fn to_parquet(request: ExportRequest, writer: &ParquetWriterBuilder) -> usize {
    let converted = convert(request).expect("generated data converts");
    let mut bytes = 0;
    for (table, batch) in &converted.batches {
        let schema = TableDefinition::get(*table).arrow_schema.clone();
        bytes += writer
            .write(schema, std::slice::from_ref(batch), Vec::new())
            .expect("parquet write")
            .len();
    }
    bytes
}

fn decode_only(signal: Signal, body: &[u8]) {
    use opentelemetry_proto::tonic::collector as c;
    match signal {
        Signal::Logs => drop(c::logs::v1::ExportLogsServiceRequest::decode(body).unwrap()),
        Signal::Traces => drop(c::trace::v1::ExportTraceServiceRequest::decode(body).unwrap()),
        Signal::Metrics => drop(c::metrics::v1::ExportMetricsServiceRequest::decode(body).unwrap()),
    }
}

fn pipeline(c: &mut Criterion) {
    let writer = ParquetWriterBuilder::new();
    for signal in Signal::ALL {
        let request = Generator::new(GeneratorConfig::default()).next_request(signal);
        let records = request.item_count() as u64;
        let protobuf = request.encode_protobuf();
        let json = request.encode_json();
        let mut group = c.benchmark_group(signal.as_str());
        group.throughput(Throughput::Elements(records));
        group.bench_function(
            BenchmarkId::new(
                "decode_only",
                format!("protobuf_{}KB", protobuf.len() / 1024),
            ),
            |b| b.iter(|| decode_only(signal, &protobuf)),
        );
        for (format, body) in [(Format::Protobuf, &protobuf), (Format::Json, &json)] {
            let name = format!("{format:?}_{}KB", body.len() / 1024).to_lowercase();
            group.bench_function(BenchmarkId::new("to_parquet", name), |b| {
                b.iter(|| {
                    let request = otlp::decode(
                        signal,
                        format,
                        Compression::None,
                        body,
                        DecodeLimits::default(),
                    )
                    .unwrap();
                    to_parquet(request, &writer)
                })
            });
        }
        // The two halves of the protobuf path, to see where time goes.
        group.bench_function("convert_only", |b| {
            b.iter_batched(
                || request.clone(),
                |r| convert(r).unwrap(),
                BatchSize::LargeInput,
            )
        });
        let converted = convert(request.clone()).unwrap();
        group.bench_function("parquet_only", |b| {
            b.iter(|| {
                for (table, batch) in &converted.batches {
                    let schema = TableDefinition::get(*table).arrow_schema.clone();
                    writer
                        .write(schema, std::slice::from_ref(batch), Vec::new())
                        .unwrap();
                }
            })
        });
        group.finish();
    }
}

/// The same protobuf path with 10,000-record requests: how far a larger file
/// amortizes the per-file and per-column cost of Parquet (see the README).
fn larger_batches(c: &mut Criterion) {
    let writer = ParquetWriterBuilder::new();
    let mut group = c.benchmark_group("batch_10k");
    for signal in Signal::ALL {
        let request = Generator::new(GeneratorConfig {
            records_per_request: 10_000,
            ..Default::default()
        })
        .next_request(signal);
        group.throughput(Throughput::Elements(request.item_count() as u64));
        let protobuf = request.encode_protobuf();
        group.bench_function(BenchmarkId::new("decode_only", signal.as_str()), |b| {
            b.iter(|| decode_only(signal, &protobuf))
        });
        group.bench_function(
            BenchmarkId::new("protobuf_to_parquet", signal.as_str()),
            |b| {
                b.iter(|| {
                    let request = otlp::decode(
                        signal,
                        Format::Protobuf,
                        Compression::None,
                        &protobuf,
                        DecodeLimits::default(),
                    )
                    .unwrap();
                    to_parquet(request, &writer)
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = pipeline, larger_batches
}
criterion_main!(benches);
