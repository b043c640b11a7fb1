//! `otlp2parquet convert`: OTLP files to one Parquet file per table.

use std::collections::BTreeMap;

use anyhow::Context;
use arrow::array::RecordBatch;
use otlp2parquet_shared::convert::{Rejections, convert};
use otlp2parquet_shared::otlp::DecodeLimits;
use otlp2parquet_shared::parquet::ParquetWriterBuilder;
use otlp2parquet_shared::schema::TableDefinition;
use otlp2parquet_shared::{Table, convert::Converted};
use tracing::{info, warn};

use crate::flags::ConvertArgs;
use crate::input::read_requests;

pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let limits = DecodeLimits {
        max_decoded_bytes: args.max_decoded_bytes,
    };
    // Decode and convert everything first: an error in the last file must not
    // leave the first file's tables half written.
    let mut tables: BTreeMap<Table, Vec<RecordBatch>> = BTreeMap::new();
    let mut rejected = Rejections::default();
    let mut requests = 0usize;
    for path in &args.inputs {
        for request in read_requests(path, args.signal, limits)? {
            requests += 1;
            let Converted {
                batches,
                rejections,
            } = convert(request).with_context(|| format!("converting {}", path.display()))?;
            for (table, batch) in batches {
                tables.entry(table).or_default().push(batch);
            }
            if rejections.count > 0 {
                warn!(
                    file = %path.display(),
                    rejected = rejections.count,
                    "{}",
                    rejections.error_message()
                );
            }
            rejected.count += rejections.count;
        }
    }

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating output directory {}", args.out.display()))?;
    let writer = ParquetWriterBuilder::new();
    for (table, batches) in &tables {
        let path = args.out.join(format!("{}.parquet", table.name()));
        let schema = TableDefinition::get(*table).arrow_schema.clone();
        writer
            .write_file(schema, batches, &path)
            .with_context(|| format!("writing {}", path.display()))?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        info!(table = table.name(), rows, bytes, path = %path.display(), "wrote table");
    }
    info!(
        requests,
        tables = tables.len(),
        rejected = rejected.count,
        out = %args.out.display(),
        "conversion finished"
    );
    if tables.is_empty() {
        warn!("the input held no records: nothing was written");
    }
    Ok(())
}
