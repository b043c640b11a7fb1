//! The OTLP/HTTP receiver answers as the OTLP/HTTP spec says, and a 200 means durable.
//!
//! Requests go through the real axum `Router` in-process (tower's `oneshot`), with
//! the local object store and SQLite queue behind it. Every refused request is
//! checked to have left the warehouse and the queue unchanged.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use otlp2parquet_core::DEFAULT_NAMESPACE;
use otlp2parquet_core::Signal;
use otlp2parquet_core::group::{GroupCommitter, GroupConfig};
use otlp2parquet_core::messages::RawFilesWritten;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::ports::{ObjectStore, ObjectStoreError, Queue};
use otlp2parquet_core::telemetry::Telemetry;
use otlp2parquet_http::{ReceiverConfig, ReceiverState, router};
use otlp2parquet_local::{LocalFsStore, SqliteQueues};
use otlp2parquet_testkit::generate::{Generator, GeneratorConfig};
use otlp2parquet_testkit::store::{Hook, HookedStore, Op, injected};
use prost::Message;
use tower::ServiceExt;

struct Harness {
    dir: tempfile::TempDir,
    queue: Arc<dyn Queue>,
    app: axum::Router,
}

async fn harness(config: ReceiverConfig) -> Harness {
    harness_with(config, GroupConfig::default(), |store| store).await
}

/// A receiver whose group committer has `group`'s settings and writes through
/// the store `wrap` makes of the warehouse's local store.
async fn harness_with(
    config: ReceiverConfig,
    group: GroupConfig,
    wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let queues = SqliteQueues::open(&dir.path().join("queues.db"))
        .await
        .unwrap();
    let queue: Arc<dyn Queue> = Arc::new(queues.queue("raw-files", "raw-files-dlq", 5));
    let store = wrap(Arc::new(LocalFsStore::new(dir.path().join("warehouse"))));
    let telemetry = Arc::new(Telemetry::default());
    let ingestor = GroupCommitter::spawn(
        store,
        queue.clone(),
        DEFAULT_NAMESPACE.to_string(),
        ParquetWriterBuilder::new(),
        group,
        telemetry.clone(),
    );
    let app = router(
        ReceiverState::new(Arc::new(ingestor), config, telemetry)
            .with_watched_queues(vec![queue.clone()]),
    );
    Harness { dir, queue, app }
}

fn files_under(path: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { files_under(&p) } else { 1 })
        .sum()
}

impl Harness {
    async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        // hyper sets Content-Length for a body of known size; so does this harness.
        let mut request = Request::post(path).header("content-length", body.len());
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        (status, headers, body)
    }

    fn warehouse_files(&self) -> usize {
        files_under(&self.dir.path().join("warehouse"))
    }
}

fn logs(records: usize) -> otlp2parquet_core::otlp::ExportRequest {
    Generator::new(GeneratorConfig {
        records_per_request: records,
        ..Default::default()
    })
    .next_request(Signal::Logs)
}

/// Request headers as (name, value) pairs.
type Headers = Vec<(&'static str, &'static str)>;

const PB: (&str, &str) = ("content-type", "application/x-protobuf");
const JSON: (&str, &str) = ("content-type", "application/json");

// A valid export is answered 200 only once its raw files exist and are queued.
#[tokio::test]
async fn accepted_data_is_durable_and_queued() {
    let h = harness(ReceiverConfig::default()).await;
    let (status, headers, body) = h.post("/v1/logs", &[PB], logs(300).encode_protobuf()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-protobuf");
    let response = ExportLogsServiceResponse::decode(body.as_slice()).unwrap();
    assert_eq!(response.partial_success, None);

    let messages = h.queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(messages.len(), 1);
    let message: RawFilesWritten = serde_json::from_slice(&messages[0].body).unwrap();
    assert_eq!(message.files.len(), 1);
    let written = &message.files[0];
    assert_eq!((written.table.as_str(), written.rows), ("logs", 300));
    let path = h.dir.path().join("warehouse").join(&written.key);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), written.bytes);
    assert!(
        written
            .key
            .starts_with("otel/logs/data/raw/Timestamp_day=2026-01-01/"),
        "{}",
        written.key
    );

    // JSON in, JSON out; gzip accepted.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &logs(10).encode_json()).unwrap();
    let (status, headers, body) = h
        .post(
            "/v1/logs",
            &[JSON, ("content-encoding", "gzip")],
            gz.finish().unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(body, b"{}");

    // The counters say the same, in the Prometheus text format.
    let response = h
        .app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("otlp2parquet_records_accepted_total{signal=\"logs\"} 310"),
        "{text}"
    );
    assert!(
        text.contains("otlp2parquet_http_requests_total{outcome=\"ok\"} 2"),
        "{text}"
    );
    // One message was received above and is in flight: it still counts.
    assert!(
        text.contains("otlp2parquet_queue_depth{queue=\"raw-files\"} 2"),
        "{text}"
    );
}

