//! Any bytes as a gzip body with a small cap: decompression errors or respects
//! the cap, and whatever comes out decodes or fails cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp2parquet_core::Signal;
use otlp2parquet_core::otlp::{Compression, DecodeLimits, Format, decode};

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits {
        max_decoded_bytes: 64 * 1024,
    };
    for format in [Format::Protobuf, Format::Json] {
        let _ = decode(Signal::Logs, format, Compression::Gzip, data, limits);
    }
});
