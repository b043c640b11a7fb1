//! The S3 Tables catalog against moto's S3 Tables control plane and S3
//! (moto started through testkit's launcher, which fixes two of its replies):
//! tables created on first use in the location S3 Tables chooses, appended
//! to exactly once, read back by iceberg's scan; a commit that loses a race
//! with another writer (between its load and its pointer update) is refused
//! by the version token and retried, not lost or doubled; a commit whose
//! answer was lost (moto behind a front that drops answers) is recognised as
//! done, and one that never arrived fails without adding anything.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, OnceLock};

use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use otlp2parquet_aws::{S3Store, s3_client};
use otlp2parquet_core::Table;
use otlp2parquet_core::ports::{ObjectStore, ObjectStoreError};
use otlp2parquet_iceberg::catalog::{AppendOutcome, append_once, ensure_table};
use otlp2parquet_iceberg::s3tables::S3TablesCatalog;
use otlp2parquet_iceberg::storage::PortStorageFactory;
use otlp2parquet_testkit::fault_front::FaultFront;
use otlp2parquet_testkit::files::log_data_files;
use otlp2parquet_testkit::moto::{Moto, sdk_config, unique_name};
use otlp2parquet_testkit::scan::current_rows;
use otlp2parquet_testkit::store::{Hook, HookedStore, Op};

struct Deployment {
    /// Between the SDK and moto, failing requests when told to.
    front: FaultFront,
    _moto: Moto,
    s3: aws_sdk_s3::Client,
    control: aws_sdk_s3tables::Client,
    arn: String,
    storage: Arc<PortStorageFactory>,
    catalog: S3TablesCatalog,
}

async fn deployment() -> Deployment {
    let moto = Moto::start();
    let front = FaultFront::start(&moto.endpoint, 0.0);
    let config = sdk_config(&front.endpoint).await;
    let s3 = s3_client(&config);
    let control = aws_sdk_s3tables::Client::new(&config);
    let arn = control
        .create_table_bucket()
        .name(unique_name("tables"))
        .send()
        .await
        .unwrap()
        .arn()
        .to_string();
    let stores = s3.clone();
    let storage = Arc::new(PortStorageFactory::new(move |bucket| {
        Arc::new(S3Store::new(stores.clone(), bucket, "")) as Arc<dyn ObjectStore>
    }));
    Deployment {
        front,
        _moto: moto,
        s3,
        catalog: S3TablesCatalog::new(control.clone(), &arn, storage.clone()).unwrap(),
        control,
        arn,
        storage,
    }
}

impl Deployment {
    /// The logs table, created on first use.
    async fn logs_table(&self) -> iceberg::table::Table {
        ensure_table(
            &self.catalog,
            &NamespaceIdent::new("otel".to_string()),
            Table::Logs,
        )
        .await
        .unwrap()
    }
}

async fn rows(table: &iceberg::table::Table) -> usize {
    current_rows(table).await.iter().map(|b| b.num_rows()).sum()
}

#[tokio::test]
async fn tables_are_created_in_their_s3_tables_location_and_appended_once() {
    let d = deployment().await;
    let namespace = NamespaceIdent::new("otel".to_string());
    let table = ensure_table(&d.catalog, &namespace, Table::Logs)
        .await
        .unwrap();
    let again = ensure_table(&d.catalog, &namespace, Table::Logs)
        .await
        .unwrap();
    assert_eq!(table.metadata().uuid(), again.metadata().uuid());
    let location = table.metadata().location().to_string();
    assert!(location.ends_with("--table-s3"), "{location}");

    let files = log_data_files(&table, 200).await;
    let ident = TableIdent::new(namespace, Table::Logs.name().to_string());
    let commit = uuid::Uuid::now_v7();
    let first = append_once(&d.catalog, &ident, files.clone(), commit)
        .await
        .unwrap();
    assert!(
        matches!(first, AppendOutcome::Committed { .. }),
        "{first:?}"
    );
    let second = append_once(&d.catalog, &ident, files, commit)
        .await
        .unwrap();
    assert!(
        matches!(second, AppendOutcome::AlreadyCommitted { .. }),
        "{second:?}"
    );
    let loaded = d.catalog.load_table(&ident).await.unwrap();
    assert_eq!(loaded.metadata().snapshots().count(), 1);
    assert_eq!(rows(&loaded).await, 200);
}

