//! SQL over the committed tables, with DataFusion.
//!
//! Each table of the namespace is registered under its own name (`logs`,
//! `traces`, `metrics_sum`, …) as exactly the data files of its current Iceberg
//! snapshot: what a query sees is what PyIceberg or DuckDB would see, never a
//! raw file still waiting for compaction. Identifiers keep their case, so the
//! CamelCase columns need no quotes (`SELECT ServiceName FROM logs`).

#![deny(missing_docs)]

use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures_util::TryStreamExt;
use iceberg::{Catalog, NamespaceIdent, TableIdent};

use otlp2parquet_core::Table;
use otlp2parquet_core::schema::TableDefinition;

/// Errors of opening a query session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The catalog could not list the tables or their files.
    #[error("Iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),
    /// DataFusion refused a table. Not a `#[source]`: its message already
    /// spells out its own chain of causes.
    #[error("{0}")]
    DataFusion(Box<datafusion::error::DataFusionError>),
}

impl Error {
    /// Whether trying again may help (the catalog was unreachable).
    pub fn retryable(&self) -> bool {
        matches!(self, Error::Iceberg(e) if e.retryable())
    }
}

fn datafusion_error(e: datafusion::error::DataFusionError) -> Error {
    Error::DataFusion(Box::new(e))
}

/// A DataFusion session with every table of `namespace` registered; tables not
/// created yet are registered empty, so queries over them return no rows rather
/// than failing.
pub async fn session(catalog: &dyn Catalog, namespace: &str) -> Result<SessionContext, Error> {
    let mut config = SessionConfig::new();
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let ctx = SessionContext::new_with_config(config);
    let namespace = NamespaceIdent::new(namespace.to_string());
    let exists = catalog.namespace_exists(&namespace).await?;
    for table in Table::ALL {
        let schema = TableDefinition::get(table).arrow_schema.clone();
        let ident = TableIdent::new(namespace.clone(), table.name().to_string());
        let files = if exists && catalog.table_exists(&ident).await? {
            committed_files(catalog, &ident).await?
        } else {
            Vec::new()
        };
        let provider: Arc<dyn datafusion::catalog::TableProvider> = if files.is_empty() {
            Arc::new(MemTable::try_new(schema, vec![vec![]]).map_err(datafusion_error)?)
        } else {
            ctx.read_parquet(files, ParquetReadOptions::default().schema(schema.as_ref()))
                .await
                .map_err(datafusion_error)?
                .into_view()
        };
        ctx.register_table(table.name(), provider)
            .map_err(datafusion_error)?;
    }
    Ok(ctx)
}

/// The data files of the table's current snapshot.
async fn committed_files(catalog: &dyn Catalog, ident: &TableIdent) -> Result<Vec<String>, Error> {
    let table = catalog.load_table(ident).await?;
    if table.metadata().current_snapshot().is_none() {
        return Ok(Vec::new());
    }
    let tasks: Vec<_> = table
        .scan()
        .build()?
        .plan_files()
        .await?
        .try_collect()
        .await?;
    Ok(tasks
        .into_iter()
        .map(|task| task.data_file_path().to_string())
        .collect())
}
