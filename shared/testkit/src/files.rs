//! Data files for catalog and commit tests: generated log records written as
//! Parquet into a table's own location, and described as the `DataFile`s (or
//! the "data files ready" message) a compaction would announce.

use std::collections::BTreeMap;
use std::path::Path;

use iceberg::spec::{DataFile, FormatVersion, serialize_data_file_to_json};
use otlp2parquet_core::convert::convert;
use otlp2parquet_core::datafile::data_file;
use otlp2parquet_core::messages::DataFilesReady;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::partition::{partition_path, split_by_day};
use otlp2parquet_core::ports::ReceivedMessage;
use otlp2parquet_core::schema::TableDefinition;
use otlp2parquet_core::{Signal, Table};

use crate::generate::{Generator, GeneratorConfig};

/// `records` generated log records as Parquet files (one per day) under
/// `<table location>/data/<partition>/`, ready to append to `table` (the
/// logs table).
///
/// # Panics
/// When a file cannot be written: this is for tests.
pub async fn log_data_files(table: &iceberg::table::Table, records: usize) -> Vec<DataFile> {
    let request = Generator::new(GeneratorConfig {
        records_per_request: records,
        ..GeneratorConfig::default()
    })
    .next_request(Signal::Logs);
    let (_, batch) = convert(request).expect("converting").batches.remove(0);
    let mut files = Vec::new();
    for (day, part) in split_by_day(Table::Logs, &batch).expect("splitting by day") {
        let bytes = ParquetWriterBuilder::new()
            .write(
                TableDefinition::get(Table::Logs).arrow_schema.clone(),
                &[part],
                Vec::new(),
            )
            .expect("encoding Parquet");
        let path = format!(
            "{}/data/{}/{}.parquet",
            table.metadata().location(),
            partition_path(Table::Logs, day),
            uuid::Uuid::now_v7()
        );
        let bytes = bytes::Bytes::from(bytes);
        table
            .file_io()
            .new_output(&path)
            .expect("an output file")
            .write(bytes.clone())
            .await
            .expect("writing a data file");
        let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .expect("reading the footer back");
        files
            .push(data_file(Table::Logs, path, bytes.len() as u64, &metadata).expect("a DataFile"));
    }
    files
}

/// A "data files ready" message for compaction `compaction-<n>` of the logs
/// table: `rows` generated log records (seed `n`) in Parquet files written
/// under `location` (a local table location), as a compactor would send it.
///
/// # Panics
/// When a file cannot be written: this is for tests.
pub fn data_files_ready(location: &Path, n: u64, rows: usize) -> ReceivedMessage {
    let request = Generator::new(GeneratorConfig {
        seed: n,
        records_per_request: rows,
        ..Default::default()
    })
    .next_request(Signal::Logs);
    let def = TableDefinition::get(Table::Logs);
    let partition_type = def
        .partition_spec
        .partition_type(&def.schema)
        .expect("the partition type");
    let mut ready = DataFilesReady {
        table: "logs".into(),
        compaction: format!("compaction-{n}"),
        rows: 0,
        data_files: Vec::new(),
    };
    for (_, batch) in convert(request).expect("converting").batches {
        for (day, part) in split_by_day(Table::Logs, &batch).expect("splitting by day") {
            let dir = location.join("data").join(partition_path(Table::Logs, day));
            std::fs::create_dir_all(&dir).expect("a data directory");
            let path = dir.join(format!("{n}-{}.parquet", uuid::Uuid::new_v4()));
            let (metadata, size) = ParquetWriterBuilder::new()
                .write_file(def.arrow_schema.clone(), &[part], &path)
                .expect("writing a data file");
            let file = data_file(Table::Logs, path.display().to_string(), size, &metadata)
                .expect("a DataFile");
            ready.rows += file.record_count();
            ready.data_files.push(
                serialize_data_file_to_json(file, &partition_type, FormatVersion::V2)
                    .expect("a DataFile as JSON"),
            );
        }
    }
    ReceivedMessage {
        id: format!("message-{n}"),
        receipt: format!("receipt-{n}"),
        body: serde_json::to_vec(&ready).expect("a message body"),
        receive_count: 1,
        attributes: BTreeMap::new(),
        group_id: Some("otel.logs".into()),
        sent_at: None,
    }
}
