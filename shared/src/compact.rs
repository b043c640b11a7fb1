//! The compaction stage: "raw file written" messages in, large sorted files and
//! "data files ready" messages out.
//!
//! Raw files are small (one per group commit of a few milliseconds of requests).
//! The compactor takes a batch of their messages, groups the files by table and
//! day, and merges each group with DataFusion into files of the target size,
//! sorted by the table's sort order. Sorting spills to disk past a memory limit
//! and output files are streamed to disk and rolled at the target size, so memory
//! stays bounded whatever the input.
//!
//! # Never the same raw record in two committed files
//!
//! The queue delivers at least once, and a compactor can die anywhere. Retried
//! work may come back in another grouping than the first attempt (the messages of
//! a crashed batch mixed with new ones), so output names derived from the inputs
//! are not enough. Instead each compaction is a small durable protocol:
//!
//! 1. A *plan* (`compaction/<id>.plan.json`) lists its inputs; `id` is derived
//!    from them.
//! 2. Each input is *claimed* for the plan by a conditional write
//!    (`put_if_absent` of `compaction/claims/…`). A raw file claimed by another
//!    plan is not compacted again: that plan is resumed instead.
//! 3. The outputs are written under names unique to the attempt, then the
//!    *result* (`compaction/<id>.done.json`, the Iceberg `DataFile`s) is written
//!    conditionally: the first attempt to finish wins, a late one deletes its own
//!    outputs and uses the winner's.
//! 4. The result is sent to the commit queue (the committer records compaction
//!    ids in its snapshots, so sending it twice adds nothing twice).
//! 5. Only then are the raw inputs deleted, and after them their claims. A raw
//!    file that is gone was compacted and sent; its message is just acknowledged.
//!
//! A raw file already at the target size is not rewritten: its plan's output is
//! the file itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext, ident};
use futures_util::StreamExt;
use iceberg::spec::{DataFile, FormatVersion, serialize_data_file_to_json};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::catalog::{data_file, partition_path};
use crate::ingest::{RawFileWritten, RawFilesWritten};
use crate::parquet::ParquetWriterBuilder;
use crate::ports::{ObjectStore, ObjectStoreError, Queue, ReceivedMessage};
use crate::schema::{TableDefinition, sort_columns};
use crate::{Error, Table};

/// The message the compactor sends for each finished compaction: the files to
/// append to one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFilesReady {
    /// The destination table (`logs`, `metrics_sum`, …).
    pub table: String,
    /// Id of the compaction that produced the files. The committer records it in
    /// the snapshot, so a message sent twice is committed once.
    pub compaction: String,
    /// Rows in all the files.
    pub rows: u64,
    /// The files as Iceberg `DataFile`s, in the JSON form of Iceberg's manifest
    /// entries (format version 2): path, size, counts, bounds, partition.
    pub data_files: Vec<String>,
}

/// What a plan compacts, written before any input is claimed for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactionPlan {
    table: String,
    day: Option<i32>,
    inputs: Vec<String>,
    /// One input already at the target size: it becomes the output as it is.
    keep_in_place: bool,
    /// Attempts started, in order: their outputs are found by name and removed
    /// when a later attempt starts over, so no half-finished output lingers
    /// (plain-Parquet readers would see it).
    #[serde(default)]
    attempts: Vec<String>,
}

/// Settings of the compaction stage.
#[derive(Debug, Clone)]
pub struct CompactConfig {
    /// Most raw-file messages taken in one batch.
    pub max_messages: usize,
    /// How long received messages stay hidden; must exceed one batch's work.
    pub visibility: Duration,
    /// Namespace of the tables (the first part of every key).
    pub namespace: String,
    /// Delay before a failed message is retried, doubled with every receive.
    pub retry_delay: Duration,
    /// Size at which an output file is closed and the next one started.
    pub target_file_bytes: u64,
    /// Memory DataFusion may use for sorting before it spills to disk.
    pub memory_limit_bytes: usize,
    /// Parallel sort streams (DataFusion target partitions). Each gets an equal
    /// share of the memory limit.
    pub sort_partitions: usize,
    /// Rows per batch inside DataFusion: smaller batches need less memory to
    /// merge many sorted runs.
    pub batch_rows: usize,
    /// Memory set aside per sort stream for merging its sorted runs.
    pub merge_reservation_bytes: usize,
    /// Local directory for outputs being written and for sort spills.
    pub scratch_dir: PathBuf,
    /// How output files are encoded.
    pub writer: ParquetWriterBuilder,
}

