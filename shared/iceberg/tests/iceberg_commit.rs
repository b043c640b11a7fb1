//! Tables are created from the definitions and appended to exactly once.
//!
//! Runs the `iceberg` crate's SQL catalog on a SQLite file in a temporary
//! warehouse, as the embedded mode does. The reader tests (tests/readers) then
//! check that PyIceberg and DuckDB read what is committed here.

use iceberg::{Catalog, NamespaceIdent};
use otlp2parquet_core::convert::convert;
use otlp2parquet_core::datafile::data_file;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::partition::{partition_path, split_by_day};
use otlp2parquet_core::schema::TableDefinition;
use otlp2parquet_core::{Signal, Table};
use otlp2parquet_iceberg::catalog::{
    AppendOutcome, append_once, ensure_table, local_path, open_local_catalog,
};
use otlp2parquet_testkit::generate::{DEFAULT_START_UNIX_NANO, Generator, GeneratorConfig};
use uuid::Uuid;

/// Writes `signal` records into the table's data directory and describes them.
async fn write_files(
    catalog: &dyn Catalog,
    namespace: &NamespaceIdent,
    signal: Signal,
    config: GeneratorConfig,
) -> Vec<(Table, Vec<iceberg::spec::DataFile>)> {
    let request = Generator::new(config).next_request(signal);
    let mut out = Vec::new();
    for (table, batch) in convert(request).unwrap().batches {
        let t = ensure_table(catalog, namespace, table).await.unwrap();
        let location = local_path(t.metadata().location());
        let mut files = Vec::new();
        for (day, part) in split_by_day(table, &batch).unwrap() {
            let dir = location.join("data").join(partition_path(table, day));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{}.parquet", Uuid::now_v7()));
            let (metadata, size) = ParquetWriterBuilder::new()
                .write_file(
                    TableDefinition::get(table).arrow_schema.clone(),
                    &[part],
                    &path,
                )
                .unwrap();
            files.push(data_file(table, path.display().to_string(), size, &metadata).unwrap());
        }
        out.push((table, files));
    }
    out
}

// The same commit id twice adds the files once; the second call reports the first snapshot.
#[tokio::test]
async fn append_with_the_same_commit_id_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = open_local_catalog(dir.path()).await.unwrap();
    let namespace = NamespaceIdent::new("otel".to_string());
    let files = write_files(
        &catalog,
        &namespace,
        Signal::Logs,
        GeneratorConfig {
            records_per_request: 500,
            ..Default::default()
        },
    )
    .await;
    let (table, files) = files.into_iter().next().unwrap();
    let ident = iceberg::TableIdent::new(namespace.clone(), table.name().to_string());
    let commit = Uuid::now_v7();
    let first = append_once(&catalog, &ident, files.clone(), commit)
        .await
        .unwrap();
    let AppendOutcome::Committed { snapshot_id } = first else {
        panic!("first append: {first:?}")
    };
    let again = append_once(&catalog, &ident, files.clone(), commit)
        .await
        .unwrap();
    assert_eq!(again, AppendOutcome::AlreadyCommitted { snapshot_id });

    let loaded = catalog.load_table(&ident).await.unwrap();
    assert_eq!(loaded.metadata().snapshots().count(), 1);
    let summary = &loaded
        .metadata()
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties;
    assert_eq!(summary["total-records"], "500");

    // Under another commit id the same files are still refused (the iceberg
    // crate's duplicate check): no path adds a file twice.
    let err = append_once(&catalog, &ident, files, Uuid::now_v7())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already referenced"), "{err}");
    let loaded = catalog.load_table(&ident).await.unwrap();
    assert_eq!(loaded.metadata().snapshots().count(), 1);
}

// Creating tables is idempotent, also for every table of every signal.
#[tokio::test]
async fn tables_are_created_once_with_their_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = open_local_catalog(dir.path()).await.unwrap();
    let namespace = NamespaceIdent::new("otel".to_string());
    for table in Table::ALL {
        let created = ensure_table(&catalog, &namespace, table).await.unwrap();
        let again = ensure_table(&catalog, &namespace, table).await.unwrap();
        assert_eq!(created.metadata().uuid(), again.metadata().uuid());
        let def = TableDefinition::get(table);
        let schema = created.metadata().current_schema();
        assert_eq!(schema.as_struct(), def.schema.as_struct(), "{table}");
        assert_eq!(
            created.metadata().default_partition_spec().fields().len(),
            1
        );
        assert_eq!(
            created.metadata().default_sort_order().fields.len(),
            def.sort_order.fields.len()
        );
    }
    assert_eq!(catalog.list_tables(&namespace).await.unwrap().len(), 7);
}

// Data files carry counts, bounds and the day partition; a file spanning days is refused.
#[tokio::test]
async fn data_files_describe_their_contents() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = open_local_catalog(dir.path()).await.unwrap();
    let namespace = NamespaceIdent::new("otel".to_string());
    // 1 ms per record from 23:59:59.500: the batch crosses midnight.
    let start = DEFAULT_START_UNIX_NANO - 500_000_000;
    let tables = write_files(
        &catalog,
        &namespace,
        Signal::Traces,
        GeneratorConfig {
            records_per_request: 1000,
            start_unix_nano: start,
            ..Default::default()
        },
    )
    .await;
    let (_, files) = &tables[0];
    assert_eq!(files.len(), 2, "one file per day");
    let total: u64 = files.iter().map(|f| f.record_count()).sum();
    assert_eq!(total, 1000);
    let def = TableDefinition::get(Table::Traces);
    let ts = def.schema.field_by_name("Timestamp").unwrap().id;
    let service = def.schema.field_by_name("ServiceName").unwrap().id;
    for f in files {
        assert!(f.lower_bounds().contains_key(&ts) && f.upper_bounds().contains_key(&ts));
        assert!(f.lower_bounds()[&service] <= f.upper_bounds()[&service]);
        assert_eq!(f.null_value_counts()[&ts], 0);
        assert_eq!(f.value_counts()[&ts], f.record_count());
        assert!(f.partition().fields()[0].is_some());
    }

    // One file holding both days cannot be described with one partition value.
    let request = Generator::new(GeneratorConfig {
        records_per_request: 1000,
        start_unix_nano: start,
        ..Default::default()
    })
    .next_request(Signal::Traces);
    let (table, batch) = convert(request).unwrap().batches.remove(0);
    let path = dir.path().join("spanning.parquet");
    let (metadata, size) = ParquetWriterBuilder::new()
        .write_file(
            TableDefinition::get(table).arrow_schema.clone(),
            &[batch],
            &path,
        )
        .unwrap();
    let err = data_file(table, path.display().to_string(), size, &metadata).unwrap_err();
    assert!(err.to_string().contains("must hold one day"), "{err}");
}