/// S3 Tables' pointer update: `PUT /tables/<arn>/<namespace>/<name>/metadata-location`.
fn lose_pointer_updates(d: &Deployment, when: &str, times: u32) {
    d.front.set_rules(serde_json::json!([{
        "method": "PUT", "path": "/metadata-location", "when": when, "status": 500, "times": times
    }]));
}

/// The commit stage's own append: iceberg's duplicate check off (the stage's
/// ledger makes it redundant), so nothing but the catalog stands between a
/// retried commit and a second copy of its files.
async fn append_unchecked(
    catalog: &S3TablesCatalog,
    ident: &TableIdent,
    files: Vec<iceberg::spec::DataFile>,
) -> iceberg::Result<iceberg::table::Table> {
    let table = catalog.load_table(ident).await?;
    let tx = Transaction::new(&table);
    let tx = tx
        .fast_append()
        .with_check_duplicate(false)
        .add_data_files(files)
        .apply(tx)?;
    tx.commit(catalog).await
}

/// A commit whose answer is lost after S3 Tables moved the pointer: the SDK
/// retries it, S3 Tables refuses the retry (the token moved, by this very
/// commit), and the catalog must see that the commit took effect instead of
/// reporting a conflict, which the transaction would retry on top of itself.
#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_recognised_not_repeated() {
    let d = deployment().await;
    let table = d.logs_table().await;
    let ident = table.identifier().clone();

    // The first attempt's answer lost, the SDK's retry refused (409).
    lose_pointer_updates(&d, "after", 1);
    let files = log_data_files(&table, 80).await;
    append_unchecked(&d.catalog, &ident, files).await.unwrap();
    assert_eq!(d.front.injected(), 1);

    // Every attempt's answer lost: the SDK gives up; the pointer names ours.
    lose_pointer_updates(&d, "after", 3);
    let files = log_data_files(&table, 30).await;
    append_unchecked(&d.catalog, &ident, files).await.unwrap();
    assert_eq!(d.front.injected(), 4);

    let loaded = d.catalog.load_table(&ident).await.unwrap();
    assert_eq!(loaded.metadata().snapshots().count(), 2);
    assert_eq!(rows(&loaded).await, 110);
}

/// A commit S3 Tables never received (every attempt refused before it got
/// there) fails without adding anything and is not retried blindly (had it
/// been applied, a retry would double it): its outcome is unknown to the
/// catalog, and the caller's commit id decides (`append_once`).
#[tokio::test]
async fn a_commit_that_never_arrived_fails_then_lands_once() {
    let d = deployment().await;
    let table = d.logs_table().await;
    let ident = table.identifier().clone();
    let files = log_data_files(&table, 50).await;

    lose_pointer_updates(&d, "before", 3);
    let failed = append_unchecked(&d.catalog, &ident, files.clone())
        .await
        .unwrap_err();
    assert!(
        failed.to_string().contains("commit state unknown"),
        "{failed}"
    );
    assert!(!failed.retryable());
    assert_eq!(d.front.injected(), 3, "the SDK's own retries, none of ours");
    let loaded = d.catalog.load_table(&ident).await.unwrap();
    assert_eq!(loaded.metadata().snapshots().count(), 0);

    let commit = uuid::Uuid::now_v7();
    let outcome = append_once(&d.catalog, &ident, files, commit)
        .await
        .unwrap();
    assert!(
        matches!(outcome, AppendOutcome::Committed { .. }),
        "{outcome:?}"
    );
    let loaded = d.catalog.load_table(&ident).await.unwrap();
    assert_eq!(rows(&loaded).await, 50);
}

/// Commits `files` through `rival` just before the first metadata file of
/// our own commit is written: between our load (its version token) and our
/// pointer update, as S3 Tables' maintenance or another writer may.
struct Race {
    armed: AtomicBool,
    rival: OnceLock<(
        Arc<S3TablesCatalog>,
        TableIdent,
        Vec<iceberg::spec::DataFile>,
    )>,
}