impl CompactConfig {
    /// Defaults (128 MiB files, 256 MiB of sort memory), writing scratch files
    /// into `scratch_dir`.
    pub fn new(scratch_dir: impl Into<PathBuf>) -> Self {
        CompactConfig {
            max_messages: 1000,
            visibility: Duration::from_secs(600),
            namespace: crate::catalog::DEFAULT_NAMESPACE.to_string(),
            retry_delay: Duration::from_secs(1),
            target_file_bytes: 128 * 1024 * 1024,
            memory_limit_bytes: 256 * 1024 * 1024,
            sort_partitions: 1,
            batch_rows: 4096,
            merge_reservation_bytes: 32 * 1024 * 1024,
            scratch_dir: scratch_dir.into(),
            // Compacted files are written once and read many times: a few more
            // CPU cycles for smaller files are worth it here, unlike at ingest.
            writer: ParquetWriterBuilder::new().with_zstd_level(3),
        }
    }
}

/// What one batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactOutcome {
    /// Messages received.
    pub received: usize,
    /// Compactions finished (new or resumed).
    pub compactions: usize,
    /// Raw files consumed.
    pub inputs: usize,
    /// Rows in the outputs.
    pub rows: u64,
    /// Output files.
    pub outputs: usize,
    /// Messages that could not be handled and stay in the queue (they reach the
    /// dead-letter queue after the queue's maximum number of receives).
    pub failed: usize,
}

/// Errors of the compaction stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    /// The raw-file queue failed.
    #[error(transparent)]
    Queue(#[from] crate::ports::QueueError),
}

/// Where the claim of a raw file lives: beside the table's data, never inside it,
/// so plain-Parquet readers globbing `data/` see only Parquet files.
pub fn claim_key(raw_key: &str) -> String {
    match raw_key.split_once("/data/raw/") {
        Some((table_dir, rest)) => format!("{table_dir}/compaction/claims/{rest}.claim"),
        None => format!("compaction/claims/{raw_key}.claim"),
    }
}

fn table_dir(namespace: &str, table: Table) -> String {
    format!("{namespace}/{}", table.name())
}

fn plan_key(namespace: &str, table: Table, id: &str) -> String {
    format!("{}/compaction/{id}.plan.json", table_dir(namespace, table))
}

fn done_key(namespace: &str, table: Table, id: &str) -> String {
    format!("{}/compaction/{id}.done.json", table_dir(namespace, table))
}

/// The id of the compaction of exactly these inputs.
fn plan_id(inputs: &[String]) -> String {
    let mut sorted: Vec<&str> = inputs.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    Uuid::new_v5(&Uuid::NAMESPACE_OID, sorted.join("\n").as_bytes()).to_string()
}

/// Who holds a raw file.
enum RawState {
    /// Nobody yet.
    Free,
    /// The plan with this id.
    Claimed(String),
    /// Compacted, sent and deleted.
    Gone,
}

async fn raw_state(store: &dyn ObjectStore, raw_key: &str) -> Result<RawState, ObjectStoreError> {
    match store.get(&claim_key(raw_key)).await {
        Ok(owner) => {
            // A claim without its raw file is the tail of a finished compaction.
            if store.exists(raw_key).await? {
                Ok(RawState::Claimed(
                    String::from_utf8_lossy(&owner).into_owned(),
                ))
            } else {
                Ok(RawState::Gone)
            }
        }
        Err(ObjectStoreError::NotFound { .. }) => {
            if store.exists(raw_key).await? {
                Ok(RawState::Free)
            } else {
                Ok(RawState::Gone)
            }
        }
        Err(e) => Err(e),
    }
}

