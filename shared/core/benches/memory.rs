//! Peak heap while converting one ~10 MiB protobuf export request to Parquet.
//!
//! A counting global allocator records the high-water mark of live heap bytes.
//! The request body is allocated before measuring starts; the figure reported is
//! the peak above that baseline (decoded structs + Arrow arrays + Parquet buffers
//! + the finished file), divided by the body's size. Target: ≤ 4×.

use std::sync::atomic::Ordering;

use otlp2parquet_core::Signal;
use otlp2parquet_core::convert::convert;
use otlp2parquet_core::otlp::{self, Compression, DecodeLimits, ExportRequest, Format};
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::schema::TableDefinition;
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};

use otlp2parquet_testkit::alloc as common;

use common::{Counting, LIVE, PEAK};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TARGET_BYTES: usize = 10 * 1024 * 1024;

fn encode(request: &ExportRequest, format: Format) -> Vec<u8> {
    match format {
        Format::Protobuf => request.encode_protobuf(),
        Format::Json => request.encode_json(),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    println!(
        "| signal | format | request | records | decoded request alone | peak heap above the body | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for signal in Signal::ALL {
        for format in [Format::Protobuf, Format::Json] {
            let probe = Generator::new(GeneratorConfig::default()).next_request(signal);
            let per_record = encode(&probe, format).len() / probe.item_count();
            let request = Generator::new(GeneratorConfig {
                records_per_request: TARGET_BYTES / per_record,
                ..Default::default()
            })
            .next_request(signal);
            let body = encode(&request, format);
            drop((probe, request));

            let baseline = LIVE.load(Ordering::Relaxed);
            PEAK.store(baseline, Ordering::Relaxed);
            let decoded = otlp::decode(
                signal,
                format,
                Compression::None,
                &body,
                DecodeLimits::default(),
            )
            .unwrap();
            // What the decoded request alone holds, before conversion frees it.
            let decoded_bytes = LIVE.load(Ordering::Relaxed) - baseline;
            let records = decoded.item_count();
            let converted = convert(decoded).unwrap();
            let mut files = Vec::new();
            for (table, batch) in &converted.batches {
                let schema = TableDefinition::get(*table).arrow_schema.clone();
                files.push(
                    ParquetWriterBuilder::new()
                        .write(schema, std::slice::from_ref(batch), Vec::new())
                        .unwrap(),
                );
            }
            let peak = PEAK.load(Ordering::Relaxed) - baseline;
            drop((converted, files));
            println!(
                "| {signal} | {format:?} | {:.1} MiB | {records} | {:.1} MiB ({:.1}×) | {:.1} MiB | {:.2}× |",
                body.len() as f64 / 1048576.0,
                decoded_bytes as f64 / 1048576.0,
                decoded_bytes as f64 / body.len() as f64,
                peak as f64 / 1048576.0,
                peak as f64 / body.len() as f64
            );
        }
    }
}