#[async_trait::async_trait]
impl Hook for Race {
    async fn before(&self, op: Op, key: &str) -> Result<(), ObjectStoreError> {
        if op == Op::Put && key.ends_with(".metadata.json") && self.armed.swap(false, SeqCst) {
            let (rival, ident, files) = self.rival.get().expect("the rival is set");
            append_once(rival.as_ref(), ident, files.clone(), uuid::Uuid::now_v7())
                .await
                .map_err(|e| ObjectStoreError::Backend {
                    key: key.to_string(),
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_commit_that_loses_a_race_is_retried_not_lost_or_doubled() {
    let d = deployment().await;
    let namespace = NamespaceIdent::new("otel".to_string());
    let table = ensure_table(&d.catalog, &namespace, Table::Logs)
        .await
        .unwrap();
    let ident = table.identifier().clone();

    let race = Arc::new(HookedStore::new(
        Arc::new(S3Store::new(d.s3.clone(), "unused", "")),
        Race {
            armed: AtomicBool::new(false),
            rival: OnceLock::new(),
        },
    ));
    let (stores, hooked) = (d.s3.clone(), race.clone());
    // Our catalog writes its metadata through the race; the rival does not.
    let storage = PortStorageFactory::new(move |bucket| {
        Arc::new(HookedStore::new(
            Arc::new(S3Store::new(stores.clone(), bucket, "")),
            Forward(hooked.clone()),
        )) as Arc<dyn ObjectStore>
    });
    let ours = S3TablesCatalog::new(d.control.clone(), &d.arn, Arc::new(storage)).unwrap();
    let theirs = log_data_files(&table, 50).await;
    let rival =
        Arc::new(S3TablesCatalog::new(d.control.clone(), &d.arn, d.storage.clone()).unwrap());
    assert!(race.hook.rival.set((rival, ident.clone(), theirs)).is_ok());
    race.hook.armed.store(true, SeqCst);

    let files = log_data_files(&table, 70).await;
    let outcome = append_once(&ours, &ident, files, uuid::Uuid::now_v7())
        .await
        .unwrap();
    assert!(
        matches!(outcome, AppendOutcome::Committed { .. }),
        "{outcome:?}"
    );
    assert!(!race.hook.armed.load(SeqCst), "the rival committed mid-way");
    // A pointer update with the stale token would have dropped the rival's
    // 50 rows; a blind retry of ours would have doubled our 70.
    let loaded = d.catalog.load_table(&ident).await.unwrap();
    assert_eq!(loaded.metadata().snapshots().count(), 2);
    assert_eq!(rows(&loaded).await, 120);
}

/// Hands each operation to the shared race hook.
struct Forward(Arc<HookedStore<Race>>);

#[async_trait::async_trait]
impl Hook for Forward {
    async fn before(&self, op: Op, key: &str) -> Result<(), ObjectStoreError> {
        self.0.hook.before(op, key).await
    }
}

#[tokio::test]
async fn a_creation_that_died_before_its_metadata_is_finished_by_the_next() {
    let d = deployment().await;
    // What a compactor that died right after CreateTable leaves: a table S3
    // Tables knows, with no metadata.
    d.control
        .create_namespace()
        .table_bucket_arn(&d.arn)
        .namespace("otel")
        .send()
        .await
        .unwrap();
    d.control
        .create_table()
        .table_bucket_arn(&d.arn)
        .namespace("otel")
        .name("logs")
        .format(aws_sdk_s3tables::types::OpenTableFormat::Iceberg)
        .send()
        .await
        .unwrap();
    let namespace = NamespaceIdent::new("otel".to_string());
    let table = ensure_table(&d.catalog, &namespace, Table::Logs)
        .await
        .unwrap();
    let files = log_data_files(&table, 40).await;
    append_once(&d.catalog, table.identifier(), files, uuid::Uuid::now_v7())
        .await
        .unwrap();
    let loaded = d.catalog.load_table(table.identifier()).await.unwrap();
    assert_eq!(rows(&loaded).await, 40);
}