/// The files a message names, with their tables; `None` if it cannot be read.
fn parse(message: &ReceivedMessage) -> Option<Vec<(Table, RawFileWritten)>> {
    let written: RawFilesWritten = serde_json::from_slice(&message.body).ok()?;
    written
        .files
        .into_iter()
        .map(|file| Some((Table::from_name(&file.table)?, file)))
        .collect()
}

/// Ends a batch: deletes the messages that are `done`, hands the others back for
/// a retry after an exponential backoff (they reach the dead-letter queue after
/// the queue's maximum number of receives). Returns how many were handed back.
///
/// A failed delete is only logged: the message comes back, and the stages
/// recognise work already done (claims, compaction ids in snapshots).
pub(crate) async fn acknowledge(
    queue: &dyn Queue,
    messages: &[ReceivedMessage],
    done: impl Fn(usize) -> bool,
    retry_base: Duration,
) -> usize {
    let mut failed = 0;
    for (index, message) in messages.iter().enumerate() {
        if done(index) {
            if let Err(e) = queue.delete(&message.receipt).await {
                warn!(queue = queue.name(), message = %message.id, error = %e, "could not delete a finished message");
            }
            continue;
        }
        failed += 1;
        let exponent = message.receive_count.saturating_sub(1).min(6);
        let delay = (retry_base * 2u32.pow(exponent)).min(Duration::from_secs(60));
        if let Err(e) = queue.change_visibility(&message.receipt, delay).await {
            warn!(queue = queue.name(), message = %message.id, error = %e, "could not schedule the retry; it waits for its visibility timeout");
        }
    }
    failed
}

/// A raw file not yet claimed, with the index of the message that names it.
type Waiting = (usize, RawFileWritten);

/// Compacts one batch of raw-file messages from `raw_queue`; see the module docs.
///
/// With a `commit_queue`, each finished compaction is announced there as
/// [`DataFilesReady`]; without one (plain Parquet mode) the compacted files are
/// the end product. A message is deleted once every file it names is compacted.
pub async fn compact_batch(
    raw_queue: &dyn Queue,
    commit_queue: Option<&dyn Queue>,
    store: &dyn ObjectStore,
    config: &CompactConfig,
) -> Result<CompactOutcome, CompactError> {
    let messages = raw_queue
        .receive(config.max_messages, config.visibility)
        .await?;
    let mut outcome = CompactOutcome {
        received: messages.len(),
        ..Default::default()
    };
    // The plan each message waits for, and whether it is already lost.
    let mut waits_for: Vec<BTreeSet<(Table, String)>> = vec![BTreeSet::new(); messages.len()];
    let mut failed = vec![false; messages.len()];
    let mut free: BTreeMap<(Table, Option<i32>), Vec<Waiting>> = BTreeMap::new();
    for (index, message) in messages.iter().enumerate() {
        let Some(files) = parse(message) else {
            warn!(message = %message.id, receive_count = message.receive_count, "unreadable raw-file message left for the dead-letter queue");
            failed[index] = true;
            continue;
        };
        for (table, file) in files {
            match raw_state(store, &file.key).await {
                Ok(RawState::Free) => free
                    .entry((table, file.day))
                    .or_default()
                    .push((index, file)),
                Ok(RawState::Claimed(plan)) => {
                    waits_for[index].insert((table, plan));
                }
                Ok(RawState::Gone) => {}
                Err(e) => {
                    warn!(message = %message.id, error = %e, "could not look up a raw file; the message will be retried");
                    failed[index] = true;
                }
            }
        }
    }

    // Plan the free files: one plan per table and day, except files that are
    // already big enough, which become their own output.
    for ((table, day), files) in free {
        let (big, small): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|(_, f)| f.bytes >= config.target_file_bytes);
        let mut groups: Vec<(bool, Vec<Waiting>)> =
            big.into_iter().map(|f| (true, vec![f])).collect();
        if !small.is_empty() {
            groups.push((false, small));
        }
        for (keep_in_place, group) in groups {
            let inputs: Vec<String> = group.iter().map(|(_, f)| f.key.clone()).collect();
            match plan_and_claim(store, config, table, day, inputs, keep_in_place).await {
                Ok(claims) => {
                    for ((index, _), owner) in group.iter().zip(claims) {
                        waits_for[*index].insert((table, owner));
                    }
                }
                Err(e) => {
                    warn!(%table, error = %e, "could not plan a compaction; its messages will be retried");
                    for (index, _) in &group {
                        failed[*index] = true;
                    }
                }
            }
        }
    }

    // Run every plan some message waits for: new ones and those a crashed
    // attempt left behind.
    let plans: BTreeSet<(Table, String)> = waits_for.iter().flatten().cloned().collect();
    let mut finished: BTreeSet<(Table, String)> = BTreeSet::new();
    for (table, id) in plans {
        match run_plan(store, commit_queue, config, table, &id).await {
            Ok(done) => {
                outcome.compactions += 1;
                outcome.inputs += done.inputs;
                outcome.rows += done.rows;
                outcome.outputs += done.outputs;
                finished.insert((table, id));
            }
            Err(e) => {
                warn!(%table, compaction = %id, error = %e, "compaction failed; its messages will be retried")
            }
        }
    }

    outcome.failed = acknowledge(
        raw_queue,
        &messages,
        |index| !failed[index] && waits_for[index].is_subset(&finished),
        config.retry_delay,
    )
    .await;
    Ok(outcome)
}

