//! The three functions chained against moto, in both Iceberg modes: OTLP
//! requests as API Gateway events → the ingest binary (raw files in the state
//! bucket, a message on the compaction queue) → the compactor binary
//! (compacted files in the table's location, "data files ready" on the FIFO
//! commit queue) → the committer binary (appends) → rows read back by
//! iceberg's scan, each exactly once; every batch redelivered adds nothing.
//!
//! The catalog is S3 Tables' control plane (moto's), or an Iceberg REST
//! catalog (rustberg, tables on moto's S3) behind a front door that checks
//! every request's SigV4 signature as S3 Tables' Iceberg endpoint would.
//!
//! Each binary runs under its own Runtime API stand-in; the test plays
//! Lambda's event source mappings, turning queue messages into SQS events.

use std::path::PathBuf;
use std::sync::Arc;

use iceberg::{Catalog, NamespaceIdent, TableIdent};
use otlp2parquet_aws::{s3_client, sqs_client};
use otlp2parquet_core::{Signal, Table};
use otlp2parquet_iceberg::rest::{RestAuth, RestCatalog, RestCatalogConfig, SigV4};
use otlp2parquet_iceberg::s3tables::S3TablesCatalog;
use otlp2parquet_iceberg::storage::PortStorageFactory;
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use otlp2parquet_testkit::lambda_runtime_api::{
    FunctionProcess, Invocation, RuntimeApi, batch_item_failures, http_api_event,
    lambda_environment,
};
use otlp2parquet_testkit::moto::{
    Moto, queue_with_dead_letter_queue, sdk_config, sqs_event, unique_name,
};
use otlp2parquet_testkit::rest_catalog::{FrontDoor, Rustberg};
use otlp2parquet_testkit::scan::current_rows;
use serde_json::{Value, json};

const REQUESTS: usize = 3;
const RECORDS: usize = 150;

/// A binary of another package of the workspace, built beside this one's.
fn sibling_binary(name: &str) -> String {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_otlp2parquet-committer"));
    let path = ours.with_file_name(name);
    assert!(
        path.exists(),
        "{} not built: run the workspace's tests (cargo nextest run --workspace)",
        path.display()
    );
    path.display().to_string()
}

#[tokio::test]
async fn otlp_requests_land_in_s3_tables_exactly_once_through_the_three_functions() {
    let moto = Moto::start();
    let config = sdk_config(&moto.endpoint).await;
    let control = aws_sdk_s3tables::Client::new(&config);
    let arn = control
        .create_table_bucket()
        .name(unique_name("tables"))
        .send()
        .await
        .unwrap()
        .arn()
        .to_string();
    let catalog = S3TablesCatalog::over_s3(control, &arn, s3_client(&config)).unwrap();
    let environment = [
        ("OTLP2PARQUET_CATALOG", "s3tables".to_string()),
        ("OTLP2PARQUET_ICEBERG_WAREHOUSE", arn),
    ];
    let location = chain(&moto, &environment, &catalog).await;
    assert!(location.ends_with("--table-s3"), "{location}");
}

#[tokio::test]
async fn otlp_requests_land_in_a_sigv4_rest_catalog_exactly_once_through_the_three_functions() {
    const ARN: &str = "arn:aws:s3tables:us-east-1:123456789012:bucket/telemetry";
    let moto = Moto::start();
    let config = sdk_config(&moto.endpoint).await;
    let s3 = s3_client(&config);
    let warehouse = unique_name("warehouse");
    s3.create_bucket().bucket(&warehouse).send().await.unwrap();
    let server = Rustberg::on_s3(&moto.endpoint, &warehouse);
    let door = FrontDoor::sigv4(&server, "s3tables", ARN);
    let environment = [
        ("OTLP2PARQUET_CATALOG", "rest".to_string()),
        ("OTLP2PARQUET_ICEBERG_REST_URI", door.uri.clone()),
        ("OTLP2PARQUET_ICEBERG_WAREHOUSE", ARN.to_string()),
        // A local address is no AWS endpoint: say how to sign.
        ("OTLP2PARQUET_ICEBERG_REST_AUTH", "sigv4".to_string()),
        (
            "OTLP2PARQUET_ICEBERG_REST_SIGNING_NAME",
            "s3tables".to_string(),
        ),
    ];
    let catalog = RestCatalog::connect(
        RestCatalogConfig {
            uri: door.uri.clone(),
            warehouse: Some(ARN.to_string()),
            auth: RestAuth::SigV4(SigV4 {
                signing_name: "s3tables".to_string(),
                region: "us-east-1".to_string(),
                credentials: config.credentials_provider().unwrap(),
            }),
        },
        Arc::new(PortStorageFactory::over_s3(s3)),
    )
    .await
    .unwrap();
    let location = chain(&moto, &environment, &catalog).await;
    assert!(
        location.starts_with(&format!("s3://{warehouse}/warehouse/")),
        "{location}"
    );
    assert_eq!(
        door.refused(),
        0,
        "every signed request passed botocore's check"
    );
}

