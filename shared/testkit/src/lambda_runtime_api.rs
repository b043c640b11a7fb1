//! A stand-in for the AWS Lambda Runtime API, so tests run the Lambda binaries
//! themselves: the binary, started with `AWS_LAMBDA_RUNTIME_API` pointing
//! here, asks for its next event, and posts the response or error, exactly as
//! on Lambda.
//!
//! The protocol is four calls (`GET …/invocation/next`, `POST
//! …/invocation/{id}/response`, `POST …/invocation/{id}/error`, `POST
//! …/init/error`), documented by AWS as the "Lambda runtime API".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::{Notify, mpsc};

/// What a function answered to one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// The handler's response (for an API Gateway event: the proxy response JSON).
    Response(serde_json::Value),
    /// The handler failed: the runtime's error document.
    Error(serde_json::Value),
}

#[derive(Default)]
struct Shared {
    results: Mutex<HashMap<String, Invocation>>,
    init_error: Mutex<Option<serde_json::Value>>,
    changed: Notify,
}

struct ApiState {
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, serde_json::Value)>>,
    shared: Arc<Shared>,
}

/// A running Runtime API stand-in on a loopback port.
pub struct RuntimeApi {
    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    events: mpsc::UnboundedSender<(String, serde_json::Value)>,
    shared: Arc<Shared>,
    next_id: std::sync::atomic::AtomicU64,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Starts the stand-in.
    pub async fn start() -> RuntimeApi {
        let (events, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let state = Arc::new(ApiState {
            events: tokio::sync::Mutex::new(receiver),
            shared: shared.clone(),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RuntimeApi {
            address,
            events,
            shared,
            next_id: 0.into(),
            server,
        }
    }

    /// Queues `event` for the function; returns its request id.
    pub fn invoke(&self, event: serde_json::Value) -> String {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("request-{n}");
        let _ = self.events.send((id.clone(), event));
        id
    }

    /// What the function answered to request `id`, waiting up to `timeout`.
    ///
    /// # Panics
    /// When no answer comes in time.
    pub async fn result(&self, id: &str, timeout: Duration) -> Invocation {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            if let Some(result) = self.shared.results.lock().unwrap().get(id) {
                return result.clone();
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("the function did not answer {id} within {timeout:?}");
            }
        }
    }

    /// [`RuntimeApi::invoke`] then [`RuntimeApi::result`] within 30 s.
    pub async fn call(&self, event: serde_json::Value) -> Invocation {
        let id = self.invoke(event);
        self.result(&id, Duration::from_secs(30)).await
    }

    /// The init error the function reported, if any.
    pub fn init_error(&self) -> Option<serde_json::Value> {
        self.shared.init_error.lock().unwrap().clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let Some((id, event)) = state.events.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), Vec::new());
    };
    let deadline = SystemTime::now() + Duration::from_secs(60);
    let deadline_ms = deadline.duration_since(UNIX_EPOCH).unwrap().as_millis();
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
    headers.insert(
        "lambda-runtime-deadline-ms",
        deadline_ms.to_string().parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:test"
            .parse()
            .unwrap(),
    );
    headers.insert("content-type", "application/json".parse().unwrap());
    (StatusCode::OK, headers, serde_json::to_vec(&event).unwrap())
}

fn record(state: &ApiState, id: String, result: Invocation) -> StatusCode {
    state.shared.results.lock().unwrap().insert(id, result);
    state.shared.changed.notify_waiters();
    StatusCode::ACCEPTED
}

fn json(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into()))
}

async fn response(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    record(&state, id, Invocation::Response(json(&body)))
}

async fn error(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    record(&state, id, Invocation::Error(json(&body)))
}

async fn init_error(State(state): State<Arc<ApiState>>, body: Bytes) -> StatusCode {
    *state.shared.init_error.lock().unwrap() = Some(json(&body));
    state.shared.changed.notify_waiters();
    StatusCode::ACCEPTED
}

/// The variables Lambda sets for a function named `name` whose runtime asks
/// `api` for events, with moto's fixed test credentials; a test adds the
/// function's own (`AWS_ENDPOINT_URL`, `OTLP2PARQUET_*`).
pub fn lambda_environment(api: &RuntimeApi, name: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", api.address.as_str()),
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "stream"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", &format!("/aws/lambda/{name}")),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A function's process, killed when dropped.
pub struct FunctionProcess(std::process::Child);

impl FunctionProcess {
    /// Starts `binary` with exactly `environment` (and `PATH`), its standard
    /// error captured for [`FunctionProcess::exit`].
    ///
    /// # Panics
    /// When the binary cannot be started.
    pub fn start(binary: &str, environment: Vec<(String, String)>) -> FunctionProcess {
        let child = std::process::Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(environment)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        FunctionProcess(child)
    }

    /// Waits (up to 30 s) for the process to exit; its status and standard
    /// error.
    ///
    /// # Panics
    /// When it does not exit in time.
    pub async fn exit(mut self) -> (std::process::ExitStatus, String) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.0.try_wait().expect("the function's status") {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the function did not exit"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = self.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        (status, stderr)
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTP API (payload v2) event, as API Gateway and function URLs send
/// it: a POST of `body` (base64-encoded, as binary bodies arrive) to `path`.
pub fn http_api_event(path: &str, headers: serde_json::Value, body: &[u8]) -> serde_json::Value {
    use base64::Engine;
    serde_json::json!({
        "version": "2.0",
        "routeKey": format!("POST {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "api",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "OTel-OTLP-Exporter-Rust/0.31.0"
            },
            "requestId": "id",
            "routeKey": format!("POST {path}"),
            "stage": "$default",
            "time": "01/Dec/2026:00:00:00 +0000",
            "timeEpoch": 1_796_083_200_000u64
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    })
}

/// The ids an SQS-fed function reported as failed (`batchItemFailures`).
///
/// # Panics
/// When the function failed, or answered something that is not a batch
/// response.
pub fn batch_item_failures(invocation: Invocation) -> Vec<String> {
    let Invocation::Response(response) = invocation else {
        panic!("the function failed: {invocation:?}");
    };
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch response: {response}"))
        .iter()
        .map(|failure| {
            failure["itemIdentifier"]
                .as_str()
                .unwrap_or_else(|| panic!("a failure without an id: {failure}"))
                .to_string()
        })
        .collect()
}
