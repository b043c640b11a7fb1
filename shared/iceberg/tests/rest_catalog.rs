//! Our REST catalog client against a real REST catalog server (rustberg),
//! reached the ways a deployment reaches one: SigV4-signed as S3 Tables' and
//! Glue's endpoints want (each signature recomputed by botocore in a front
//! door that refuses a mismatch), OAuth2 client credentials (token fetched,
//! and fetched again when the server stops accepting it), and a plain bearer
//! token. Tables are created on first use and appended to exactly once; a
//! commit that lost a race is refused by the server and retried, not doubled.

use std::sync::Arc;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use iceberg::io::LocalFsStorageFactory;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, ErrorKind, NamespaceIdent, TableIdent};
use otlp2parquet_core::Table;
use otlp2parquet_iceberg::catalog::{AppendOutcome, append_once, ensure_table};
use otlp2parquet_iceberg::rest::{
    OAuth2ClientCredentials, RestAuth, RestCatalog, RestCatalogConfig, SigV4,
};
use otlp2parquet_testkit::files::log_data_files;
use otlp2parquet_testkit::rest_catalog::{
    ACCESS_KEY, CLIENT_ID, CLIENT_SECRET, FrontDoor, Rustberg, SECRET_KEY,
};
use otlp2parquet_testkit::scan::current_rows;

const TABLE_BUCKET_ARN: &str = "arn:aws:s3tables:us-east-1:123456789012:bucket/telemetry";
const RUSTBERG_KEY: &str = "rb_test_5f0c8a4e2d7b4c19a3e6f1d2b8c7a690";

fn sigv4(secret: &str) -> RestAuth {
    RestAuth::SigV4(SigV4 {
        signing_name: "s3tables".to_string(),
        region: "us-east-1".to_string(),
        credentials: SharedCredentialsProvider::new(Credentials::new(
            ACCESS_KEY, secret, None, None, "test",
        )),
    })
}

async fn connect(
    uri: &str,
    warehouse: Option<&str>,
    auth: RestAuth,
) -> iceberg::Result<RestCatalog> {
    RestCatalog::connect(
        RestCatalogConfig {
            uri: uri.to_string(),
            warehouse: warehouse.map(str::to_string),
            auth,
        },
        Arc::new(LocalFsStorageFactory),
    )
    .await
}

fn namespace() -> NamespaceIdent {
    NamespaceIdent::new("otel".to_string())
}

async fn rows(table: &iceberg::table::Table) -> usize {
    current_rows(table).await.iter().map(|b| b.num_rows()).sum()
}

/// Creates the logs table through `catalog`, appends 100 records twice under
/// one commit id, and checks that they landed once.
async fn append_once_through(catalog: &RestCatalog) {
    let table = ensure_table(catalog, &namespace(), Table::Logs)
        .await
        .unwrap();
    let again = ensure_table(catalog, &namespace(), Table::Logs)
        .await
        .unwrap();
    assert_eq!(table.metadata().uuid(), again.metadata().uuid());
    let files = log_data_files(&table, 100).await;
    let ident = table.identifier().clone();
    let commit = uuid::Uuid::now_v7();
    let first = append_once(catalog, &ident, files.clone(), commit)
        .await
        .unwrap();
    assert!(
        matches!(first, AppendOutcome::Committed { .. }),
        "{first:?}"
    );
    let second = append_once(catalog, &ident, files, commit).await.unwrap();
    assert!(
        matches!(second, AppendOutcome::AlreadyCommitted { .. }),
        "{second:?}"
    );
    let loaded = catalog.load_table(&ident).await.unwrap();
    assert_eq!(loaded.metadata().snapshots().count(), 1);
    assert_eq!(rows(&loaded).await, 100);
}