/// Runs requests through the three functions configured by `catalog_environment`,
/// checks the rows in `catalog` (and that redelivery adds nothing); returns the
/// logs table's location.
async fn chain(
    moto: &Moto,
    catalog_environment: &[(&str, String)],
    catalog: &dyn Catalog,
) -> String {
    let config = sdk_config(&moto.endpoint).await;
    let (s3, sqs) = (s3_client(&config), sqs_client(&config));
    let state = unique_name("state");
    s3.create_bucket().bucket(&state).send().await.unwrap();
    let (compaction_queue, _) = queue_with_dead_letter_queue(&sqs, false, 3).await;
    let (commit_queue, _) = queue_with_dead_letter_queue(&sqs, true, 3).await;
    let scratch = std::env::temp_dir().join(unique_name("scratch"));

    let start = |binary: &str, name: &str, api: &RuntimeApi| {
        let mut environment = lambda_environment(api, name);
        environment.extend(
            [
                ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
                ("OTLP2PARQUET_STATE_URI", format!("s3://{state}/pipeline")),
                (
                    "OTLP2PARQUET_COMPACTION_QUEUE_URL",
                    compaction_queue.clone(),
                ),
                ("OTLP2PARQUET_COMMIT_QUEUE_URL", commit_queue.clone()),
                ("OTLP2PARQUET_SCRATCH_DIR", scratch.display().to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        environment.extend(
            catalog_environment
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone())),
        );
        FunctionProcess::start(binary, environment)
    };
    let (ingest_api, compactor_api, committer_api) = (
        RuntimeApi::start().await,
        RuntimeApi::start().await,
        RuntimeApi::start().await,
    );
    let _ingest = start(
        &sibling_binary("otlp2parquet-ingest"),
        "otlp2parquet-ingest",
        &ingest_api,
    );
    let _compactor = start(
        &sibling_binary("otlp2parquet-compactor"),
        "otlp2parquet-compactor",
        &compactor_api,
    );
    let _committer = start(
        env!("CARGO_BIN_EXE_otlp2parquet-committer"),
        "otlp2parquet-committer",
        &committer_api,
    );

    // Ingest: each request answered 200 once its raw file and message exist.
    let mut generator = Generator::new(GeneratorConfig {
        records_per_request: RECORDS,
        ..GeneratorConfig::default()
    });
    for _ in 0..REQUESTS {
        let body = generator.next_request(Signal::Logs).encode_protobuf();
        let answer = ingest_api
            .call(http_api_event(
                "/v1/logs",
                json!({"content-type": "application/x-protobuf"}),
                &body,
            ))
            .await;
        let Invocation::Response(response) = answer else {
            panic!("ingest failed: {answer:?}");
        };
        assert_eq!(response["statusCode"], 200, "{response}");
    }

    // Compaction: one plan for the day's logs, announced to the committer.
    let raw_batch = sqs_event(&sqs, &compaction_queue, REQUESTS).await;
    assert_eq!(
        batch_item_failures(compactor_api.call(raw_batch.clone()).await),
        Vec::<String>::new()
    );
    let commit_batch = sqs_event(&sqs, &commit_queue, 1).await;
    let ready: Value =
        serde_json::from_str(commit_batch["Records"][0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(ready["rows"], (REQUESTS * RECORDS) as u64, "{ready}");
    assert_eq!(
        commit_batch["Records"][0]["attributes"]["MessageGroupId"],
        "logs"
    );

    // Commit.
    assert_eq!(
        batch_item_failures(committer_api.call(commit_batch.clone()).await),
        Vec::<String>::new()
    );
    let ident = TableIdent::new(
        NamespaceIdent::new("otel".to_string()),
        Table::Logs.name().to_string(),
    );
    let rows = |table: iceberg::table::Table| async move {
        current_rows(&table)
            .await
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>()
    };
    let table = catalog.load_table(&ident).await.unwrap();
    let location = table.metadata().location().to_string();
    assert_eq!(rows(table).await, REQUESTS * RECORDS);
    let raw_left = s3
        .list_objects_v2()
        .bucket(&state)
        .prefix("pipeline/otel/logs/data/raw/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw_left.key_count(),
        Some(0),
        "raw files are removed once compacted"
    );

    // At least once, everywhere: both batches again change nothing.
    assert_eq!(
        batch_item_failures(compactor_api.call(raw_batch).await),
        Vec::<String>::new()
    );
    assert_eq!(
        batch_item_failures(committer_api.call(commit_batch).await),
        Vec::<String>::new()
    );
    let table = catalog.load_table(&ident).await.unwrap();
    assert_eq!(table.metadata().snapshots().count(), 1);
    assert_eq!(rows(table).await, REQUESTS * RECORDS);
    location
}
