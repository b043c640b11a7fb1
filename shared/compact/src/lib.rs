//! The compaction stage: "raw file written" messages in, large sorted files and
//! "data files ready" messages out.
//!
//! Raw files are small (one per group commit of a few milliseconds of requests).
//! The compactor is handed a batch of their messages, groups the files by table
//! and day, and merges each group with DataFusion into files of the target size,
//! sorted by the table's sort order. Sorting spills to disk past a memory limit
//! and output files are streamed to disk and rolled at the target size, so memory
//! stays bounded whatever the input.
//!
//! # Never the same raw record in two committed files
//!
//! The queue delivers at least once, a compactor can die anywhere, and a batch
//! can be redelivered to a second compactor while the first still runs. Retried
//! work may come back in another grouping than the first attempt (the messages
//! of a crashed batch mixed with new ones), so output names derived from the
//! inputs are not enough. Instead each compaction is a small durable protocol,
//! recorded in the *state* store (a directory, or a general-purpose S3 bucket:
//! it needs conditional writes and listing, which an S3 Tables bucket lacks):
//!
//! 1. A *plan* (`compaction/<id>.plan.json`) lists its inputs; `id` is derived
//!    from them.
//! 2. Each input is *claimed* for the plan by a conditional write
//!    (`put_if_absent` of `compaction/claims/…`). A raw file claimed by another
//!    plan is not compacted again: that plan is resumed instead. Claims are
//!    kept after the raw file is gone: they are the record that it was
//!    compacted, so a message that names a file with neither an object nor a
//!    claim is an error (dead-lettered), never silently "done".
//! 3. Every attempt at a plan registers itself, then writes its outputs under
//!    names unique to it, then tries to write the *result*
//!    (`compaction/<id>.done.json`: the winning attempt and its Iceberg
//!    `DataFile`s) conditionally. The first attempt to finish wins; a later one
//!    deletes its own outputs and uses the winner's. No attempt ever deletes
//!    files another attempt may still announce: the winner removes the outputs
//!    of the attempts that lost (or died), and an attempt still running when
//!    that happens loses the race for the result and removes its own.
//! 4. The result is sent to the commit queue (the committer records compaction
//!    ids, so sending it twice adds nothing twice).
//! 5. Only then are the raw inputs deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::config::SpillCompression;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext, ident};
use futures_util::StreamExt;
use iceberg::spec::{DataFile, FormatVersion, serialize_data_file_to_json};
use otlp2parquet_core::Table;
use otlp2parquet_core::datafile::data_file;
use otlp2parquet_core::messages::{
    BodyError, DataFilesReady, RawFileWritten, RawFilesWritten, message_body, send_message,
};
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::partition::partition_path;
use otlp2parquet_core::ports::{
    ObjectStore, ObjectStoreError, Queue, ReceivedMessage, SendOptions, get_json,
};
use otlp2parquet_core::schema::{TableDefinition, sort_columns};
use otlp2parquet_core::stage::Outcome;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::ParquetMetaData;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};
use uuid::Uuid;

pub use otlp2parquet_core::crash::crash_point;

mod datafusion_store;
use datafusion_store::DataFusionStore;

/// Errors of the compaction stage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing objects, Parquet or Arrow data failed.
    #[error(transparent)]
    Core(#[from] otlp2parquet_core::Error),
    /// DataFusion failed to read or sort the inputs. Not a `#[source]`: its
    /// message already spells out its own chain of causes.
    #[error("{0}")]
    DataFusion(Box<datafusion::error::DataFusionError>),
    /// Sending a result to the commit queue failed.
    #[error("sending compaction {compaction} to {queue}: {source}")]
    Send {
        /// The compaction.
        compaction: String,
        /// The queue.
        queue: String,
        /// What the queue (or, for a body sent by reference, the state
        /// store) said.
        #[source]
        source: Box<otlp2parquet_core::Error>,
    },
}

