//! The compactor binary itself, run under a Lambda Runtime API stand-in
//! against moto's S3 and SQS: an SQS event of raw-file messages (and one
//! poison message) in, compacted files and a partial batch response out;
//! redelivery; init errors.

use otlp2parquet_aws::{S3Store, SqsQueue, s3_client, sqs_client};
use otlp2parquet_core::Signal;
use otlp2parquet_core::ingest::ingest;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::ports::FAILURE_REASON_ATTRIBUTE;
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use otlp2parquet_testkit::lambda_runtime_api::{
    FunctionProcess, RuntimeApi, batch_item_failures, lambda_environment,
};
use otlp2parquet_testkit::moto::{
    Moto, queue_with_dead_letter_queue, sdk_config, sqs_event, unique_name,
};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;

const REQUESTS: usize = 3;
const RECORDS_PER_REQUEST: usize = 40;

struct Deployment {
    moto: Moto,
    bucket: String,
    queue_url: String,
    dead_letter_url: String,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
}

impl Deployment {
    async fn new() -> Deployment {
        let moto = Moto::start();
        let config = sdk_config(&moto.endpoint).await;
        let s3 = s3_client(&config);
        let sqs = sqs_client(&config);
        let bucket = unique_name("warehouse");
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let (queue_url, dead_letter_url) = queue_with_dead_letter_queue(&sqs, false, 3).await;
        Deployment {
            moto,
            bucket,
            queue_url,
            dead_letter_url,
            s3,
            sqs,
        }
    }

    fn environment(&self, api: &RuntimeApi) -> Vec<(String, String)> {
        let mut environment = lambda_environment(api, "otlp2parquet-compactor");
        let scratch = std::env::temp_dir().join(unique_name("compactor-scratch"));
        environment.extend(
            [
                ("AWS_ENDPOINT_URL", self.moto.endpoint.clone()),
                ("OTLP2PARQUET_CATALOG", "none".into()),
                ("OTLP2PARQUET_S3_BUCKET", self.bucket.clone()),
                ("OTLP2PARQUET_S3_PREFIX", "lake".into()),
                ("OTLP2PARQUET_COMPACTION_QUEUE_URL", self.queue_url.clone()),
                ("OTLP2PARQUET_SCRATCH_DIR", scratch.display().to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        environment
    }

    fn start(&self, environment: Vec<(String, String)>) -> FunctionProcess {
        FunctionProcess::start(env!("CARGO_BIN_EXE_otlp2parquet-compactor"), environment)
    }

    /// Writes raw files and their messages as the ingest function does.
    async fn ingest(&self) {
        let store = S3Store::new(self.s3.clone(), &self.bucket, "lake");
        let queue = SqsQueue::new(self.sqs.clone(), &self.queue_url);
        let mut generator = Generator::new(GeneratorConfig {
            records_per_request: RECORDS_PER_REQUEST,
            ..GeneratorConfig::default()
        });
        for _ in 0..REQUESTS {
            let request = generator.next_request(Signal::Logs);
            ingest(
                request,
                "otel",
                &store,
                &queue,
                &ParquetWriterBuilder::for_raw_files(),
            )
            .await
            .unwrap();
        }
    }

    async fn event(&self, queue_url: &str, expected: usize) -> Value {
        sqs_event(&self.sqs, queue_url, expected).await
    }

    async fn keys(&self, prefix: &str) -> Vec<String> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .send()
            .await
            .unwrap();
        let mut keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        keys.sort();
        keys
    }

    async fn rows(&self, key: &str) -> i64 {
        let object = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let bytes = object.body.collect().await.unwrap().into_bytes();
        let reader = SerializedFileReader::new(bytes).unwrap();
        reader.metadata().file_metadata().num_rows()
    }
}

#[tokio::test]
async fn compacts_a_batch_dead_letters_the_poison_message_and_absorbs_redelivery() {
    let deployment = Deployment::new().await;
    deployment.ingest().await;
    deployment
        .sqs
        .send_message()
        .queue_url(&deployment.queue_url)
        .message_body("this is not a raw-file message")
        .send()
        .await
        .unwrap();
    let event = deployment.event(&deployment.queue_url, REQUESTS + 1).await;
    let api = RuntimeApi::start().await;
    let _function = deployment.start(deployment.environment(&api));

    // The poison message is moved to the dead-letter queue by the function
    // (so it counts as handled), the others are compacted: nothing to hand back.
    assert_eq!(
        batch_item_failures(api.call(event.clone()).await),
        Vec::<String>::new()
    );
    let compacted: Vec<String> = deployment
        .keys("lake/otel/logs/data/")
        .await
        .into_iter()
        .filter(|key| !key.contains("/data/raw/"))
        .collect();
    assert!(!compacted.is_empty());
    let mut rows = 0;
    for key in &compacted {
        assert!(key.contains("/data/Timestamp_day="), "{key}");
        rows += deployment.rows(key).await;
    }
    assert_eq!(rows, (REQUESTS * RECORDS_PER_REQUEST) as i64);
    assert_eq!(
        deployment.keys("lake/otel/logs/data/raw/").await,
        Vec::<String>::new(),
        "raw files are removed once compacted"
    );
    let dead = deployment.event(&deployment.dead_letter_url, 1).await;
    let dead = &dead["Records"][0];
    assert_eq!(dead["body"], "this is not a raw-file message");
    let reason = dead["messageAttributes"][FAILURE_REASON_ATTRIBUTE]["stringValue"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("not a raw-file message"), "{dead}");

    // SQS delivers at least once: the same batch again changes nothing.
    let mut redelivered = event.clone();
    redelivered["Records"]
        .as_array_mut()
        .unwrap()
        .retain(|record| record["body"] != "this is not a raw-file message");
    assert_eq!(
        batch_item_failures(api.call(redelivered).await),
        Vec::<String>::new()
    );
    let again: Vec<String> = deployment
        .keys("lake/otel/logs/data/")
        .await
        .into_iter()
        .filter(|key| !key.contains("/data/raw/"))
        .collect();
    assert_eq!(again, compacted);
}

#[tokio::test]
async fn a_missing_or_invalid_variable_fails_the_init_and_names_it() {
    let deployment = Deployment::new().await;
    let api = RuntimeApi::start().await;
    for (broken, value) in [
        ("OTLP2PARQUET_COMPACTION_QUEUE_URL", ""),
        ("OTLP2PARQUET_STATE_URI", "state-bucket"),
        ("OTLP2PARQUET_COMPACTION_MEMORY_MIB", "a lot"),
    ] {
        let mut environment = deployment.environment(&api);
        environment.retain(|(name, _)| name != broken);
        environment.push((broken.to_string(), value.to_string()));
        let (status, stderr) = deployment.start(environment).exit().await;
        assert!(!status.success());
        assert!(stderr.contains(broken), "{broken}: {stderr}");
    }
}