/// Writes the plan for `inputs` and claims each of them; returns, per input, the
/// id of the plan that holds it (this one, or another that claimed it first).
async fn plan_and_claim(
    store: &dyn ObjectStore,
    config: &CompactConfig,
    table: Table,
    day: Option<i32>,
    inputs: Vec<String>,
    keep_in_place: bool,
) -> Result<Vec<String>, Error> {
    let id = plan_id(&inputs);
    let plan = CompactionPlan {
        table: table.name().to_string(),
        day,
        inputs,
        keep_in_place,
        attempts: Vec::new(),
    };
    let body = serde_json::to_vec(&plan).map_err(json_error)?;
    store
        .put(&plan_key(&config.namespace, table, &id), body.into())
        .await?;
    let mut owners = Vec::with_capacity(plan.inputs.len());
    for input in &plan.inputs {
        let claim = claim_key(input);
        if store
            .put_if_absent(&claim, id.clone().into_bytes().into())
            .await?
        {
            owners.push(id.clone());
        } else {
            let owner = store.get(&claim).await?;
            owners.push(String::from_utf8_lossy(&owner).into_owned());
        }
    }
    Ok(owners)
}

/// What finishing one plan did.
struct PlanDone {
    inputs: usize,
    rows: u64,
    outputs: usize,
}