impl Error {
    /// Whether trying again may help (storage, the queue, a spill disk), as
    /// opposed to records or data that will fail the same way every time.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Core(e) => e.retryable(),
            Error::DataFusion(e) => matches!(
                e.as_ref(),
                datafusion::error::DataFusionError::IoError(_)
                    | datafusion::error::DataFusionError::ObjectStore(_)
                    | datafusion::error::DataFusionError::ResourcesExhausted(_)
            ),
            Error::Send { source, .. } => source.retryable(),
        }
    }
}

impl From<ObjectStoreError> for Error {
    fn from(e: ObjectStoreError) -> Self {
        Error::Core(e.into())
    }
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(e: parquet::errors::ParquetError) -> Self {
        Error::Core(e.into())
    }
}

impl From<iceberg::Error> for Error {
    fn from(e: iceberg::Error) -> Self {
        Error::Core(e.into())
    }
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Core(otlp2parquet_core::Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn arrow_error(table: Table, source: arrow::error::ArrowError) -> Error {
    Error::Core(otlp2parquet_core::Error::Arrow {
        table: table.name(),
        source,
    })
}

/// What a plan compacts, written before any input is claimed for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactionPlan {
    table: String,
    day: Option<i32>,
    inputs: Vec<String>,
}

/// What the winning attempt of a plan produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompactionResult {
    /// The attempt whose outputs are the result.
    attempt: String,
    /// The message sent to the committer.
    ready: DataFilesReady,
}

/// Settings of the compaction stage.
#[derive(Debug, Clone)]
pub struct CompactConfig {
    /// Namespace of the tables (the first part of every key).
    pub namespace: String,
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
            namespace: otlp2parquet_core::DEFAULT_NAMESPACE.to_string(),
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

/// Where compaction reads and writes. Shared (`Arc`): DataFusion reads the
/// raw files through `data` from tasks of its own.
#[derive(Clone)]
pub struct Stores {
    /// Raw files and compacted outputs (the warehouse, or a table bucket).
    pub data: Arc<dyn ObjectStore>,
    /// Plans, claims and results: needs conditional writes, listing and deletes.
    pub state: Arc<dyn ObjectStore>,
}

impl Stores {
    /// One store for both, as `serve`'s warehouse directory is.
    pub fn single(store: Arc<dyn ObjectStore>) -> Self {
        Stores {
            data: store.clone(),
            state: store,
        }
    }
}

/// What one batch did: an outcome per message, and counts for logs and metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// One outcome per message handed in, in the same order.
    pub outcomes: Vec<Outcome>,
    /// Compactions finished (new or resumed).
    pub compactions: usize,
    /// Raw files consumed.
    pub inputs: usize,
    /// Rows in the outputs.
    pub rows: u64,
    /// Output files.
    pub outputs: usize,
}

/// Where the claim of a raw file lives: beside the table's data, never inside it.
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

fn attempts_prefix(namespace: &str, table: Table, id: &str) -> String {
    format!("{}/compaction/{id}.attempts/", table_dir(namespace, table))
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
    /// The plan with this id (which may have finished: claims are kept).
    Claimed(String),
    /// Neither the file nor a claim exists: the message names data that was
    /// never there, or was removed without being compacted.
    Missing,
}

async fn raw_state(stores: &Stores, raw_key: &str) -> Result<RawState, ObjectStoreError> {
    match stores.state.get(&claim_key(raw_key)).await {
        Ok(owner) => Ok(RawState::Claimed(
            String::from_utf8_lossy(&owner).into_owned(),
        )),
        Err(ObjectStoreError::NotFound { .. }) => {
            if stores.data.exists(raw_key).await? {
                Ok(RawState::Free)
            } else {
                Ok(RawState::Missing)
            }
        }
        Err(e) => Err(e),
    }
}

/// The files a message names, with their tables.
fn parse(body: &[u8]) -> Result<Vec<(Table, RawFileWritten)>, String> {
    let written: RawFilesWritten =
        serde_json::from_slice(body).map_err(|e| format!("not a raw-file message: {e}"))?;
    written
        .files
        .into_iter()
        .map(|file| match Table::from_name(&file.table) {
            Some(table) => Ok((table, file)),
            None => Err(format!("unknown table {:?}", file.table)),
        })
        .collect()
}