// Rejected records are reported in partial_success, encoded like the request.
#[tokio::test]
async fn partial_success_is_reported() {
    let h = harness(ReceiverConfig::default()).await;
    let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"ok"}},{"spanId":"01"}]}]}]}"#;
    let (status, _, body) = h.post("/v1/logs", &[JSON], body.to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["partialSuccess"]["rejectedLogRecords"], "1");
    assert!(
        json["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("span_id must be 8 bytes")
    );
    assert_eq!(h.queue.depth().await.unwrap(), 1);
}

// Every kind of bad request gets its status, a google.rpc.Status body, and changes nothing.
#[tokio::test]
async fn bad_requests_change_nothing() {
    let h = harness(ReceiverConfig {
        max_body_bytes: 64 * 1024,
        max_decoded_bytes: 256 * 1024,
        ..Default::default()
    })
    .await;
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut bomb, &vec![b' '; 4 * 1024 * 1024]).unwrap();
    let bomb = bomb.finish().unwrap();
    let cases: Vec<(&str, Headers, Vec<u8>, StatusCode)> = vec![
        (
            "/v1/logs",
            vec![PB],
            vec![0x0a, 0xff, 0xff, 0x01],
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/logs",
            vec![JSON],
            b"{not json".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/traces",
            vec![JSON],
            logs(5).encode_json(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/logs",
            vec![JSON],
            br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"xyz"}]}]}]}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/logs",
            vec![("content-type", "text/plain")],
            b"hello".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "/v1/logs",
            vec![],
            logs(5).encode_protobuf(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "/v1/logs",
            vec![PB, ("content-encoding", "br")],
            logs(5).encode_protobuf(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "/v1/logs",
            vec![PB],
            logs(1000).encode_protobuf(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "/v1/logs",
            vec![JSON, ("content-encoding", "gzip")],
            bomb,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "/v1/logs",
            vec![PB, ("content-encoding", "gzip")],
            b"not gzip".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        ("/v1/profiles", vec![PB], vec![], StatusCode::NOT_FOUND),
    ];
    for (path, headers, body, expected) in cases {
        let (status, response_headers, response) = h.post(path, &headers, body).await;
        assert_eq!(
            status,
            expected,
            "{path} {headers:?}: {}",
            String::from_utf8_lossy(&response)
        );
        if headers.contains(&PB) && status != StatusCode::NOT_FOUND {
            assert_eq!(
                response_headers[header::CONTENT_TYPE],
                "application/x-protobuf"
            );
        } else {
            let json: serde_json::Value = serde_json::from_slice(&response).unwrap();
            assert!(
                json["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{json}"
            );
        }
        assert_eq!(h.warehouse_files(), 0, "{path} {headers:?} wrote a file");
        assert_eq!(
            h.queue.depth().await.unwrap(),
            0,
            "{path} {headers:?} queued a message"
        );
    }
    let response = h
        .app
        .clone()
        .oneshot(Request::get("/v1/logs").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

// Past the in-flight byte budget, requests are turned away with 503 and Retry-After.
#[tokio::test]
async fn overload_is_answered_with_retry_after() {
    let h = harness(ReceiverConfig {
        max_in_flight_bytes: 1024,
        ..Default::default()
    })
    .await;
    let body = logs(50).encode_protobuf();
    assert!(body.len() > 1024);
    let (status, headers, _) = h.post("/v1/logs", &[PB], body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert_eq!(h.warehouse_files(), 0);
}

// A body that does not arrive in time is refused with 408 (slowloris).
#[tokio::test]
async fn slow_bodies_time_out() {
    let h = harness(ReceiverConfig {
        body_timeout: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
    let slow = Body::from_stream(tokio_stream_from(rx));
    tx.send(Ok(axum::body::Bytes::from_static(b"\x0a")))
        .await
        .unwrap();
    let request = Request::post("/v1/logs")
        .header("content-type", "application/x-protobuf")
        .body(slow)
        .unwrap();
    let response = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    drop(tx);
    assert_eq!(h.warehouse_files(), 0);
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<axum::body::Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

// Concurrent requests share raw files (group commit): fewer files and messages than
// requests, every row of every acknowledged request in them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_raw_files() {
    let h = harness_with(
        ReceiverConfig::default(),
        GroupConfig {
            max_delay: Duration::from_millis(200),
            ..Default::default()
        },
        |store| store,
    )
    .await;
    let h = std::sync::Arc::new(h);
    let mut tasks = Vec::new();
    for seed in 0..20u64 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let body = Generator::new(GeneratorConfig {
                seed,
                records_per_request: 50,
                services: 2,
                ..Default::default()
            })
            .next_request(Signal::Logs)
            .encode_protobuf();
            h.post("/v1/logs", &[PB], body).await.0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    let messages = h.queue.receive(100, Duration::from_secs(30)).await.unwrap();
    assert!(
        messages.len() < 20,
        "{} messages for 20 requests",
        messages.len()
    );
    let rows: u64 = messages
        .iter()
        .flat_map(|m| {
            serde_json::from_slice::<RawFilesWritten>(&m.body)
                .unwrap()
                .files
        })
        .map(|f| f.rows)
        .sum();
    assert_eq!(rows, 20 * 50);
    assert!(h.warehouse_files() < 20);
}

/// Refuses to store trace files; everything else goes through.
struct NoTraceFiles;

#[async_trait::async_trait]
impl Hook for NoTraceFiles {
    async fn before(&self, op: Op, key: &str) -> Result<(), ObjectStoreError> {
        if op == Op::Put && key.contains("/traces/") {
            return Err(injected(key, "refusal of trace files"));
        }
        Ok(())
    }
}

// A request that fails inside a group commit fails alone: the trace request
// whose file the store refuses gets a 503, the log requests grouped with it get
// their 200, and the queue names exactly the log requests' rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_request_fails_alone_in_its_group() {
    let h = Arc::new(
        harness_with(
            ReceiverConfig::default(),
            GroupConfig {
                max_delay: Duration::from_millis(300),
                ..Default::default()
            },
            |store| Arc::new(HookedStore::new(store, NoTraceFiles)),
        )
        .await,
    );
    let mut tasks = Vec::new();
    for seed in 0..6u64 {
        let h = h.clone();
        let (signal, path) = if seed == 3 {
            (Signal::Traces, "/v1/traces")
        } else {
            (Signal::Logs, "/v1/logs")
        };
        tasks.push(tokio::spawn(async move {
            let body = Generator::new(GeneratorConfig {
                seed,
                records_per_request: 40,
                ..Default::default()
            })
            .next_request(signal)
            .encode_protobuf();
            (signal, h.post(path, &[PB], body).await.0)
        }));
    }
    for task in tasks {
        let (signal, status) = task.await.unwrap();
        let expected = match signal {
            Signal::Traces => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::OK,
        };
        assert_eq!(status, expected, "{signal}");
    }
    let messages = h.queue.receive(100, Duration::from_secs(30)).await.unwrap();
    let files: Vec<_> = messages
        .iter()
        .flat_map(|m| {
            serde_json::from_slice::<RawFilesWritten>(&m.body)
                .unwrap()
                .files
        })
        .collect();
    assert!(files.iter().all(|f| f.table == "logs"), "{files:?}");
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 5 * 40);
}