/// Finishes the plan `id`, whatever step an earlier attempt stopped at.
async fn run_plan(
    store: &dyn ObjectStore,
    commit_queue: Option<&dyn Queue>,
    config: &CompactConfig,
    table: Table,
    id: &str,
) -> Result<PlanDone, Error> {
    let mut plan: CompactionPlan =
        serde_json::from_slice(&store.get(&plan_key(&config.namespace, table, id)).await?)
            .map_err(json_error)?;
    // The inputs this plan really holds: a claim lost to another plan is that
    // plan's to compact.
    let mut inputs = Vec::with_capacity(plan.inputs.len());
    for input in &plan.inputs {
        match store.get(&claim_key(input)).await {
            Ok(owner) if owner.as_ref() == id.as_bytes() => inputs.push(input.clone()),
            Ok(_) | Err(ObjectStoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }

    let done = done_key(&config.namespace, table, id);
    let ready = match store.get(&done).await {
        Ok(bytes) => serde_json::from_slice::<DataFilesReady>(&bytes).map_err(json_error)?,
        Err(ObjectStoreError::NotFound { .. }) => {
            let (ready, outputs) = if plan.keep_in_place {
                (
                    describe_in_place(store, table, id, &inputs).await?,
                    Vec::new(),
                )
            } else {
                for earlier in &plan.attempts {
                    remove_outputs(store, config, table, plan.day, id, earlier).await?;
                }
                let attempt = Uuid::new_v4().simple().to_string()[..8].to_string();
                plan.attempts.push(attempt.clone());
                let body = serde_json::to_vec(&plan).map_err(json_error)?;
                store
                    .put(&plan_key(&config.namespace, table, id), body.into())
                    .await?;
                merge(store, config, table, plan.day, id, &attempt, &inputs).await?
            };
            let body = serde_json::to_vec(&ready).map_err(json_error)?;
            if store.put_if_absent(&done, body.into()).await? {
                crate::crash::crash_point("compact-after-write");
                ready
            } else {
                // Another attempt finished first; its files are the ones announced.
                for key in outputs {
                    store.delete(&key).await?;
                }
                serde_json::from_slice(&store.get(&done).await?).map_err(json_error)?
            }
        }
        Err(e) => return Err(e.into()),
    };

    // A plan whose inputs all went elsewhere has nothing to announce.
    if let Some(queue) = commit_queue.filter(|_| !ready.data_files.is_empty()) {
        let body = serde_json::to_vec(&ready).map_err(json_error)?;
        queue.send(&body).await.map_err(|e| {
            Error::ObjectStore(ObjectStoreError::Backend {
                key: done.clone(),
                message: format!("sending the result to {}: {e}", queue.name()),
            })
        })?;
    }
    crate::crash::crash_point("compact-after-send");

    if !plan.keep_in_place {
        // Raw files first: a claim without its raw file means "done", a raw file
        // without its claim would be compacted again.
        for input in &inputs {
            store.delete(input).await?;
        }
        for input in &inputs {
            store.delete(&claim_key(input)).await?;
        }
        store
            .delete(&plan_key(&config.namespace, table, id))
            .await?;
    }
    info!(%table, compaction = id, inputs = inputs.len(), outputs = ready.data_files.len(), rows = ready.rows, "compacted");
    Ok(PlanDone {
        inputs: inputs.len(),
        rows: ready.rows,
        outputs: ready.data_files.len(),
    })
}

/// The `n`th output of an attempt. Names unique to the attempt: a slow earlier
/// attempt of the same plan can never overwrite a file a later one announces.
fn output_key(
    config: &CompactConfig,
    table: Table,
    day: Option<i32>,
    id: &str,
    attempt: &str,
    n: usize,
) -> String {
    format!(
        "{}/data/{}/{id}-{attempt}-{n:05}.parquet",
        table_dir(&config.namespace, table),
        partition_path(table, day)
    )
}

/// Deletes the outputs an unfinished attempt stored.
async fn remove_outputs(
    store: &dyn ObjectStore,
    config: &CompactConfig,
    table: Table,
    day: Option<i32>,
    id: &str,
    attempt: &str,
) -> Result<(), Error> {
    for n in 0.. {
        let key = output_key(config, table, day, id, attempt, n);
        if !store.exists(&key).await? {
            break;
        }
        store.delete(&key).await?;
    }
    Ok(())
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Iceberg(
        iceberg::Error::new(iceberg::ErrorKind::DataInvalid, "compaction record").with_source(e),
    )
}

fn to_json(table: Table, file: DataFile) -> Result<String, Error> {
    let def = TableDefinition::get(table);
    let partition_type = def.partition_spec.partition_type(&def.schema)?;
    Ok(serialize_data_file_to_json(
        file,
        &partition_type,
        FormatVersion::V2,
    )?)
}

/// The result of a plan whose single input is kept as it is.
async fn describe_in_place(
    store: &dyn ObjectStore,
    table: Table,
    id: &str,
    inputs: &[String],
) -> Result<DataFilesReady, Error> {
    let mut ready = DataFilesReady {
        table: table.name().to_string(),
        compaction: id.to_string(),
        rows: 0,
        data_files: Vec::new(),
    };
    for input in inputs {
        let bytes = store.get(input).await?;
        let metadata = ParquetMetaDataReader::new().parse_and_finish(&bytes)?;
        let file = data_file(table, store.uri(input), bytes.len() as u64, &metadata)?;
        ready.rows += file.record_count();
        ready.data_files.push(to_json(table, file)?);
    }
    Ok(ready)
}

/// Merges `inputs` into sorted files of the target size; returns the result and
/// the keys of the files written.
async fn merge(
    store: &dyn ObjectStore,
    config: &CompactConfig,
    table: Table,
    day: Option<i32>,
    id: &str,
    attempt: &str,
    inputs: &[String],
) -> Result<(DataFilesReady, Vec<String>), Error> {
    let mut ready = DataFilesReady {
        table: table.name().to_string(),
        compaction: id.to_string(),
        rows: 0,
        data_files: Vec::new(),
    };
    let mut keys = Vec::new();
    if inputs.is_empty() {
        return Ok((ready, keys));
    }
    std::fs::create_dir_all(&config.scratch_dir).map_err(|source| Error::Io {
        path: config.scratch_dir.clone(),
        source,
    })?;
    let key_of = |n: usize| output_key(config, table, day, id, attempt, n);

    let uris: Vec<String> = inputs.iter().map(|k| store.uri(k)).collect();
    let mut stream = sorted_stream(config, table, uris).await?;
    let schema = TableDefinition::get(table).arrow_schema.clone();
    let mut writer = RollingWriter::new(config, schema.clone());
    let mut crashed_mid_way = false;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(datafusion_error)?;
        // Map the scan's batches onto the table schema (with its field ids).
        let batch =
            RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(|source| {
                Error::Arrow {
                    table: table.name(),
                    source,
                }
            })?;
        for finished in writer.write(&batch)? {
            let key = key_of(keys.len());
            store_output(store, table, key, finished, &mut ready, &mut keys).await?;
            if !crashed_mid_way {
                crashed_mid_way = true;
                crate::crash::crash_point("compact-mid-way");
            }
        }
    }
    if let Some(finished) = writer.finish()? {
        let key = key_of(keys.len());
        store_output(store, table, key, finished, &mut ready, &mut keys).await?;
    }
    crate::crash::crash_point("compact-mid-way");
    debug!(%table, compaction = id, files = keys.len(), "merged");
    Ok((ready, keys))
}

async fn store_output(
    store: &dyn ObjectStore,
    table: Table,
    key: String,
    finished: FinishedFile,
    ready: &mut DataFilesReady,
    keys: &mut Vec<String>,
) -> Result<(), Error> {
    store.put_file(&key, &finished.path).await?;
    let file = data_file(table, store.uri(&key), finished.size, &finished.metadata)?;
    keys.push(key);
    ready.rows += file.record_count();
    ready.data_files.push(to_json(table, file)?);
    Ok(())
}

/// The rows of `uris`, sorted by the table's sort order, as a stream.
async fn sorted_stream(
    config: &CompactConfig,
    table: Table,
    uris: Vec<String>,
) -> Result<datafusion::physical_plan::SendableRecordBatchStream, Error> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(config.memory_limit_bytes)))
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(
            DiskManagerMode::Directories(vec![config.scratch_dir.clone()]),
        ))
        .build_arc()
        .map_err(datafusion_error)?;
    let session = SessionConfig::new()
        .with_target_partitions(config.sort_partitions.max(1))
        .with_batch_size(config.batch_rows.max(1))
        .with_sort_spill_reservation_bytes(config.merge_reservation_bytes)
        // Statistics would read every input's footer up front, concurrently, for
        // a plan that has nothing to prune: each file is read whole anyway.
        .with_collect_statistics(false);
    let ctx = SessionContext::new_with_config_rt(session, runtime);
    let schema = TableDefinition::get(table).arrow_schema.clone();
    let frame = ctx
        .read_parquet(uris, ParquetReadOptions::default().schema(schema.as_ref()))
        .await
        .map_err(datafusion_error)?;
    let order = sort_columns(table)
        .into_iter()
        // Ascending, nulls first: the table's sort order (see `schema`).
        .map(|column| ident(column).sort(true, true))
        .collect();
    frame
        .sort(order)
        .map_err(datafusion_error)?
        .execute_stream()
        .await
        .map_err(datafusion_error)
}