/// A raw file not yet claimed, with the index of the message that names it.
type Waiting = (usize, RawFileWritten);

/// What is known of one message while its batch is worked on.
#[derive(Default)]
struct Progress {
    /// The plans it waits for.
    waits_for: BTreeSet<(Table, String)>,
    /// Why it cannot be done now (retry) or ever (poison).
    failure: Option<Outcome>,
}

impl Progress {
    fn retry(&mut self, reason: String) {
        if self.failure.is_none() {
            self.failure = Some(Outcome::Retry(reason));
        }
    }

    fn poison(&mut self, reason: String) {
        self.failure = Some(Outcome::Poison(reason));
    }
}

/// Compacts the raw files that `messages` name; see the module docs.
///
/// With a `commit_queue`, each finished compaction is announced there as
/// [`DataFilesReady`]; without one (plain Parquet mode) the compacted files are
/// the end product. A message is done once every file it names is compacted.
pub async fn compact(
    messages: &[ReceivedMessage],
    commit_queue: Option<&dyn Queue>,
    stores: &Stores,
    config: &CompactConfig,
) -> CompactReport {
    let mut report = CompactReport::default();
    let mut progress: Vec<Progress> = messages.iter().map(|_| Progress::default()).collect();
    let mut free: BTreeMap<(Table, Option<i32>), Vec<Waiting>> = BTreeMap::new();
    for (index, message) in messages.iter().enumerate() {
        let body = match message_body(stores.state.as_ref(), message).await {
            Ok(body) => body,
            Err(e @ BodyError::Missing { .. }) => {
                progress[index].poison(e.to_string());
                continue;
            }
            Err(e) => {
                progress[index].retry(e.to_string());
                continue;
            }
        };
        let files = match parse(&body) {
            Ok(files) => files,
            Err(reason) => {
                progress[index].poison(reason);
                continue;
            }
        };
        for (table, file) in files {
            match raw_state(stores, &file.key).await {
                Ok(RawState::Free) => free
                    .entry((table, file.day))
                    .or_default()
                    .push((index, file)),
                Ok(RawState::Claimed(plan)) => {
                    progress[index].waits_for.insert((table, plan));
                }
                Ok(RawState::Missing) => progress[index].poison(format!(
                    "raw file {} does not exist and was never claimed by a compaction",
                    file.key
                )),
                Err(e) => progress[index].retry(format!("looking up raw file {}: {e}", file.key)),
            }
        }
    }

    // One plan per table and day of the free files.
    for ((table, day), group) in free {
        let inputs: Vec<String> = group.iter().map(|(_, f)| f.key.clone()).collect();
        match plan_and_claim(stores, config, table, day, inputs).await {
            Ok(owners) => {
                for ((index, _), owner) in group.iter().zip(owners) {
                    progress[*index].waits_for.insert((table, owner));
                }
            }
            Err(e) => {
                for (index, _) in &group {
                    progress[*index].retry(format!("planning a compaction of {table}: {e}"));
                }
            }
        }
    }

    // Run every plan a message waits for: new ones, those a crashed attempt
    // left behind, and finished ones whose messages came back.
    let plans: BTreeSet<(Table, String)> = progress
        .iter()
        .filter(|p| p.failure.is_none())
        .flat_map(|p| p.waits_for.iter().cloned())
        .collect();
    let mut failed: BTreeMap<(Table, String), String> = BTreeMap::new();
    for (table, id) in plans {
        match run_plan(stores, commit_queue, config, table, &id).await {
            Ok(done) => {
                report.compactions += done.compactions;
                report.inputs += done.inputs;
                report.rows += done.rows;
                report.outputs += done.outputs;
            }
            Err(e) => {
                warn!(%table, compaction = %id, error = %e, "compaction failed");
                failed.insert((table, id), e.to_string());
            }
        }
    }

    report.outcomes = progress
        .into_iter()
        .map(|p| {
            if let Some(failure) = p.failure {
                return failure;
            }
            match p.waits_for.iter().find_map(|plan| failed.get(plan)) {
                Some(reason) => Outcome::Retry(reason.clone()),
                None => Outcome::Done,
            }
        })
        .collect();
    report
}

