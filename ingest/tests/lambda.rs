//! The ingest binary itself, run under a Lambda Runtime API stand-in against
//! moto's S3 and SQS: API Gateway v1 and v2 (function URL) events, base64 and
//! gzip bodies, the OTLP answers, 400 and 413, and init errors.

use std::io::Write;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use otlp2parquet_core::Signal;
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use otlp2parquet_testkit::lambda_runtime_api::{
    FunctionProcess, Invocation, RuntimeApi, http_api_event, lambda_environment,
};
use otlp2parquet_testkit::moto::{Moto, sdk_config, unique_name};
use prost::Message;
use serde_json::{Value, json};

const MAX_BODY_BYTES: usize = 256 * 1024;

struct Deployment {
    _moto: Moto,
    endpoint: String,
    bucket: String,
    queue_url: String,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
}

impl Deployment {
    async fn new() -> Deployment {
        let moto = Moto::start();
        let config = sdk_config(&moto.endpoint).await;
        let s3 = otlp2parquet_aws::s3_client(&config);
        let sqs = otlp2parquet_aws::sqs_client(&config);
        let bucket = unique_name("warehouse");
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let queue_url = sqs
            .create_queue()
            .queue_name(unique_name("compaction"))
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        Deployment {
            endpoint: moto.endpoint.clone(),
            _moto: moto,
            bucket,
            queue_url,
            s3,
            sqs,
        }
    }

    /// The function's environment, as the stack would set it.
    fn environment(&self, api: &RuntimeApi) -> Vec<(String, String)> {
        let mut environment = lambda_environment(api, "otlp2parquet-ingest");
        environment.extend(
            [
                ("AWS_ENDPOINT_URL", self.endpoint.clone()),
                ("OTLP2PARQUET_CATALOG", "none".into()),
                ("OTLP2PARQUET_S3_BUCKET", self.bucket.clone()),
                ("OTLP2PARQUET_S3_PREFIX", "lake".into()),
                ("OTLP2PARQUET_COMPACTION_QUEUE_URL", self.queue_url.clone()),
                ("OTLP2PARQUET_MAX_BODY_BYTES", MAX_BODY_BYTES.to_string()),
            ]
            .map(|(k, v)| (k.to_string(), v)),
        );
        environment
    }

    fn start(&self, environment: Vec<(String, String)>) -> FunctionProcess {
        FunctionProcess::start(env!("CARGO_BIN_EXE_otlp2parquet-ingest"), environment)
    }

    async fn raw_files(&self) -> Vec<String> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix("lake/")
            .send()
            .await
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }

    async fn messages(&self) -> Vec<Value> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        received
            .messages()
            .iter()
            .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
            .collect()
    }
}

fn request(signal: Signal, records: usize) -> otlp2parquet_core::otlp::ExportRequest {
    Generator::new(GeneratorConfig {
        records_per_request: records,
        ..GeneratorConfig::default()
    })
    .next_request(signal)
}

/// A REST API (v1 proxy) event.
fn rest_api_event(path: &str, headers: Value, body: &[u8]) -> Value {
    json!({
        "resource": path,
        "path": path,
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {},
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "resourcePath": path,
            "httpMethod": "POST",
            "path": format!("/prod{path}"),
            "stage": "prod",
            "requestId": "id",
            "identity": { "sourceIp": "192.0.2.1" }
        },
        "body": BASE64.encode(body),
        "isBase64Encoded": true
    })
}

