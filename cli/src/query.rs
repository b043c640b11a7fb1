//! `otlp2parquet query "SQL"`: look at the data without another tool.

use otlp2parquet_iceberg::catalog::CATALOG_FILE;

use crate::flags::QueryArgs;

pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        anyhow::ensure!(
            args.location.warehouse.join(CATALOG_FILE).exists(),
            "no catalog at {}: is --warehouse the directory `otlp2parquet serve` uses?",
            args.location.warehouse.join(CATALOG_FILE).display()
        );
        let catalog = crate::tables::open_catalog(&args.location).await?;
        let ctx = otlp2parquet_query::session(&catalog, &args.location.namespace).await?;
        // DataFusion's messages carry their own causes; adding context here
        // would print each of them twice.
        let frame = ctx
            .sql(&args.sql)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        frame.show().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    })
}