/// Writes the plan for `inputs` and claims each of them; returns, per input, the
/// id of the plan that holds it (this one, or another that claimed it first).
async fn plan_and_claim(
    stores: &Stores,
    config: &CompactConfig,
    table: Table,
    day: Option<i32>,
    inputs: Vec<String>,
) -> Result<Vec<String>, Error> {
    let id = plan_id(&inputs);
    let plan = CompactionPlan {
        table: table.name().to_string(),
        day,
        inputs,
    };
    // The id is derived from the inputs: a plan already there is this same plan.
    stores
        .state
        .put_if_absent(
            &plan_key(&config.namespace, table, &id),
            to_vec(&plan).into(),
        )
        .await?;
    let mut owners = Vec::with_capacity(plan.inputs.len());
    for input in &plan.inputs {
        let claim = claim_key(input);
        if stores
            .state
            .put_if_absent(&claim, id.clone().into_bytes().into())
            .await?
        {
            owners.push(id.clone());
        } else {
            let owner = stores.state.get(&claim).await?;
            owners.push(String::from_utf8_lossy(&owner).into_owned());
        }
    }
    Ok(owners)
}

fn to_vec(value: &impl Serialize) -> Vec<u8> {
    // Plain structs of strings and numbers always serialize.
    serde_json::to_vec(value).unwrap_or_default()
}

/// What finishing one plan did (nothing, for a plan found finished).
#[derive(Default)]
struct PlanDone {
    compactions: usize,
    inputs: usize,
    rows: u64,
    outputs: usize,
}

