//! Data files for catalog tests: generated log records written as Parquet
//! into a table's own location, through the table's own file IO, and
//! described as the `DataFile`s a compaction would announce.

use iceberg::spec::DataFile;
use otlp2parquet_core::convert::convert;
use otlp2parquet_core::datafile::data_file;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::partition::{partition_path, split_by_day};
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
