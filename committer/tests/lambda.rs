//! The committer binary itself, run under a Lambda Runtime API stand-in
//! against moto's S3, SQS (FIFO, with a dead-letter queue) and S3 Tables:
//! "data files ready" messages in (two compactions, one of them sent twice,
//! and a poison message), appends in S3 Tables out, each compaction exactly
//! once; a redelivered batch adds nothing; init errors name the variable.

use std::sync::Arc;

use iceberg::spec::{FormatVersion, serialize_data_file_to_json};
use iceberg::{Catalog, NamespaceIdent, TableIdent};
use otlp2parquet_aws::{S3Store, SqsQueue, s3_client, sqs_client};
use otlp2parquet_core::convert::convert;
use otlp2parquet_core::datafile::data_file;
use otlp2parquet_core::messages::DataFilesReady;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::partition::{partition_path, split_by_day};
use otlp2parquet_core::ports::{
    FAILURE_REASON_ATTRIBUTE, ObjectStore, Queue, SendOptions, parquet_metadata,
};
use otlp2parquet_core::schema::TableDefinition;
use otlp2parquet_core::{Signal, Table};
use otlp2parquet_iceberg::catalog::ensure_table;
use otlp2parquet_iceberg::s3tables::S3TablesCatalog;
use otlp2parquet_iceberg::storage::PortStorageFactory;
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use otlp2parquet_testkit::lambda_runtime_api::{
    FunctionProcess, Invocation, RuntimeApi, batch_item_failures, lambda_environment,
};
use otlp2parquet_testkit::moto::{
    Moto, queue_with_dead_letter_queue, sdk_config, sqs_event, unique_name,
};
use otlp2parquet_testkit::scan::current_rows;
use serde_json::Value;

struct Deployment {
    moto: Moto,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    arn: String,
    state_bucket: String,
    queue_url: String,
    dead_letter_url: String,
    catalog: S3TablesCatalog,
}

impl Deployment {
    async fn new() -> Deployment {
        let moto = Moto::start();
        let config = sdk_config(&moto.endpoint).await;
        let s3 = s3_client(&config);
        let sqs = sqs_client(&config);
        let control = aws_sdk_s3tables::Client::new(&config);
        let arn = control
            .create_table_bucket()
            .name(unique_name("tables"))
            .send()
            .await
            .unwrap()
            .arn()
            .to_string();
        let state_bucket = unique_name("state");
        s3.create_bucket()
            .bucket(&state_bucket)
            .send()
            .await
            .unwrap();
        let (queue_url, dead_letter_url) = queue_with_dead_letter_queue(&sqs, true, 3).await;
        let files = s3.clone();
        let storage = PortStorageFactory::new(move |bucket| {
            Arc::new(S3Store::new(files.clone(), bucket, "")) as Arc<dyn ObjectStore>
        });
        let catalog = S3TablesCatalog::new(control, &arn, Arc::new(storage)).unwrap();
        Deployment {
            moto,
            s3,
            sqs,
            arn,
            state_bucket,
            queue_url,
            dead_letter_url,
            catalog,
        }
    }

