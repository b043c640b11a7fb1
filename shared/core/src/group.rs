//! Group commit for ingest: the requests of a few milliseconds share one file.
//!
//! Written one by one, every request would make one small Parquet file per table
//! and day, one fsync and one queue message — thousands of tiny files a minute
//! under load, and a per-file cost that dominates the CPU (see the README's
//! benchmarks). The group committer takes every request that arrived while its
//! previous groups were being written (up to `max_rows`), writes one file per
//! table and day for all of them, stores them, queues one message naming them
//! all, and only then answers every request of the group. No request is
//! acknowledged before its data is durable and queued.
//!
//! A group does not wait for company: under load, requests pile up while the
//! previous group is written, which makes groups as large as the load needs;
//! idle, a lone request is written at once. Waiting a fixed few milliseconds
//! for every group added exactly that to every request's latency. Two groups
//! are written at a time, so one is encoded while the other waits for its
//! fsyncs. When a group's write fails, its requests are
//! written again one by one, so that one bad request (or one file the store
//! refuses) fails only the request it belongs to.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::Error;
use crate::ingest::{DayPart, IngestOutcome, Ingestor, encode_day_parts, store_raw_files};
use crate::parquet::ParquetWriterBuilder;
use crate::ports::{ObjectStore, Queue};
use crate::telemetry::Telemetry;

/// Settings of the group committer.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Longest the first request of a group waits for others to join it
    /// (none by default: see the module docs). Tests set it to make groups.
    pub max_delay: Duration,
    /// A group is written as soon as it holds this many rows.
    pub max_rows: usize,
    /// Groups being written at once.
    pub max_in_flight: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            max_delay: Duration::ZERO,
            max_rows: 200_000,
            max_in_flight: 2,
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
    let sink = Arc::new(sink);
    let slots = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    loop {
        // A free slot first: requests that arrive meanwhile join the group.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let Some(first) = rx.recv().await else { break };
        let rows_of = |s: &Submission| s.parts.iter().map(|(_, _, b)| b.num_rows()).sum::<usize>();
        let mut rows = rows_of(&first);
        let mut group = vec![first];
        while rows < config.max_rows {
            match rx.try_recv() {
                Ok(next) => {
                    rows += rows_of(&next);
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let deadline = Instant::now() + config.max_delay;
        while rows < config.max_rows && !config.max_delay.is_zero() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(next)) => {
                    rows += rows_of(&next);
                    group.push(next);
                }
                // Deadline reached, or every sender is gone: write what we have.
                Ok(None) | Err(_) => break,
            }
        }
        let sink = sink.clone();
        tokio::spawn(async move {
            write_and_answer(group, &sink).await;
            drop(slot);
        });
    }
    // Every group taken is answered before the committer is gone.
    let _ = slots.acquire_many(config.max_in_flight.max(1) as u32).await;
}

/// Writes one group and answers its requests; see the module docs.
async fn write_and_answer(group: Vec<Submission>, sink: &GroupSink) {
    let (replies, parts): (Vec<_>, Vec<_>) = group.into_iter().map(|s| (s.reply, s.parts)).unzip();
    // Record batches are reference-counted: keeping the parts for a retry
    // one by one costs no copy.
    match write_group(parts.clone(), sink).await {
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
                let result = write_group(vec![part], sink).await;
                match &result {
                    Ok(outcome) => sink.record(outcome),
                    Err(e) => tracing::error!(error = %e, "ingest write failed"),
                }
                let _ = reply.send(result.map(|o| o.accepted).map_err(Arc::new));
            }
        }
    }
}

async fn write_group(parts: Vec<Vec<DayPart>>, sink: &GroupSink) -> Result<IngestOutcome, Error> {
    let writer = sink.writer.clone();
    let started = std::time::Instant::now();
    // Encoding is CPU work: off the async workers.
    let files =
        tokio::task::spawn_blocking(move || encode_day_parts(parts.into_iter().flatten(), &writer))
            .await
            .map_err(|e| Error::Io {
                path: "group".into(),
                source: std::io::Error::other(e.to_string()),
            })??;
    let encoded = started.elapsed();
    let outcome = store_raw_files(
        files,
        Default::default(),
        &sink.namespace,
        sink.store.as_ref(),
        sink.queue.as_ref(),
    )
    .await?;
    tracing::debug!(
        encode_ms = encoded.as_secs_f64() * 1e3,
        store_and_queue_ms = (started.elapsed() - encoded).as_secs_f64() * 1e3,
        rows = outcome.accepted,
        "group stored"
    );
    Ok(outcome)
}

#[async_trait::async_trait]
impl Ingestor for GroupCommitter {
    async fn ingest(&self, parts: Vec<DayPart>) -> Result<u64, Arc<Error>> {
        self.submit(parts).await
    }
}
