//! Describing a written Parquet file as an Iceberg `DataFile`, from its footer.
//!
//! The catalog needs more than a path: record count, sizes, value and null
//! counts, lower/upper bounds and the day partition, so that query engines can
//! prune files without opening them. The `iceberg` crate builds these only
//! inside its own writer stack, so files written here are described from the
//! statistics in their Parquet footers.

use std::collections::HashMap;

use iceberg::ErrorKind;
use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, Literal, PrimitiveType,
    Struct, Type,
};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

use crate::partition::day_of;
use crate::schema::{TableDefinition, time_column};
use crate::{Error, Result, Table};

/// A column chunk's min or max as an Iceberg datum, when the statistic is exact.
fn datum(ty: &PrimitiveType, stats: &Statistics, max: bool) -> Option<Datum> {
    let exact = if max {
        stats.max_is_exact()
    } else {
        stats.min_is_exact()
    };
    if !exact {
        return None;
    }
    macro_rules! pick {
        ($s:expr) => {
            if max { $s.max_opt() } else { $s.min_opt() }
        };
    }
    match (ty, stats) {
        (PrimitiveType::String, Statistics::ByteArray(s)) => {
            pick!(s).and_then(|v| v.as_utf8().ok()).map(Datum::string)
        }
        (PrimitiveType::Long, Statistics::Int64(s)) => pick!(s).map(|v| Datum::long(*v)),
        (PrimitiveType::Timestamptz, Statistics::Int64(s)) => {
            pick!(s).map(|v| Datum::timestamptz_micros(*v))
        }
        (PrimitiveType::Int, Statistics::Int32(s)) => pick!(s).map(|v| Datum::int(*v)),
        (PrimitiveType::Double, Statistics::Double(s)) => pick!(s).map(|v| Datum::double(*v)),
        (PrimitiveType::Boolean, Statistics::Boolean(s)) => pick!(s).map(|v| Datum::bool(*v)),
        _ => None,
    }
}

fn keep_lower(a: Datum, b: Datum) -> Datum {
    if b < a { b } else { a }
}

fn keep_upper(a: Datum, b: Datum) -> Datum {
    if b > a { b } else { a }
}

/// Describes a Parquet file of `table` for the catalog, from the file's footer.
///
/// Column sizes, value counts and null counts are recorded for every column;
/// lower and upper bounds for top-level primitive columns (what engines prune on).
/// The file must hold a single day of the table's time column ([`crate::partition::split_by_day`]).
pub fn data_file(
    table: Table,
    file_path: String,
    file_size_in_bytes: u64,
    metadata: &ParquetMetaData,
) -> Result<DataFile> {
    let def = TableDefinition::get(table);
    let mut column_sizes: HashMap<i32, u64> = HashMap::new();
    let mut value_counts: HashMap<i32, u64> = HashMap::new();
    let mut null_counts: HashMap<i32, u64> = HashMap::new();
    let mut lower: HashMap<i32, Datum> = HashMap::new();
    let mut upper: HashMap<i32, Datum> = HashMap::new();
    for row_group in metadata.row_groups() {
        for chunk in row_group.columns() {
            let info = chunk.column_descr().self_type().get_basic_info();
            if !info.has_id() {
                continue;
            }
            let id = info.id();
            *column_sizes.entry(id).or_default() += chunk.compressed_size() as u64;
            *value_counts.entry(id).or_default() += chunk.num_values() as u64;
            let Some(stats) = chunk.statistics() else {
                continue;
            };
            if let Some(nulls) = stats.null_count_opt() {
                *null_counts.entry(id).or_default() += nulls;
            }
            // Bounds only for top-level columns: nested leaves repeat per element.
            let Some(field) = def.schema.as_struct().field_by_id(id) else {
                continue;
            };
            let Type::Primitive(ty) = field.field_type.as_ref() else {
                continue;
            };
            if let Some(min) = datum(ty, stats, false) {
                let merged = match lower.remove(&id) {
                    Some(prev) => keep_lower(prev, min),
                    None => min,
                };
                lower.insert(id, merged);
            }
            if let Some(max) = datum(ty, stats, true) {
                let merged = match upper.remove(&id) {
                    Some(prev) => keep_upper(prev, max),
                    None => max,
                };
                upper.insert(id, merged);
            }
        }
    }

    let record_count = metadata.file_metadata().num_rows() as u64;
    let time_id = def
        .schema
        .field_by_name(time_column(table))
        .map(|f| f.id)
        .unwrap_or_default();
    let micros = |d: Option<&Datum>| match d.map(|d| d.literal()) {
        Some(iceberg::spec::PrimitiveLiteral::Long(v)) => Some(*v),
        _ => None,
    };
    let day = match (micros(lower.get(&time_id)), micros(upper.get(&time_id))) {
        (Some(lo), Some(hi)) if day_of(lo) == day_of(hi) => Some(day_of(lo)),
        (None, None) if null_counts.get(&time_id) == Some(&record_count) => None,
        (lo, hi) => {
            return Err(Error::Iceberg(iceberg::Error::new(
                ErrorKind::DataInvalid,
                format!(
                    "{file_path}: a data file must hold one day of {}, found bounds {lo:?}..{hi:?}",
                    time_column(table)
                ),
            )));
        }
    };
    let partition = Struct::from_iter([day.map(Literal::date)]);

    let mut builder = DataFileBuilder::default();
    builder
        .content(DataContentType::Data)
        .file_path(file_path)
        .file_format(DataFileFormat::Parquet)
        .partition(partition)
        .partition_spec_id(def.partition_spec.spec_id())
        .record_count(record_count)
        .file_size_in_bytes(file_size_in_bytes)
        .column_sizes(column_sizes)
        .value_counts(value_counts)
        .null_value_counts(null_counts)
        .lower_bounds(lower)
        .upper_bounds(upper)
        .split_offsets(Some(
            metadata
                .row_groups()
                .iter()
                .filter_map(|rg| rg.file_offset())
                .collect(),
        ));
    builder.build().map_err(|e| {
        Error::Iceberg(iceberg::Error::new(
            ErrorKind::DataInvalid,
            format!("building the data file description: {e}"),
        ))
    })
}
