//! Cost of hostile requests: small bodies built to make conversion slow or big.
//!
//! Each request goes through what ingest does with it (the wire-level size
//! check, decode, convert, encode Parquet) and the bench reports wall time and peak heap above the body
//! (counting allocator), against the bounds the receiver promises:
//!
//! - one log record with 200,000 distinct attributes (about 4 MiB): answered in
//!   well under a second, peak ≤ 256 MiB — with the default attribute cap
//!   (1,024 kept, the rest counted as dropped) and with the cap lifted, which
//!   stores all 200,000 and measures the conversion itself;
//! - 10,000 resource attributes over 10,000 records: within 8× the body.
//!
//! Run: `cargo bench -p otlp2parquet-core --bench hostile`.

use std::sync::atomic::Ordering;
use std::time::Instant;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use otlp2parquet_core::Signal;
use otlp2parquet_core::convert::{Limits, convert_with, refuse_before_decoding};
use otlp2parquet_core::otlp::{self, Compression, DecodeLimits, ExportRequest, Format};
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::schema::TableDefinition;
use otlp2parquet_testkit::alloc::{Counting, LIVE, PEAK};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn attribute(i: usize) -> KeyValue {
    KeyValue {
        key: format!("k{i:06}"),
        value: Some(AnyValue {
            value: Some(Value::StringValue(format!("v{i}"))),
        }),
        ..Default::default()
    }
}

fn record(i: usize, attributes: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_767_225_600_000_000_000 + i as u64,
        body: Some(AnyValue {
            value: Some(Value::StringValue(format!("record {i}"))),
        }),
        attributes,
        ..Default::default()
    }
}

fn request(resource_attributes: usize, records: usize, record_attributes: usize) -> Vec<u8> {
    ExportRequest::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: (0..resource_attributes).map(attribute).collect(),
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: (0..records)
                    .map(|i| record(i, (0..record_attributes).map(attribute).collect()))
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
    .encode_protobuf()
}

/// Peak resident set size of this process so far (Linux `VmHWM`), in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Builds a request body when its case runs, so that only one is alive at a time.
type MakeBody = fn() -> Vec<u8>;

fn main() {
    println!(
        "| request | body | outcome | seconds | peak heap above the body | ratio | peak RSS of the process |"
    );
    println!("|---|---|---|---|---|---|---|");
    // The 200,000-attribute request first: the process's peak RSS is then its own.
    let uncapped = Limits::default()
        .with_max_attributes(usize::MAX)
        .with_max_attribute_values(usize::MAX);
    let cases: [(&str, MakeBody, Limits); 3] = [
        (
            "1 log record, 200,000 distinct attributes, cap lifted",
            || request(0, 1, 200_000),
            uncapped,
        ),
        (
            "1 log record, 200,000 distinct attributes, default cap",
            || request(0, 1, 200_000),
            Limits::default(),
        ),
        (
            "10,000 resource attributes, 10,000 records",
            || request(10_000, 10_000, 0),
            Limits::default(),
        ),
    ];
    for (name, make, limits) in cases {
        let body = make();
        let baseline = LIVE.load(Ordering::Relaxed);
        PEAK.store(baseline, Ordering::Relaxed);
        let start = Instant::now();
        // As the receiver does: the wire-level check, then decoding.
        let converted = refuse_before_decoding(Signal::Logs, &body, &limits).and_then(|()| {
            let decoded = otlp::decode(
                Signal::Logs,
                Format::Protobuf,
                Compression::None,
                &body,
                DecodeLimits::default(),
            )?;
            convert_with(decoded, &limits)
        });
        let outcome = match converted {
            Ok(converted) => {
                let mut files = Vec::new();
                for (table, batch) in &converted.batches {
                    let schema = TableDefinition::get(*table).arrow_schema.clone();
                    files.push(
                        ParquetWriterBuilder::new()
                            .write(schema, std::slice::from_ref(batch), Vec::new())
                            .unwrap(),
                    );
                }
                format!("{} record(s) stored", converted.rows())
            }
            Err(e) if e.is_bad_input() => format!("refused (413): {e}"),
            Err(e) => panic!("{name}: {e}"),
        };
        let seconds = start.elapsed().as_secs_f64();
        let peak = PEAK.load(Ordering::Relaxed) - baseline;
        println!(
            "| {name} | {:.2} MiB | {} | {seconds:.3} | {:.1} MiB | {:.1}× | {:.0} MiB |",
            body.len() as f64 / 1048576.0,
            outcome.split(':').next().unwrap_or_default(),
            peak as f64 / 1048576.0,
            peak as f64 / body.len() as f64,
            peak_rss() as f64 / 1048576.0,
        );
    }
}
