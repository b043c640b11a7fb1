//! `otlp2parquet convert`: OTLP files to one Parquet file per table.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use arrow::array::RecordBatch;
use iceberg::NamespaceIdent;
use otlp2parquet_core::convert::{Rejections, convert_with};
use otlp2parquet_core::datafile::data_file;
use otlp2parquet_core::otlp::DecodeLimits;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::partition::{partition_path, split_by_day};
use otlp2parquet_core::schema::TableDefinition;
use otlp2parquet_core::{Table, convert::Converted};
use otlp2parquet_iceberg::catalog::{append_once, ensure_table, local_path, open_local_catalog};
use tracing::{info, warn};
use uuid::Uuid;

use crate::flags::ConvertArgs;
use crate::input::read_requests;

pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let limits = DecodeLimits {
        max_decoded_bytes: args.max_decoded_bytes,
    };
    let conversion_limits = args.attribute_limits.limits();
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
            } = convert_with(request, &conversion_limits)
                .with_context(|| format!("converting {}", path.display()))?;
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

    if tables.is_empty() {
        warn!("the input held no records: nothing was written");
        return Ok(());
    }
    match (&args.out, &args.warehouse) {
        (Some(out), _) => write_plain(&tables, out)?,
        (None, Some(warehouse)) => commit_to_warehouse(&tables, warehouse, &args.namespace)?,
        (None, None) => unreachable!("clap requires --out or --warehouse"),
    }
    info!(
        requests,
        tables = tables.len(),
        rejected = rejected.count,
        "conversion finished"
    );
    Ok(())
}

/// Plain Parquet mode: one `<table>.parquet` per table in `out`.
fn write_plain(tables: &BTreeMap<Table, Vec<RecordBatch>>, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating output directory {}", out.display()))?;
    let writer = ParquetWriterBuilder::new();
    for (table, batches) in tables {
        let path = out.join(format!("{}.parquet", table.name()));
        let schema = TableDefinition::get(*table).arrow_schema.clone();
        let (_, bytes) = writer
            .write_file(schema, batches, &path)
            .with_context(|| format!("writing {}", path.display()))?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        info!(table = table.name(), rows, bytes, path = %path.display(), "wrote table");
    }
    Ok(())
}

/// Iceberg mode: one file per table and day under the table's location, then one
/// append per table to the embedded catalog.
fn commit_to_warehouse(
    tables: &BTreeMap<Table, Vec<RecordBatch>>,
    warehouse: &Path,
    namespace: &str,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let catalog = open_local_catalog(warehouse)
            .await
            .with_context(|| format!("opening the catalog in {}", warehouse.display()))?;
        let namespace = NamespaceIdent::new(namespace.to_string());
        let writer = ParquetWriterBuilder::new();
        for (table, batches) in tables {
            let iceberg_table = ensure_table(&catalog, &namespace, *table).await?;
            let location = local_path(iceberg_table.metadata().location());
            let schema = TableDefinition::get(*table).arrow_schema.clone();
            let mut by_day: BTreeMap<Option<i32>, Vec<RecordBatch>> = BTreeMap::new();
            for batch in batches {
                for (day, part) in split_by_day(*table, batch)? {
                    by_day.entry(day).or_default().push(part);
                }
            }
            let mut files = Vec::new();
            for (day, parts) in by_day {
                let dir = location.join("data").join(partition_path(*table, day));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let path = dir.join(format!("{}.parquet", Uuid::now_v7()));
                let (metadata, size) = writer
                    .write_file(schema.clone(), &parts, &path)
                    .with_context(|| format!("writing {}", path.display()))?;
                files.push(data_file(
                    *table,
                    path.display().to_string(),
                    size,
                    &metadata,
                )?);
            }
            let ident = iceberg_table.identifier().clone();
            let rows: u64 = files.iter().map(|f| f.record_count()).sum();
            let count = files.len();
            let outcome = append_once(&catalog, &ident, files, Uuid::now_v7()).await?;
            info!(table = %ident, rows, files = count, ?outcome, "committed");
        }
        anyhow::Ok(())
    })
}
