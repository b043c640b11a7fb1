//! `otlp2parquet generate`: deterministic synthetic OTLP export requests.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, bail};
use otlp2parquet_core::otlp::ExportRequest;
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use tracing::info;

use crate::flags::{GenerateArgs, OutputFormat};

fn encode(request: &ExportRequest, format: OutputFormat) -> Vec<u8> {
    match format {
        OutputFormat::Pb => request.encode_protobuf(),
        OutputFormat::Json | OutputFormat::Jsonl => request.encode_json(),
    }
}

fn open(path: &Path, gzip: bool) -> anyhow::Result<Box<dyn Write>> {
    let sink: Box<dyn Write> = if path == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
    };
    let sink = BufWriter::new(sink);
    Ok(if gzip {
        Box::new(flate2::write::GzEncoder::new(
            sink,
            flate2::Compression::default(),
        ))
    } else {
        Box::new(sink)
    })
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    if args.requests == 0 {
        bail!("--requests must be at least 1");
    }
    let mut generator = Generator::new(GeneratorConfig {
        seed: args.seed,
        records_per_request: args.records,
        services: args.services,
        attribute_cardinality: args.cardinality,
        body_bytes: args.body_bytes,
        ..Default::default()
    });
    let mut bytes = 0usize;
    let one_file = args.requests == 1 || matches!(args.format, OutputFormat::Jsonl);
    if one_file {
        let mut out = open(&args.out, args.gzip)?;
        for _ in 0..args.requests {
            let body = encode(&generator.next_request(args.signal), args.format);
            bytes += body.len();
            out.write_all(&body)?;
            if matches!(args.format, OutputFormat::Jsonl) {
                out.write_all(b"\n")?;
            }
        }
        out.flush()?;
    } else {
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        let ext = match args.format {
            OutputFormat::Pb => "pb",
            _ => "json",
        };
        for i in 0..args.requests {
            let body = encode(&generator.next_request(args.signal), args.format);
            bytes += body.len();
            let gz = if args.gzip { ".gz" } else { "" };
            let path = args.out.join(format!("{}-{i:05}.{ext}{gz}", args.signal));
            let mut out = open(&path, args.gzip)?;
            out.write_all(&body)?;
            out.flush()?;
        }
    }
    info!(
        signal = %args.signal,
        requests = args.requests,
        records = args.requests * args.records,
        uncompressed_bytes = bytes,
        out = %args.out.display(),
        "generated"
    );
    Ok(())
}
