//! Iceberg's file IO over the pipeline's S3 store, against moto: a table
//! created in an `s3://` warehouse, a data file appended, and the rows read
//! back by the `iceberg` crate's own scan — metadata, manifests and Parquet
//! all moved by the AWS SDK client the stages use, none by OpenDAL.

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableIdent};
use iceberg_catalog_sql::SqlCatalogBuilder;
use otlp2parquet_aws::{S3Store, s3_client};
use otlp2parquet_core::convert::convert;
use otlp2parquet_core::datafile::data_file;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::partition::{partition_path, split_by_day};
use otlp2parquet_core::ports::{ObjectStore, parquet_metadata};
use otlp2parquet_core::schema::TableDefinition;
use otlp2parquet_core::{Signal, Table};
use otlp2parquet_iceberg::catalog::{AppendOutcome, append_once, ensure_table};
use otlp2parquet_iceberg::storage::PortStorageFactory;
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use otlp2parquet_testkit::moto::{Moto, sdk_config, unique_name};
use otlp2parquet_testkit::scan::current_rows;

#[tokio::test]
async fn a_table_in_an_s3_warehouse_is_created_appended_and_scanned() {
    let moto = Moto::start();
    let client = s3_client(&sdk_config(&moto.endpoint).await);
    let bucket = unique_name("warehouse");
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let stores = client.clone();
    let factory = PortStorageFactory::new(move |bucket| {
        Arc::new(S3Store::new(stores.clone(), bucket, "")) as Arc<dyn ObjectStore>
    });
    let dir = tempfile::tempdir().unwrap();
    let props = HashMap::from([
        (
            "uri".to_string(),
            format!("sqlite:///{}?mode=rwc", dir.path().join("c.db").display()),
        ),
        ("warehouse".to_string(), format!("s3://{bucket}/lake")),
    ]);
    let catalog = SqlCatalogBuilder::default()
        .with_storage_factory(Arc::new(factory))
        .load("otlp2parquet", props)
        .await
        .unwrap();
    let namespace = NamespaceIdent::new("otel".to_string());
    let table = ensure_table(&catalog, &namespace, Table::Logs)
        .await
        .unwrap();
    let location = table.metadata().location().to_string();
    assert!(
        location.starts_with(&format!("s3://{bucket}/lake/")),
        "{location}"
    );

    // One raw-sized Parquet file per day, stored in the table's location.
    let store = S3Store::new(client.clone(), &bucket, "");
    let key_prefix = location.trim_start_matches(&format!("s3://{bucket}/"));
    let request = Generator::new(GeneratorConfig {
        records_per_request: 300,
        ..GeneratorConfig::default()
    })
    .next_request(Signal::Logs);
    let (_, batch) = convert(request).unwrap().batches.remove(0);
    let mut files = Vec::new();
    for (n, (day, part)) in split_by_day(Table::Logs, &batch)
        .unwrap()
        .into_iter()
        .enumerate()
    {
        let bytes = ParquetWriterBuilder::new()
            .write(
                TableDefinition::get(Table::Logs).arrow_schema.clone(),
                &[part],
                Vec::new(),
            )
            .unwrap();
        let key = format!(
            "{key_prefix}/data/{}/{n:05}.parquet",
            partition_path(Table::Logs, day)
        );
        let size = bytes.len() as u64;
        store.put(&key, bytes.into()).await.unwrap();
        let metadata = parquet_metadata(&store, &key).await.unwrap();
        files.push(data_file(Table::Logs, store.uri(&key), size, &metadata).unwrap());
    }
    let ident = TableIdent::new(namespace, Table::Logs.name().to_string());
    let outcome = append_once(&catalog, &ident, files, uuid::Uuid::now_v7())
        .await
        .unwrap();
    assert!(
        matches!(outcome, AppendOutcome::Committed { .. }),
        "{outcome:?}"
    );

    let loaded = catalog.load_table(&ident).await.unwrap();
    let metadata_location = loaded.metadata_location().unwrap().to_string();
    assert!(
        metadata_location.starts_with(&format!("s3://{bucket}/lake/")),
        "{metadata_location}"
    );
    let rows: usize = current_rows(&loaded)
        .await
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 300);
}
