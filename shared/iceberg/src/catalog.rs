//! Iceberg tables in a catalog: opened, created on first use, appended to exactly once.
//!
//! Every deployment commits through the `iceberg` crate's `Catalog` trait, so the
//! embedded SQLite catalog, a REST catalog and S3 Tables differ only in how the
//! catalog is built. [`append_once`] makes an append idempotent: each append
//! carries a commit id in its snapshot summary, and an append whose id is
//! already in the table's history is not repeated. A caller that crashed or lost
//! its connection after a commit may have happened simply retries with the same id.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use iceberg::io::LocalFsStorageFactory;
use iceberg::spec::DataFile;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, CatalogBuilder, ErrorKind, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_sql::{SqlCatalog, SqlCatalogBuilder};
use otlp2parquet_core::Table;
use otlp2parquet_core::schema::TableDefinition;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::rest::{RestCatalog, RestCatalogConfig};

pub use otlp2parquet_core::DEFAULT_NAMESPACE;
/// The catalog name stored in the SQL catalog's rows: PyIceberg must open the
/// catalog under this same name, or it sees no tables.
pub const CATALOG_NAME: &str = "otlp2parquet";
/// The SQLite file of the embedded catalog, inside the warehouse directory.
pub const CATALOG_FILE: &str = "catalog.db";
/// Snapshot summary property holding the id of the append that made the snapshot.
pub const COMMIT_ID_PROPERTY: &str = "otlp2parquet.commit-id";

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

/// Opens the Iceberg REST catalog `config` describes. Table locations are the
/// server's to choose; the files are written by this process, so they must be
/// local paths it can reach (`file://`), as for the embedded catalog.
pub async fn open_rest_catalog(config: RestCatalogConfig) -> Result<RestCatalog> {
    Ok(RestCatalog::connect(config, Arc::new(LocalFsStorageFactory)).await?)
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
