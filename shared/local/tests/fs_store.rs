//! The filesystem store answers size and range questions as S3 does, so a
//! Parquet footer can be read without reading the file.

use bytes::Bytes;
use otlp2parquet_core::convert::convert;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::ports::{ObjectMeta, ObjectStore, parquet_metadata};
use otlp2parquet_core::schema::TableDefinition;
use otlp2parquet_core::{Error, Signal};
use otlp2parquet_local::LocalFsStore;
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};

#[tokio::test]
async fn head_and_ranged_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalFsStore::new(dir.path());
    store
        .put("a/b.bin", Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    assert_eq!(
        store.head("a/b.bin").await.unwrap(),
        Some(ObjectMeta { size: 10 })
    );
    assert_eq!(store.head("a/none").await.unwrap(), None);
    assert!(store.exists("a/b.bin").await.unwrap());
    assert_eq!(store.get_range("a/b.bin", 2..5).await.unwrap(), "234");
    assert_eq!(store.get_range("a/b.bin", 8..100).await.unwrap(), "89");
    assert_eq!(store.get_range("a/b.bin", 20..30).await.unwrap(), "");
    store
        .delete_many(&["a/b.bin".into(), "a/none".into()])
        .await
        .unwrap();
    assert_eq!(store.head("a/b.bin").await.unwrap(), None);
}

// The footer read with ranged reads is the footer the writer wrote: rows,
// row groups and the schema's field ids.
#[tokio::test]
async fn a_parquet_footer_is_read_without_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalFsStore::new(dir.path());
    let request = Generator::new(GeneratorConfig {
        records_per_request: 500,
        ..GeneratorConfig::default()
    })
    .next_request(Signal::Logs);
    let (table, batch) = convert(request).unwrap().batches.remove(0);
    let schema = TableDefinition::get(table).arrow_schema.clone();
    let bytes = ParquetWriterBuilder::new()
        .write(schema, &[batch], Vec::new())
        .unwrap();
    store.put("logs.parquet", bytes.into()).await.unwrap();

    let metadata = parquet_metadata(&store, "logs.parquet").await.unwrap();
    assert_eq!(metadata.file_metadata().num_rows(), 500);
    let root = metadata.file_metadata().schema_descr().root_schema();
    assert!(
        root.get_fields()
            .iter()
            .all(|f| f.get_basic_info().has_id())
    );

    store
        .put("short.bin", Bytes::from_static(b"PAR1"))
        .await
        .unwrap();
    let err = parquet_metadata(&store, "short.bin").await.unwrap_err();
    assert!(err.to_string().contains("not a Parquet file"), "{err}");
    let err = parquet_metadata(&store, "missing.parquet")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ObjectStore(_)), "{err}");
}