#[tokio::test]
async fn sigv4_signed_requests_create_and_append_as_on_s3_tables() {
    let catalog_server = Rustberg::with_token(RUSTBERG_KEY);
    let door = FrontDoor::sigv4(&catalog_server, "s3tables", TABLE_BUCKET_ARN);
    let catalog = connect(&door.uri, Some(TABLE_BUCKET_ARN), sigv4(SECRET_KEY))
        .await
        .unwrap();
    append_once_through(&catalog).await;
    // Every request went under the ARN's prefix and passed botocore's check.
    assert_eq!(door.refused(), 0);
    let tables = catalog.list_tables(&namespace()).await.unwrap();
    assert_eq!(
        tables,
        vec![TableIdent::new(namespace(), "logs".to_string())]
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_with_an_error_that_says_so() {
    let catalog_server = Rustberg::open();
    let door = FrontDoor::sigv4(&catalog_server, "s3tables", TABLE_BUCKET_ARN);
    let refused = connect(&door.uri, Some(TABLE_BUCKET_ARN), sigv4("not-the-secret"))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("refused the credentials"),
        "{refused}"
    );
    assert!(refused.to_string().contains("403"), "{refused}");
    assert!(!refused.retryable());
    assert_eq!(door.refused(), 1);
}

#[tokio::test]
async fn signatures_are_made_for_the_service_they_are_sent_to() {
    // Glue's endpoint checks for `glue`: a request signed for s3tables fails.
    let catalog_server = Rustberg::open();
    let door = FrontDoor::sigv4(&catalog_server, "glue", TABLE_BUCKET_ARN);
    let refused = connect(&door.uri, Some(TABLE_BUCKET_ARN), sigv4(SECRET_KEY))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("credential scope"),
        "{refused}"
    );
    let RestAuth::SigV4(mut glue) = sigv4(SECRET_KEY) else {
        unreachable!()
    };
    glue.signing_name = "glue".to_string();
    let catalog = connect(&door.uri, Some(TABLE_BUCKET_ARN), RestAuth::SigV4(glue))
        .await
        .unwrap();
    assert!(catalog.list_namespaces(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn oauth2_client_credentials_fetch_a_token_and_renew_it_when_refused() {
    let catalog_server = Rustberg::open();
    let door = FrontDoor::oauth2(&catalog_server);
    let grant = |secret: &str| {
        RestAuth::OAuth2(OAuth2ClientCredentials {
            token_uri: format!("{}/v1/oauth/tokens", door.uri),
            client_id: CLIENT_ID.to_string(),
            client_secret: secret.to_string(),
            scope: "catalog".to_string(),
        })
    };
    let catalog = connect(&door.uri, None, grant(CLIENT_SECRET))
        .await
        .unwrap();
    append_once_through(&catalog).await;
    assert_eq!(door.refused(), 0);
    // The server forgets the token: the next request is refused once, a new
    // token is fetched, and the request goes through.
    door.revoke_tokens();
    let ident = TableIdent::new(namespace(), "logs".to_string());
    assert_eq!(rows(&catalog.load_table(&ident).await.unwrap()).await, 100);
    assert_eq!(door.refused(), 1);

    let refused = connect(&door.uri, None, grant("wrong")).await.unwrap_err();
    assert!(refused.to_string().contains("OAuth2 token"), "{refused}");
}

#[tokio::test]
async fn a_bearer_token_reaches_a_catalog_that_wants_one() {
    let catalog_server = Rustberg::with_token(RUSTBERG_KEY);
    let catalog = connect(
        &catalog_server.uri,
        None,
        RestAuth::Bearer(RUSTBERG_KEY.to_string()),
    )
    .await
    .unwrap();
    append_once_through(&catalog).await;
    let refused = connect(
        &catalog_server.uri,
        None,
        RestAuth::Bearer("rb_test_wrong".to_string()),
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
}

#[tokio::test]
async fn a_commit_that_lost_a_race_is_refused_by_the_server_and_retried() {
    let catalog_server = Rustberg::open();
    let ours = connect(&catalog_server.uri, None, RestAuth::None)
        .await
        .unwrap();
    let theirs = connect(&catalog_server.uri, None, RestAuth::None)
        .await
        .unwrap();
    let table = ensure_table(&ours, &namespace(), Table::Logs)
        .await
        .unwrap();
    let (our_files, their_files) = (
        log_data_files(&table, 70).await,
        log_data_files(&table, 50).await,
    );

    // We load; they commit; we commit on what we loaded.
    let tx = Transaction::new(&table);
    let tx = tx
        .fast_append()
        .add_data_files(our_files)
        .apply(tx)
        .unwrap();
    append_once(
        &theirs,
        table.identifier(),
        their_files,
        uuid::Uuid::now_v7(),
    )
    .await
    .unwrap();
    let committed = tx.commit(&ours).await.unwrap();

    // The server's 409 was retried on the new snapshot: both appends are
    // there, each once.
    assert_eq!(committed.metadata().snapshots().count(), 2);
    assert_eq!(rows(&committed).await, 120);
    let missing = ours
        .load_table(&TableIdent::new(namespace(), "nope".to_string()))
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::TableNotFound);
}