/// The status code and decoded body of a proxy response.
fn answer(invocation: Invocation) -> (u16, Vec<u8>) {
    let Invocation::Response(response) = invocation else {
        panic!("the function failed: {invocation:?}");
    };
    let status = response["statusCode"].as_u64().unwrap() as u16;
    let body = response["body"].as_str().unwrap_or_default();
    let body = if response["isBase64Encoded"].as_bool().unwrap_or(false) {
        BASE64.decode(body).unwrap()
    } else {
        body.as_bytes().to_vec()
    };
    (status, body)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn api_gateway_events_become_raw_files_and_one_message_each() {
    let deployment = Deployment::new().await;
    let api = RuntimeApi::start().await;
    let _function = deployment.start(deployment.environment(&api));

    // HTTP API / function URL, protobuf, base64.
    let logs = request(Signal::Logs, 25);
    let (status, body) = answer(
        api.call(http_api_event(
            "/v1/logs",
            json!({"content-type": "application/x-protobuf"}),
            &logs.encode_protobuf(),
        ))
        .await,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let response =
        opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse::decode(
            body.as_slice(),
        )
        .unwrap();
    assert!(response.partial_success.is_none());

    // REST API, gzip'd OTLP JSON.
    let traces = request(Signal::Traces, 10);
    let (status, body) = answer(
        api.call(rest_api_event(
            "/v1/traces",
            json!({"Content-Type": "application/json", "Content-Encoding": "gzip"}),
            &gzip(&traces.encode_json()),
        ))
        .await,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body.get("partialSuccess").is_none(), "{body}");

    let files = deployment.raw_files().await;
    assert!(
        files
            .iter()
            .any(|k| k.starts_with("lake/otel/logs/data/raw/")),
        "{files:?}"
    );
    assert!(
        files
            .iter()
            .any(|k| k.starts_with("lake/otel/traces/data/raw/")),
        "{files:?}"
    );
    let messages = deployment.messages().await;
    assert_eq!(messages.len(), 2, "{messages:?}");
    let rows: u64 = messages
        .iter()
        .flat_map(|m| m["files"].as_array().unwrap())
        .map(|f| f["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, 25 + 10);
    for file in messages.iter().flat_map(|m| m["files"].as_array().unwrap()) {
        let key = format!("lake/{}", file["key"].as_str().unwrap());
        assert!(files.contains(&key), "{key} announced but not stored");
    }

    // Refused requests change nothing.
    let before = deployment.raw_files().await.len();
    let (status, body) = answer(
        api.call(http_api_event(
            "/v1/logs",
            json!({"content-type": "application/x-protobuf"}),
            b"\xff\xff\xff\xff not protobuf",
        ))
        .await,
    );
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    let (status, body) = answer(
        api.call(http_api_event(
            "/v1/logs",
            json!({"content-type": "application/json"}),
            &big,
        ))
        .await,
    );
    assert_eq!(status, 413);
    let body: Value = serde_json::from_slice(&body).unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("lower the exporter's batch size"),
        "{message}"
    );
    let (status, _) = answer(
        api.call(http_api_event(
            "/v1/logs",
            json!({"content-type": "text/plain"}),
            b"hello",
        ))
        .await,
    );
    assert_eq!(status, 415);
    assert_eq!(deployment.raw_files().await.len(), before);
    assert!(deployment.messages().await.is_empty());
}

#[tokio::test]
async fn a_missing_or_invalid_variable_fails_the_init_and_names_it() {
    let deployment = Deployment::new().await;
    let api = RuntimeApi::start().await;
    for (broken, value) in [
        ("OTLP2PARQUET_COMPACTION_QUEUE_URL", ""),
        ("OTLP2PARQUET_CATALOG", "glue"),
        ("OTLP2PARQUET_MAX_BODY_BYTES", "six megabytes"),
        // The SDK's configuration comes from the same variables (Lambda's own).
        ("AWS_REGION", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
    ] {
        let environment = deployment
            .environment(&api)
            .into_iter()
            .map(|(name, v)| {
                let v = if name == broken { value.to_string() } else { v };
                (name, v)
            })
            .collect();
        let (status, stderr) = deployment.start(environment).exit().await;
        assert!(!status.success());
        assert!(stderr.contains(broken), "{broken}: {stderr}");
    }
}

#[tokio::test]
async fn logs_are_json_lines_when_the_function_asks_for_json() {
    // Lambda's advanced logging controls: LoggingFormat JSON sets
    // AWS_LAMBDA_LOG_FORMAT, and CloudWatch then expects one JSON object a line.
    let deployment = Deployment::new().await;
    let api = RuntimeApi::start().await;
    let mut environment: Vec<(String, String)> = deployment
        .environment(&api)
        .into_iter()
        .filter(|(name, _)| name != "OTLP2PARQUET_CATALOG")
        .collect();
    environment.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
    environment.push(("AWS_LAMBDA_LOG_LEVEL".into(), "WARN".into()));
    let (status, stderr) = deployment.start(environment).exit().await;
    assert!(!status.success());
    let logged: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let error = logged
        .iter()
        .find(|line| line["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no JSON error line in {stderr}"));
    assert!(
        error.to_string().contains("OTLP2PARQUET_CATALOG"),
        "{error}"
    );
}
