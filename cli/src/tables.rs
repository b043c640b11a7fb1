//! `otlp2parquet tables`: what the embedded catalog holds.

use anyhow::Context;
use iceberg::{Catalog, NamespaceIdent};
use iceberg_catalog_sql::SqlCatalog;
use otlp2parquet_iceberg::catalog::open_local_catalog;

use crate::flags::{CatalogLocation, TablesArgs};

/// Opens the embedded catalog a reading command names.
pub async fn open_catalog(location: &CatalogLocation) -> anyhow::Result<SqlCatalog> {
    open_local_catalog(&location.warehouse)
        .await
        .with_context(|| format!("opening the catalog in {}", location.warehouse.display()))
}

pub fn run(args: TablesArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let catalog = open_catalog(&args.location).await?;
        let namespace = NamespaceIdent::new(args.location.namespace.clone());
        if !catalog.namespace_exists(&namespace).await? {
            println!(
                "no namespace {:?} in {} yet: nothing has been committed",
                args.location.namespace,
                args.location.warehouse.display()
            );
            return Ok(());
        }
        let mut idents = catalog.list_tables(&namespace).await?;
        idents.sort_by(|a, b| a.name().cmp(b.name()));
        println!(
            "{:<32} {:>9} {:>12} {:>7}  metadata",
            "table", "snapshots", "rows", "files"
        );
        for ident in idents {
            let table = catalog.load_table(&ident).await?;
            let metadata = table.metadata();
            let summary = metadata.current_snapshot().map(|s| s.summary());
            let total = |key: &str| {
                summary
                    .and_then(|s| s.additional_properties.get(key))
                    .cloned()
                    .unwrap_or_else(|| "0".to_string())
            };
            println!(
                "{:<32} {:>9} {:>12} {:>7}  {}",
                format!("{}.{}", args.location.namespace, ident.name()),
                metadata.snapshots().count(),
                total("total-records"),
                total("total-data-files"),
                table.metadata_location().unwrap_or("-")
            );
        }
        Ok(())
    })
}
