//! The Parquet files carry the Iceberg field id on every column, nested ones included.
//!
//! Iceberg readers map Parquet columns to table columns by field id; a file without
//! ids is read as all-NULL by DuckDB, silently. This test writes a file for every
//! table and compares every (id, name) pair in its Parquet schema with the Iceberg
//! schema's, and checks the files' statistics and compression settings.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use iceberg::spec::{NestedFieldRef, Type};
use otlp2parquet_core::Signal;
use otlp2parquet_core::convert::convert;
use otlp2parquet_core::schema::TableDefinition;
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use parquet::basic::Compression;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::serialized_reader::ReadOptionsBuilder;
use parquet::schema::types::Type as ParquetType;

fn iceberg_ids(fields: &[NestedFieldRef], out: &mut BTreeSet<(i32, String)>) {
    for field in fields {
        out.insert((field.id, field.name.clone()));
        match field.field_type.as_ref() {
            Type::Struct(s) => iceberg_ids(s.fields(), out),
            Type::List(l) => iceberg_ids(std::slice::from_ref(&l.element_field), out),
            Type::Map(m) => iceberg_ids(&[m.key_field.clone(), m.value_field.clone()], out),
            Type::Primitive(_) => {}
        }
    }
}

fn parquet_ids(node: &Arc<ParquetType>, out: &mut BTreeSet<(i32, String)>) {
    let info = node.get_basic_info();
    if info.has_id() {
        out.insert((info.id(), info.name().to_string()));
    }
    if node.is_group() {
        for child in node.get_fields() {
            parquet_ids(child, out);
        }
    }
}

#[test]
fn parquet_field_ids_equal_iceberg_field_ids() {
    let mut tables_seen = 0;
    for signal in Signal::ALL {
        let request = Generator::new(GeneratorConfig {
            records_per_request: 100,
            ..Default::default()
        })
        .next_request(signal);
        for (table, batch) in convert(request).unwrap().batches {
            let (bytes, _) = support::parquet_round_trip(table, &batch);
            let options = ReadOptionsBuilder::new().with_page_index().build();
            let reader = SerializedFileReader::new_with_options(bytes, options).unwrap();
            let metadata = reader.metadata();

            let mut in_parquet = BTreeSet::new();
            for field in metadata
                .file_metadata()
                .schema_descr()
                .root_schema()
                .get_fields()
            {
                parquet_ids(field, &mut in_parquet);
            }
            let mut in_iceberg = BTreeSet::new();
            iceberg_ids(
                TableDefinition::get(table).schema.as_struct().fields(),
                &mut in_iceberg,
            );
            assert_eq!(in_parquet, in_iceberg, "{table}");

            // zstd everywhere, and statistics on every column chunk.
            for rg in metadata.row_groups() {
                for column in rg.columns() {
                    assert!(
                        matches!(column.compression(), Compression::ZSTD(_)),
                        "{table}"
                    );
                    assert!(
                        column.statistics().is_some(),
                        "{table}: {}",
                        column.column_path()
                    );
                }
            }
            assert!(
                metadata.column_index().is_some(),
                "{table}: page index missing"
            );
            tables_seen += 1;
        }
    }
    assert_eq!(tables_seen, 7);
}
