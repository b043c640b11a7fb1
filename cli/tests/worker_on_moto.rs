//! `otlp2parquet worker compact` against moto's S3 and SQS, in plain mode:
//! it drains the compaction queue with the Lambda function's own handler —
//! raw files compacted, a poison message moved to the dead-letter queue with
//! its reason, every handled message deleted — and stops when the queue is
//! empty (`--exit-when-empty`).

use std::process::Command;
use std::time::Duration;

use otlp2parquet_aws::{S3Store, SqsQueue, s3_client, sqs_client};
use otlp2parquet_core::Signal;
use otlp2parquet_core::ingest::ingest;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::ports::{FAILURE_REASON_ATTRIBUTE, ObjectStore, Queue, parquet_metadata};
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use otlp2parquet_testkit::moto::{Moto, queue_with_dead_letter_queue, sdk_config, unique_name};

#[tokio::test]
async fn a_compact_worker_drains_its_queue_like_the_lambda_function() {
    let moto = Moto::start();
    let config = sdk_config(&moto.endpoint).await;
    let (s3, sqs) = (s3_client(&config), sqs_client(&config));
    let bucket = unique_name("warehouse");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let (url, dead_letter_url) = queue_with_dead_letter_queue(&sqs, false, 3).await;
    let store = S3Store::new(s3.clone(), &bucket, "lake");
    let queue = SqsQueue::new(sqs.clone(), &url);
    let mut generator = Generator::new(GeneratorConfig {
        records_per_request: 60,
        ..GeneratorConfig::default()
    });
    for _ in 0..2 {
        ingest(
            generator.next_request(Signal::Logs),
            "otel",
            &store,
            &queue,
            &ParquetWriterBuilder::for_raw_files(),
        )
        .await
        .unwrap();
    }
    queue.send(b"not a raw-file message").await.unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_otlp2parquet"))
        .args(["worker", "compact", "--exit-when-empty"])
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("OTLP2PARQUET_CATALOG", "none")
        .env("OTLP2PARQUET_S3_BUCKET", &bucket)
        .env("OTLP2PARQUET_S3_PREFIX", "lake")
        .env("OTLP2PARQUET_COMPACTION_QUEUE_URL", &url)
        .env(
            "OTLP2PARQUET_SCRATCH_DIR",
            std::env::temp_dir().join(unique_name("scratch")),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("worker stopped"), "{stderr}");

    let keys = store.list("otel/logs/data/").await.unwrap();
    let compacted: Vec<&String> = keys.iter().filter(|k| !k.contains("/raw/")).collect();
    assert!(!compacted.is_empty(), "{keys:?}");
    assert_eq!(compacted.len(), keys.len(), "raw files removed: {keys:?}");
    let mut rows = 0;
    for key in compacted {
        rows += parquet_metadata(&store, key)
            .await
            .unwrap()
            .file_metadata()
            .num_rows();
    }
    assert_eq!(rows, 120);
    assert_eq!(
        queue.depth().await.unwrap(),
        0,
        "every handled message deleted"
    );
    let dead = SqsQueue::new(sqs, &dead_letter_url)
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].attributes[FAILURE_REASON_ATTRIBUTE].contains("not a raw-file message"),
        "{:?}",
        dead[0].attributes
    );
}
