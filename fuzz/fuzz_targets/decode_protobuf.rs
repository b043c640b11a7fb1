//! Any bytes, decoded as OTLP protobuf of every signal: an error or a request that
//! converts, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otlp2parquet_core::Signal;
use otlp2parquet_core::convert::convert;
use otlp2parquet_core::otlp::{Format, decode_body};

fuzz_target!(|data: &[u8]| {
    for signal in Signal::ALL {
        if let Ok(request) = decode_body(signal, Format::Protobuf, data) {
            convert(request).expect("a decoded request always converts");
        }
    }
});
