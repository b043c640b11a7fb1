//! Reading OTLP files from disk: format from the extension, gzip from the content.

use std::path::Path;

use anyhow::{Context, bail};
use otlp2parquet_core::Signal;
use otlp2parquet_core::otlp::{self, Compression, DecodeLimits, ExportRequest, Format};

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// How a file's requests are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One protobuf request.
    Protobuf,
    /// One JSON request.
    Json,
    /// One JSON request per non-empty line.
    JsonLines,
}

fn layout(path: &Path) -> anyhow::Result<Layout> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    Ok(
        if name.ends_with(".pb") || name.ends_with(".binpb") || name.ends_with(".protobuf") {
            Layout::Protobuf
        } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            Layout::JsonLines
        } else if name.ends_with(".json") {
            Layout::Json
        } else {
            bail!(
                "{}: cannot tell the format from the name; use .pb (protobuf), .json or .jsonl (OTLP JSON), optionally with .gz",
                path.display()
            )
        },
    )
}

/// Reads every export request in `path`.
pub fn read_requests(
    path: &Path,
    signal: Signal,
    limits: DecodeLimits,
) -> anyhow::Result<Vec<ExportRequest>> {
    let layout = layout(path)?;
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let compression = if raw.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else {
        Compression::None
    };
    let body = otlp::decompress(&raw, compression, limits)
        .with_context(|| format!("decompressing {}", path.display()))?;
    match layout {
        Layout::Protobuf | Layout::Json => {
            let format = if layout == Layout::Json {
                Format::Json
            } else {
                Format::Protobuf
            };
            let request = otlp::decode_body(signal, format, &body)
                .with_context(|| format!("decoding {}", path.display()))?;
            Ok(vec![request])
        }
        Layout::JsonLines => body
            .split(|&b| b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .map(|(i, line)| {
                otlp::decode_body(signal, Format::Json, line)
                    .with_context(|| format!("decoding {} line {}", path.display(), i + 1))
            })
            .collect(),
    }
}
