//! Iceberg tables in a catalog: created on first use, appended to exactly once.
//!
//! Every deployment commits through the `iceberg` crate's `Catalog` trait, so the
//! embedded SQLite catalog, a REST catalog and S3 Tables differ only in how the
//! catalog is built. Two things here are this project's own:
//!
//! - [`data_file`] describes a Parquet file we wrote (record count, sizes, value and
//!   null counts, lower/upper bounds, the day partition) from its footer, so that
//!   query engines can prune files without opening them.
//! - [`append_once`] makes an append idempotent: each append carries a commit id in
//!   its snapshot summary, and an append whose id is already in the table's history
//!   is not repeated. A caller that crashed or lost its connection after a commit
//!   may have happened simply retries with the same id.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::TimestampMicrosecondType;
use iceberg::io::LocalFsStorageFactory;
use iceberg::spec::{
    DataContentType, DataFile, DataFileBuilder, DataFileFormat, Datum, Literal, PrimitiveType,
    Struct, Type,
};
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, CatalogBuilder, ErrorKind, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{SqlCatalog, SqlCatalogBuilder};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;
use uuid::Uuid;

use crate::schema::{TableDefinition, time_column};
use crate::{Error, Result, Table};

/// The namespace tables are created in unless configured otherwise.
pub const DEFAULT_NAMESPACE: &str = "otel";
/// The catalog name stored in the SQL catalog's rows: PyIceberg must open the
/// catalog under this same name, or it sees no tables.
pub const CATALOG_NAME: &str = "otlp2parquet";
/// The SQLite file of the embedded catalog, inside the warehouse directory.
pub const CATALOG_FILE: &str = "catalog.db";
/// Snapshot summary property holding the id of the append that made the snapshot.
pub const COMMIT_ID_PROPERTY: &str = "otlp2parquet.commit-id";

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Opens (creating if needed) the embedded catalog: SQLite in `warehouse/catalog.db`,
/// table data under `warehouse/<namespace>/<table>/`.
pub async fn open_local_catalog(warehouse: &Path) -> Result<SqlCatalog> {
    std::fs::create_dir_all(warehouse).map_err(|source| Error::Io {
        path: warehouse.to_path_buf(),
        source,
    })?;
    let warehouse = warehouse.canonicalize().map_err(|source| Error::Io {
        path: warehouse.to_path_buf(),
        source,
    })?;
    let db = warehouse.join(CATALOG_FILE);
    let props = HashMap::from([
        // Four slashes for an absolute path; `mode=rwc` lets sqlx create the file.
        (
            "uri".to_string(),
            format!("sqlite:///{}?mode=rwc", db.display()),
        ),
        ("warehouse".to_string(), warehouse.display().to_string()),
    ]);
    Ok(SqlCatalogBuilder::default()
        .with_storage_factory(Arc::new(LocalFsStorageFactory))
        .load(CATALOG_NAME, props)
        .await?)
}

/// Opens the Iceberg REST catalog at `uri` (with a bearer `token` if given).
/// Table locations are the server's to choose; the files are written by this
/// process, so they must be local paths it can reach (`file://`), as for the
/// embedded catalog.
pub async fn open_rest_catalog(
    uri: &str,
    token: Option<&str>,
) -> Result<iceberg_catalog_rest::RestCatalog> {
    let mut props = HashMap::from([("uri".to_string(), uri.to_string())]);
    if let Some(token) = token {
        props.insert("token".to_string(), token.to_string());
    }
    Ok(iceberg_catalog_rest::RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(LocalFsStorageFactory))
        .load(CATALOG_NAME, props)
        .await?)
}