fn datafusion_error(e: datafusion::error::DataFusionError) -> Error {
    Error::DataFusion(Box::new(e))
}

/// A Parquet file finished in the scratch directory.
struct FinishedFile {
    path: PathBuf,
    size: u64,
    metadata: ParquetMetaData,
}

/// Rows written between two checks of the file size.
const ROLL_CHECK_ROWS: usize = 1024;

/// Row groups are flushed at this encoded size, so a writer holds at most this
/// much in memory however large its file grows.
const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// Writes batches into scratch files, starting a new one at the target size.
struct RollingWriter<'a> {
    config: &'a CompactConfig,
    schema: SchemaRef,
    current: Option<(ArrowWriter<File>, PathBuf)>,
}

impl<'a> RollingWriter<'a> {
    fn new(config: &'a CompactConfig, schema: SchemaRef) -> Self {
        RollingWriter {
            config,
            schema,
            current: None,
        }
    }

    /// Writes `batch`; returns the files it completed. The batch goes in slices,
    /// so a file overshoots the target by a slice at most, not by a whole batch.
    fn write(&mut self, batch: &RecordBatch) -> Result<Vec<FinishedFile>, Error> {
        let mut finished = Vec::new();
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = ROLL_CHECK_ROWS.min(batch.num_rows() - offset);
            if let Some(file) = self.write_slice(&batch.slice(offset, len))? {
                finished.push(file);
            }
            offset += len;
        }
        Ok(finished)
    }

    fn write_slice(&mut self, batch: &RecordBatch) -> Result<Option<FinishedFile>, Error> {
        let (writer, _) = match &mut self.current {
            Some(current) => current,
            None => {
                let path = self
                    .config
                    .scratch_dir
                    .join(format!("{}.parquet.tmp", Uuid::new_v4()));
                let file = File::create(&path).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                let writer = ArrowWriter::try_new(
                    file,
                    self.schema.clone(),
                    Some(self.config.writer.properties()?),
                )?;
                self.current.insert((writer, path))
            }
        };
        writer.write(batch)?;
        if writer.in_progress_size() >= ROW_GROUP_BYTES {
            writer.flush()?;
        }
        let size = writer.bytes_written() + writer.in_progress_size();
        if size as u64 >= self.config.target_file_bytes {
            self.finish()
        } else {
            Ok(None)
        }
    }

    /// Finishes the current file, if any.
    fn finish(&mut self) -> Result<Option<FinishedFile>, Error> {
        let Some((mut writer, path)) = self.current.take() else {
            return Ok(None);
        };
        let metadata = writer.finish()?;
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let file = writer.inner();
        file.sync_all().map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        Ok(Some(FinishedFile {
            path,
            size,
            metadata,
        }))
    }
}

/// Removes what an interrupted attempt left in the scratch directory. Call it
/// before the first batch of a process that is the directory's only user.
pub fn clean_scratch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if let Err(e) = removed {
            warn!(path = %path.display(), error = %e, "could not remove a scratch file");
        }
    }
}
