//! Group commit for ingest: the requests of a few milliseconds share one file.
//!
//! Written one by one, every request would make one small Parquet file per table
//! and day, one fsync and one queue message — thousands of tiny files a minute
//! under load, and a per-file cost that dominates the CPU (see the README's
//! benchmarks). The group committer collects the converted batches of concurrent
//! requests for up to `max_delay` (or `max_rows`), writes one file per table and
//! day for all of them, stores them, queues one message naming them all, and only
//! then answers every request of the group. No request is acknowledged before its
//! data is durable and queued. When a group's write fails, its requests are
//! written again one by one, so that one bad request (or one file the store
//! refuses) fails only the request it belongs to.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::ingest::{DayPart, EncodedRawFile, IngestOutcome, Ingestor, store_raw_files};
use crate::parquet::ParquetWriterBuilder;
use crate::ports::{ObjectStore, Queue};
use crate::schema::TableDefinition;
use crate::telemetry::Telemetry;
use crate::{Error, Table};

/// Settings of the group committer.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Longest a request waits for others to share its files.
    pub max_delay: Duration,
    /// A group is written as soon as it holds this many rows.
    pub max_rows: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            max_delay: Duration::from_millis(5),
            max_rows: 200_000,
        }
    }
}

/// The rows of one request, split by table and day, waiting for a group.
struct Submission {
    parts: Vec<DayPart>,
    reply: oneshot::Sender<Result<u64, Arc<Error>>>,
}

/// Handle to the background task; cheap to clone.
#[derive(Clone)]
pub struct GroupCommitter {
    tx: mpsc::Sender<Submission>,
}

impl GroupCommitter {
    /// Starts the background task on the current tokio runtime.
    pub fn spawn(
        store: Arc<dyn ObjectStore>,
        queue: Arc<dyn Queue>,
        namespace: String,
        writer: ParquetWriterBuilder,
        config: GroupConfig,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(run(
            rx,
            GroupSink {
                store,
                queue,
                namespace,
                writer,
                telemetry,
            },
            config,
        ));
        GroupCommitter { tx }
    }

    /// Hands the rows of one request to the next group and waits until that group
    /// is durable and queued. Returns the number of rows written.
    /// Fails with [`Error::Stopped`] when the committer is shutting down.
    pub async fn submit(&self, parts: Vec<DayPart>) -> Result<u64, Arc<Error>> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Submission { parts, reply })
            .await
            .map_err(|_| Arc::new(Error::Stopped))?;
        answer.await.map_err(|_| Arc::new(Error::Stopped))?
    }
}

/// Where a group's files go.
struct GroupSink {
    store: Arc<dyn ObjectStore>,
    queue: Arc<dyn Queue>,
    namespace: String,
    writer: ParquetWriterBuilder,
    telemetry: Arc<Telemetry>,
}

impl GroupSink {
    fn record(&self, outcome: &IngestOutcome) {
        self.telemetry.record_raw_files(
            outcome.files.len(),
            outcome.files.iter().map(|f| f.bytes).sum(),
        );
    }
}

async fn run(mut rx: mpsc::Receiver<Submission>, sink: GroupSink, config: GroupConfig) {
    while let Some(first) = rx.recv().await {
        let deadline = Instant::now() + config.max_delay;
        let mut rows: usize = first.parts.iter().map(|(_, _, b)| b.num_rows()).sum();
        let mut group = vec![first];
        while rows < config.max_rows {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(next)) => {
                    rows += next
                        .parts
                        .iter()
                        .map(|(_, _, b)| b.num_rows())
                        .sum::<usize>();
                    group.push(next);
                }
                // Deadline reached, or every sender is gone: write what we have.
                Ok(None) | Err(_) => break,
            }
        }
        let (replies, parts): (Vec<_>, Vec<_>) =
            group.into_iter().map(|s| (s.reply, s.parts)).unzip();
        // Record batches are reference-counted: keeping the parts for a retry
        // one by one costs no copy.
        match write_group(parts.clone(), &sink).await {
            Ok(outcome) => {
                tracing::debug!(
                    requests = replies.len(),
                    rows = outcome.accepted,
                    files = outcome.files.len(),
                    "group written"
                );
                sink.record(&outcome);
                for reply in replies {
                    let _ = reply.send(Ok(outcome.accepted));
                }
            }
            Err(e) if replies.len() == 1 => {
                tracing::error!(error = %e, "ingest write failed");
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            Err(e) => {
                // One request's rows or one file's storage may be what failed:
                // write each request on its own, so that only the requests that
                // fail again get an error. Files of the failed group write are
                // named by no message: orphans, never committed.
                tracing::warn!(requests = replies.len(), error = %e, "group write failed; writing its requests one by one");
                for (reply, part) in replies.into_iter().zip(parts) {
                    let result = write_group(vec![part], &sink).await;
                    match &result {
                        Ok(outcome) => sink.record(outcome),
                        Err(e) => tracing::error!(error = %e, "ingest write failed"),
                    }
                    let _ = reply.send(result.map(|o| o.accepted).map_err(Arc::new));
                }
            }
        }
    }
}

async fn write_group(parts: Vec<Vec<DayPart>>, sink: &GroupSink) -> Result<IngestOutcome, Error> {
    let mut by_file: BTreeMap<(Table, Option<i32>), Vec<RecordBatch>> = BTreeMap::new();
    for (table, day, batch) in parts.into_iter().flatten() {
        by_file.entry((table, day)).or_default().push(batch);
    }
    let writer = sink.writer.clone();
    // Concatenating and encoding is CPU work: off the async workers.
    let files = tokio::task::spawn_blocking(move || -> Result<Vec<EncodedRawFile>, Error> {
        by_file
            .into_iter()
            .map(|((table, day), batches)| {
                let schema = TableDefinition::get(table).arrow_schema.clone();
                let batch = concat_batches(&schema, &batches).map_err(|source| Error::Arrow {
                    table: table.name(),
                    source,
                })?;
                let rows = batch.num_rows() as u64;
                let bytes = writer.write(schema, &[batch], Vec::new())?;
                Ok(EncodedRawFile {
                    table,
                    day,
                    rows,
                    bytes,
                })
            })
            .collect()
    })
    .await
    .map_err(|e| Error::Io {
        path: "group".into(),
        source: std::io::Error::other(e.to_string()),
    })??;
    store_raw_files(
        files,
        Default::default(),
        &sink.namespace,
        sink.store.as_ref(),
        sink.queue.as_ref(),
    )
    .await
}

#[async_trait::async_trait]
impl Ingestor for GroupCommitter {
    async fn ingest(&self, parts: Vec<DayPart>) -> Result<u64, Arc<Error>> {
        self.submit(parts).await
    }
}