/// Finishes the plan `id`, whatever step an earlier or concurrent attempt is at.
async fn run_plan(
    stores: &Stores,
    commit_queue: Option<&dyn Queue>,
    config: &CompactConfig,
    table: Table,
    id: &str,
) -> Result<PlanDone, Error> {
    let key = plan_key(&config.namespace, table, id);
    let plan: CompactionPlan = get_json(stores.state.as_ref(), &key)
        .await?
        .ok_or_else(|| Error::Core(ObjectStoreError::NotFound { key: key.clone() }.into()))?;
    // The inputs this plan really holds: a claim lost to another plan is that
    // plan's to compact.
    let mut inputs = Vec::with_capacity(plan.inputs.len());
    for input in &plan.inputs {
        match stores.state.get(&claim_key(input)).await {
            Ok(owner) if owner.as_ref() == id.as_bytes() => inputs.push(input.clone()),
            Ok(_) | Err(ObjectStoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }

    let done = done_key(&config.namespace, table, id);
    let result = match get_json::<CompactionResult>(stores.state.as_ref(), &done).await? {
        Some(result) => {
            // Inputs are deleted only after the result was sent: with all of
            // them gone, this plan finished and there is nothing left to do.
            let mut any_left = false;
            for input in &inputs {
                if stores.data.exists(input).await? {
                    any_left = true;
                    break;
                }
            }
            if !any_left {
                return Ok(PlanDone::default());
            }
            result
        }
        None => attempt(stores, config, table, id, plan.day, &inputs, &done).await?,
    };
    remove_other_attempts(stores, config, table, id, plan.day, &result.attempt).await?;
    let ready = result.ready;

    // A plan whose inputs all went elsewhere has nothing to announce.
    if let Some(queue) = commit_queue.filter(|_| !ready.data_files.is_empty()) {
        // One message group per table: a table whose commits fail holds back
        // only its own messages. Deduplicated by compaction, whose result is
        // the same however many attempts announce it.
        let options = SendOptions::default()
            .with_group_id(table.name())
            .with_deduplication_id(id);
        send_message(queue, stores.state.as_ref(), &to_vec(&ready), options)
            .await
            .map_err(|source| Error::Send {
                source: Box::new(source),
                compaction: id.to_string(),
                queue: queue.name().to_string(),
            })?;
    }
    crash_point("compact-after-send");

    for input in &inputs {
        stores.data.delete(input).await?;
    }
    info!(%table, compaction = id, inputs = inputs.len(), outputs = ready.data_files.len(), rows = ready.rows, "compacted");
    Ok(PlanDone {
        compactions: 1,
        inputs: inputs.len(),
        rows: ready.rows,
        outputs: ready.data_files.len(),
    })
}

/// One attempt at a plan: registers itself, merges, and races for the result.
/// Returns the result, its own or that of an attempt that finished first.
async fn attempt(
    stores: &Stores,
    config: &CompactConfig,
    table: Table,
    id: &str,
    day: Option<i32>,
    inputs: &[String],
    done: &str,
) -> Result<CompactionResult, Error> {
    let attempt = Uuid::new_v4().simple().to_string()[..12].to_string();
    // Registered before any output exists, so that the winner can find and
    // remove the outputs of an attempt that dies.
    stores
        .state
        .put(
            &format!("{}{attempt}", attempts_prefix(&config.namespace, table, id)),
            Vec::new().into(),
        )
        .await?;
    let target = Output {
        config,
        table,
        day,
        id,
        attempt: &attempt,
    };
    let mut written = Vec::new();
    let merged = merge(&stores.data, &target, inputs, &mut written).await;
    let ready = match merged {
        Ok(ready) => ready,
        Err(e) => {
            // Leave nothing half done behind (plain-Parquet readers would see it).
            remove_keys(stores.data.as_ref(), &written).await;
            return Err(e);
        }
    };
    let result = CompactionResult {
        attempt: attempt.clone(),
        ready,
    };
    let won = match stores
        .state
        .put_if_absent(done, to_vec(&result).into())
        .await
    {
        Ok(won) => won,
        Err(e) => {
            remove_keys(stores.data.as_ref(), &written).await;
            return Err(e.into());
        }
    };
    if won {
        crash_point("compact-after-write");
        Ok(result)
    } else {
        // Another attempt finished first; its files are the ones announced.
        remove_keys(stores.data.as_ref(), &written).await;
        get_json(stores.state.as_ref(), done).await?.ok_or_else(|| {
            Error::Core(
                ObjectStoreError::NotFound {
                    key: done.to_string(),
                }
                .into(),
            )
        })
    }
}

async fn remove_keys(store: &dyn ObjectStore, keys: &[String]) {
    for key in keys {
        if let Err(e) = store.delete(key).await {
            warn!(%key, error = %e, "could not remove the output of a compaction attempt that did not win");
        }
    }
}

/// Removes the outputs of every attempt at plan `id` but the winner's. Safe
/// while such an attempt still runs: it then loses the race for the result and
/// removes whatever it wrote after this.
async fn remove_other_attempts(
    stores: &Stores,
    config: &CompactConfig,
    table: Table,
    id: &str,
    day: Option<i32>,
    winner: &str,
) -> Result<(), Error> {
    let prefix = attempts_prefix(&config.namespace, table, id);
    for marker in stores.state.list(&prefix).await? {
        let attempt = &marker[prefix.len()..];
        if attempt == winner {
            continue;
        }
        let target = Output {
            config,
            table,
            day,
            id,
            attempt,
        };
        // Outputs are numbered from 0 and written in order: stop at the first gap.
        for n in 0.. {
            let key = target.key(n);
            if !stores.data.exists(&key).await? {
                break;
            }
            stores.data.delete(&key).await?;
        }
        stores.state.delete(&marker).await?;
    }
    Ok(())
}

/// Where the outputs of one attempt go.
struct Output<'a> {
    config: &'a CompactConfig,
    table: Table,
    day: Option<i32>,
    id: &'a str,
    attempt: &'a str,
}

impl Output<'_> {
    /// The `n`th output. Names unique to the attempt: a slow attempt of the
    /// same plan can never overwrite a file another one announces.
    fn key(&self, n: usize) -> String {
        format!(
            "{}/data/{}/{}-{}-{n:05}.parquet",
            table_dir(&self.config.namespace, self.table),
            partition_path(self.table, self.day),
            self.id,
            self.attempt,
        )
    }
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

/// Merges `inputs` into sorted files of the target size; returns the result.
/// The key of every file stored is pushed to `written` as soon as it exists, so
/// that a caller can remove them when the attempt fails or loses.
async fn merge(
    store: &Arc<dyn ObjectStore>,
    target: &Output<'_>,
    inputs: &[String],
    written: &mut Vec<String>,
) -> Result<DataFilesReady, Error> {
    let (config, table) = (target.config, target.table);
    let mut ready = DataFilesReady {
        table: table.name().to_string(),
        compaction: target.id.to_string(),
        rows: 0,
        data_files: Vec::new(),
    };
    if inputs.is_empty() {
        return Ok(ready);
    }
    std::fs::create_dir_all(&config.scratch_dir).map_err(|e| io_error(&config.scratch_dir, e))?;

    let mut stream = sorted_stream(config, table, store, inputs).await?;
    let schema = TableDefinition::get(table).arrow_schema.clone();
    let mut writer = RollingWriter::new(config, schema.clone());
    let mut crashed_mid_way = false;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(datafusion_error)?;
        // Map the scan's batches onto the table schema (with its field ids).
        let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
            .map_err(|e| arrow_error(table, e))?;
        for finished in writer.write(&batch)? {
            store_output(store.as_ref(), target, finished, &mut ready, written).await?;
            if !crashed_mid_way {
                crashed_mid_way = true;
                crash_point("compact-mid-way");
            }
        }
    }
    if let Some(finished) = writer.finish()? {
        store_output(store.as_ref(), target, finished, &mut ready, written).await?;
    }
    crash_point("compact-mid-way");
    debug!(%table, compaction = target.id, files = written.len(), "merged");
    Ok(ready)
}