    fn environment(&self, api: &RuntimeApi) -> Vec<(String, String)> {
        let mut environment = lambda_environment(api, "otlp2parquet-committer");
        environment.extend(
            [
                ("AWS_ENDPOINT_URL", self.moto.endpoint.clone()),
                ("OTLP2PARQUET_CATALOG", "s3tables".into()),
                ("OTLP2PARQUET_ICEBERG_WAREHOUSE", self.arn.clone()),
                (
                    "OTLP2PARQUET_STATE_URI",
                    format!("s3://{}/pipeline", self.state_bucket),
                ),
                ("OTLP2PARQUET_COMMIT_QUEUE_URL", self.queue_url.clone()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        environment
    }

    fn start(&self, environment: Vec<(String, String)>) -> FunctionProcess {
        FunctionProcess::start(env!("CARGO_BIN_EXE_otlp2parquet-committer"), environment)
    }

    /// What a compactor announces for `records` log records: Parquet files
    /// in the table's own location, described as Iceberg data files.
    async fn compaction(&self, location: &str, records: usize) -> DataFilesReady {
        let bucket = location
            .strip_prefix("s3://")
            .unwrap()
            .trim_end_matches('/');
        let store = S3Store::new(self.s3.clone(), bucket, "");
        let request = Generator::new(GeneratorConfig {
            records_per_request: records,
            ..GeneratorConfig::default()
        })
        .next_request(Signal::Logs);
        let (_, batch) = convert(request).unwrap().batches.remove(0);
        let def = TableDefinition::get(Table::Logs);
        let partition_type = def.partition_spec.partition_type(&def.schema).unwrap();
        let compaction = uuid::Uuid::new_v4().to_string();
        let mut ready = DataFilesReady {
            table: Table::Logs.name().to_string(),
            compaction: compaction.clone(),
            rows: 0,
            data_files: Vec::new(),
        };
        for (day, part) in split_by_day(Table::Logs, &batch).unwrap() {
            let bytes = ParquetWriterBuilder::new()
                .write(def.arrow_schema.clone(), &[part], Vec::new())
                .unwrap();
            let key = format!(
                "data/{}/{compaction}.parquet",
                partition_path(Table::Logs, day)
            );
            let size = bytes.len() as u64;
            store.put(&key, bytes.into()).await.unwrap();
            let metadata = parquet_metadata(&store, &key).await.unwrap();
            let file = data_file(Table::Logs, store.uri(&key), size, &metadata).unwrap();
            ready.rows += file.record_count();
            ready.data_files.push(
                serialize_data_file_to_json(file, &partition_type, FormatVersion::V2).unwrap(),
            );
        }
        ready
    }

    async fn send(&self, body: &str, group: &str, deduplication_id: &str) {
        SqsQueue::new(self.sqs.clone(), &self.queue_url)
            .send_with(
                body.as_bytes(),
                &SendOptions::default()
                    .with_group_id(group)
                    .with_deduplication_id(deduplication_id),
            )
            .await
            .unwrap();
    }

    /// The logs table's location, the table created first as the compactor
    /// does on first use to learn it.
    async fn logs_location(&self) -> String {
        let namespace = NamespaceIdent::new("otel".to_string());
        let table = ensure_table(&self.catalog, &namespace, Table::Logs)
            .await
            .unwrap();
        table.metadata().location().to_string()
    }

    /// Hands `event` to the function and, as the event source mapping does
    /// when no message is reported failed, deletes its messages.
    async fn deliver(&self, api: &RuntimeApi, event: Value) {
        assert_eq!(
            batch_item_failures(api.call(event.clone()).await),
            Vec::<String>::new()
        );
        for record in event["Records"].as_array().unwrap() {
            self.sqs
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(record["receiptHandle"].as_str().unwrap())
                .send()
                .await
                .unwrap();
        }
    }

    async fn rows(&self) -> usize {
        let ident = TableIdent::new(
            NamespaceIdent::new("otel".to_string()),
            Table::Logs.name().to_string(),
        );
        let table = self.catalog.load_table(&ident).await.unwrap();
        current_rows(&table)
            .await
            .iter()
            .map(|b| b.num_rows())
            .sum()
    }
}

#[tokio::test]
async fn commits_each_compaction_once_and_dead_letters_the_poison_message() {
    let d = Deployment::new().await;
    let location = d.logs_location().await;
    let first = d.compaction(&location, 120).await;
    let second = d.compaction(&location, 80).await;
    let first_body = serde_json::to_string(&first).unwrap();
    d.send(&first_body, "logs", &first.compaction).await;
    d.send(
        &serde_json::to_string(&second).unwrap(),
        "logs",
        &second.compaction,
    )
    .await;
    // A compactor that announced the first compaction again, after SQS's
    // five-minute deduplication window.
    d.send(&first_body, "logs", "resent-after-the-window").await;
    d.send("this is not a data-files message", "other", "poison")
        .await;
    let event = sqs_event(&d.sqs, &d.queue_url, 4).await;

    let api = RuntimeApi::start().await;
    let _function = d.start(d.environment(&api));
    assert_eq!(
        batch_item_failures(api.call(event.clone()).await),
        Vec::<String>::new()
    );
    assert_eq!(d.rows().await, 200);

    let dead = sqs_event(&d.sqs, &d.dead_letter_url, 1).await;
    let dead = &dead["Records"][0];
    assert_eq!(dead["body"], "this is not a data-files message");
    let reason = dead["messageAttributes"][FAILURE_REASON_ATTRIBUTE]["stringValue"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!reason.is_empty(), "{dead}");

    // The whole batch again (a timeout after the commit, say): nothing twice.
    let mut redelivered: Value = event.clone();
    redelivered["Records"]
        .as_array_mut()
        .unwrap()
        .retain(|record| record["body"] != "this is not a data-files message");
    assert_eq!(
        batch_item_failures(api.call(redelivered).await),
        Vec::<String>::new()
    );
    assert_eq!(d.rows().await, 200);
}

/// With OTLP2PARQUET_COMMIT_BATCH_COMPACTIONS the function stages what a
/// batch announces and commits once enough has gathered — or, for the last
/// ones, when a schedule's event finds the oldest has waited long enough.
#[tokio::test]
async fn staged_compactions_are_committed_together_or_by_the_schedule() {
    let d = Deployment::new().await;
    let location = d.logs_location().await;
    let namespace = NamespaceIdent::new("otel".to_string());
    let api = RuntimeApi::start().await;
    let mut environment = d.environment(&api);
    environment.push(("OTLP2PARQUET_COMMIT_BATCH_COMPACTIONS".into(), "3".into()));
    environment.push(("OTLP2PARQUET_COMMIT_MAX_WAIT_SECS".into(), "1".into()));
    let _function = d.start(environment);
    let snapshots = || async {
        let ident = TableIdent::new(namespace.clone(), Table::Logs.name().to_string());
        let table = d.catalog.load_table(&ident).await.unwrap();
        table.metadata().snapshots().count()
    };

    // One compaction of `records` rows announced, and its batch delivered.
    let announce = |records: usize| {
        let (d, api, location) = (&d, &api, &location);
        async move {
            let ready = d.compaction(location, records).await;
            let body = serde_json::to_string(&ready).unwrap();
            d.send(&body, "logs", &ready.compaction).await;
            d.deliver(api, sqs_event(&d.sqs, &d.queue_url, 1).await)
                .await;
        }
    };
    announce(10).await;
    announce(20).await;
    assert_eq!(
        snapshots().await,
        0,
        "two compactions staged, three make a commit"
    );
    announce(30).await;
    assert_eq!((snapshots().await, d.rows().await), (1, 60));

    // The last one alone: the schedule commits it once it has waited 1 s.
    announce(5).await;
    let scheduled = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"});
    let Invocation::Response(early) = api.call(scheduled.clone()).await else {
        panic!("the scheduled event failed")
    };
    assert_eq!(early["commits"], 0, "{early}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let Invocation::Response(due) = api.call(scheduled).await else {
        panic!("the scheduled event failed")
    };
    assert_eq!(
        (due["commits"].as_u64(), due["rows"].as_u64()),
        (Some(1), Some(5)),
        "{due}"
    );
    assert_eq!((snapshots().await, d.rows().await), (2, 65));
}

#[tokio::test]
async fn a_missing_or_invalid_variable_fails_the_init_and_names_it() {
    let d = Deployment::new().await;
    let api = RuntimeApi::start().await;
    for (broken, value) in [
        ("OTLP2PARQUET_ICEBERG_WAREHOUSE", "telemetry"),
        ("OTLP2PARQUET_STATE_URI", ""),
        ("OTLP2PARQUET_CATALOG", "none"),
    ] {
        let mut environment = d.environment(&api);
        environment.retain(|(name, _)| name != broken);
        environment.push((broken.to_string(), value.to_string()));
        let (status, stderr) = d.start(environment).exit().await;
        assert!(!status.success());
        assert!(stderr.contains(broken), "{broken}: {stderr}");
    }
}