/// Loads `table` from `namespace`, creating the namespace and the table (schema,
/// partition spec, sort order) on first use. Safe to race: whoever loses the
/// creation loads what the winner created.
pub async fn ensure_table(
    catalog: &dyn Catalog,
    namespace: &NamespaceIdent,
    table: Table,
) -> Result<iceberg::table::Table> {
    let ident = TableIdent::new(namespace.clone(), table.name().to_string());
    if catalog.table_exists(&ident).await? {
        return check_schema(table, catalog.load_table(&ident).await?);
    }
    if !catalog.namespace_exists(namespace).await? {
        match catalog.create_namespace(namespace, HashMap::new()).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NamespaceAlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    }
    let def = TableDefinition::get(table);
    let creation = TableCreation::builder()
        .name(table.name().to_string())
        .schema(def.schema.as_ref().clone())
        .partition_spec(def.partition_spec.clone().into_unbound())
        .sort_order(def.sort_order.clone())
        .properties([(
            "write.parquet.compression-codec".to_string(),
            "zstd".to_string(),
        )])
        .build();
    match catalog.create_table(namespace, creation).await {
        Ok(created) => check_schema(table, created),
        Err(e) if e.kind() == ErrorKind::TableAlreadyExists => {
            check_schema(table, catalog.load_table(&ident).await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Files are written with the field ids of our definitions: refuse a table whose
/// schema differs (made by another tool, or by another version of this one), rather
/// than commit files whose columns it would read as other columns.
fn check_schema(table: Table, loaded: iceberg::table::Table) -> Result<iceberg::table::Table> {
    let expected = TableDefinition::get(table).schema.as_struct();
    if loaded.metadata().current_schema().as_struct() != expected {
        return Err(Error::Iceberg(iceberg::Error::new(
            ErrorKind::DataInvalid,
            format!(
                "table {} exists with a schema other than otlp2parquet's {table} schema \
                 (compare `otlp2parquet schema`); use another namespace or drop the table",
                loaded.identifier()
            ),
        )));
    }
    Ok(loaded)
}

/// The day (days since the epoch) of a `timestamptz` value in microseconds.
fn day_of(micros: i64) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

/// Splits `batch` by the day of its time column, the tables' partition: one
/// batch per day (`None` for rows without a time), days in ascending order.
pub fn split_by_day(table: Table, batch: &RecordBatch) -> Result<Vec<(Option<i32>, RecordBatch)>> {
    let arrow = |source| Error::Arrow {
        table: table.name(),
        source,
    };
    let column = batch
        .column_by_name(time_column(table))
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| {
            arrow(arrow::error::ArrowError::SchemaError(format!(
                "{table} has no timestamp column {}",
                time_column(table)
            )))
        })?;
    let mut rows: std::collections::BTreeMap<Option<i32>, Vec<u32>> = Default::default();
    for i in 0..column.len() {
        let day = column.is_valid(i).then(|| day_of(column.value(i)));
        rows.entry(day).or_default().push(i as u32);
    }
    if rows.len() == 1 {
        let day = *rows.keys().next().unwrap_or(&None);
        return Ok(vec![(day, batch.clone())]);
    }
    rows.into_iter()
        .map(|(day, indices)| {
            let taken = take_record_batch(batch, &UInt32Array::from(indices)).map_err(arrow)?;
            Ok((day, taken))
        })
        .collect()
}

/// The partition directory of a day, as Iceberg writers name it (`Timestamp_day=2026-01-01`).
pub fn partition_path(table: Table, day: Option<i32>) -> String {
    let name = format!("{}_day", time_column(table));
    match day.and_then(civil_date) {
        Some(date) => format!("{name}={date}"),
        None => format!("{name}=null"),
    }
}

/// `YYYY-MM-DD` of a day number, without pulling in a date library for one format.
fn civil_date(days: i32) -> Option<String> {
    // Howard Hinnant's civil_from_days.
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (0..=9999)
        .contains(&y)
        .then(|| format!("{y:04}-{m:02}-{d:02}"))
}

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
/// The file must hold a single day of the table's time column ([`split_by_day`]).
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

/// What [`append_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The files were appended in this snapshot.
    Committed {
        /// The new snapshot.
        snapshot_id: i64,
    },
    /// An earlier attempt with the same commit id had already appended them.
    AlreadyCommitted {
        /// The snapshot that earlier attempt made.
        snapshot_id: i64,
    },
}

fn find_commit(table: &iceberg::table::Table, commit_id: &str) -> Option<i64> {
    table
        .metadata()
        .snapshots()
        .find(|s| {
            s.summary()
                .additional_properties
                .get(COMMIT_ID_PROPERTY)
                .map(String::as_str)
                == Some(commit_id)
        })
        .map(|s| s.snapshot_id())
}

/// Appends `files` to the table in one snapshot, unless a snapshot with
/// `commit_id` exists already. Conflicting concurrent commits are retried by
/// `Transaction::commit` (reloading the table); when the outcome of a commit is
/// unknown (an error after the catalog may have applied it), the table is reloaded
/// and the commit id decides.
pub async fn append_once(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    files: Vec<DataFile>,
    commit_id: Uuid,
) -> Result<AppendOutcome> {
    append_once_with(catalog, ident, files, commit_id, HashMap::new()).await
}

/// [`append_once`], with extra snapshot summary properties.
pub async fn append_once_with(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    files: Vec<DataFile>,
    commit_id: Uuid,
    mut properties: HashMap<String, String>,
) -> Result<AppendOutcome> {
    let id = commit_id.to_string();
    let table = catalog.load_table(ident).await?;
    if let Some(snapshot_id) = find_commit(&table, &id) {
        return Ok(AppendOutcome::AlreadyCommitted { snapshot_id });
    }
    let tx = Transaction::new(&table);
    let append = tx
        .fast_append()
        .set_commit_uuid(commit_id)
        .set_snapshot_properties({
            properties.insert(COMMIT_ID_PROPERTY.to_string(), id.clone());
            properties
        })
        .add_data_files(files);
    let tx = append.apply(tx)?;
    match tx.commit(catalog).await {
        Ok(table) => {
            let snapshot_id = find_commit(&table, &id).ok_or_else(|| {
                iceberg::Error::new(
                    ErrorKind::Unexpected,
                    format!("commit {id} succeeded but its snapshot is not in {ident}"),
                )
            })?;
            Ok(AppendOutcome::Committed { snapshot_id })
        }
        Err(err) => {
            let reloaded = catalog.load_table(ident).await?;
            match find_commit(&reloaded, &id) {
                Some(snapshot_id) => Ok(AppendOutcome::Committed { snapshot_id }),
                None => Err(err.into()),
            }
        }
    }
}

/// The local filesystem path of a table location or file path (`file:///x` or `/x`).
pub fn local_path(location: &str) -> PathBuf {
    PathBuf::from(location.strip_prefix("file://").unwrap_or(location))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_days() {
        assert_eq!(civil_date(0).unwrap(), "1970-01-01");
        assert_eq!(civil_date(20_454).unwrap(), "2026-01-01");
        assert_eq!(civil_date(-1).unwrap(), "1969-12-31");
        assert_eq!(civil_date(11_016).unwrap(), "2000-02-29");
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_of(MICROS_PER_DAY), 1);
    }
}