async fn store_output(
    store: &dyn ObjectStore,
    target: &Output<'_>,
    finished: FinishedFile,
    ready: &mut DataFilesReady,
    written: &mut Vec<String>,
) -> Result<(), Error> {
    let key = target.key(written.len());
    store.put_file(&key, &finished.path).await?;
    written.push(key.clone());
    let file = data_file(
        target.table,
        store.uri(&key),
        finished.size,
        &finished.metadata,
    )?;
    ready.rows += file.record_count();
    ready.data_files.push(to_json(target.table, file)?);
    Ok(())
}

/// The rows of the raw files `inputs` in `store`, sorted by the table's sort
/// order, as a stream.
async fn sorted_stream(
    config: &CompactConfig,
    table: Table,
    store: &Arc<dyn ObjectStore>,
    inputs: &[String],
) -> Result<datafusion::physical_plan::SendableRecordBatchStream, Error> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(config.memory_limit_bytes)))
        .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(
            DiskManagerMode::Directories(vec![config.scratch_dir.clone()]),
        ))
        .build_arc()
        .map_err(datafusion_error)?;
    let mut session = SessionConfig::new();
    // Spills compressed: uncompressed, a compaction under `serve`'s load wrote
    // 1.7 GB in 20 s, and that writeback queued before the write-ahead log's
    // fdatasyncs (syncs over 15 ms: 29 → 6; requests' p99 44 → 14–24 ms).
    // LZ4 costs little CPU and 4× less disk.
    session.options_mut().execution.spill_compression = SpillCompression::Lz4Frame;
    let session = session
        .with_target_partitions(config.sort_partitions.max(1))
        .with_batch_size(config.batch_rows.max(1))
        .with_sort_spill_reservation_bytes(config.merge_reservation_bytes)
        // Statistics would read every input's footer up front, concurrently, for
        // a plan that has nothing to prune: each file is read whole anyway.
        .with_collect_statistics(false);
    let ctx = SessionContext::new_with_config_rt(session, runtime);
    ctx.register_object_store(
        &datafusion_store::store_url(),
        Arc::new(DataFusionStore::new(store.clone())),
    );
    let uris: Vec<String> = inputs
        .iter()
        .map(|key| datafusion_store::data_url(key))
        .collect();
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
                let file = File::create(&path).map_err(|e| io_error(&path, e))?;
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
        let io = |e| io_error(&path, e);
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
