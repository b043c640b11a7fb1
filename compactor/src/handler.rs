//! The compactor function: its settings and the handler of one SQS batch.
//!
//! The handler maps the event onto the compaction stage
//! (`otlp2parquet_compact::compact`) and its outcomes onto the batch response:
//! a message that failed is reported alone (a standard queue keeps no order),
//! and a poison one is moved to the dead-letter queue with its reason, so that
//! `otlp2parquet dlq inspect` can say why it is there.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use otlp2parquet_aws::config::{ConfigError, PlainWarehouse, Variables};
use otlp2parquet_aws::lambda::{batch_response, received_messages};
use otlp2parquet_aws::{S3Store, SqsQueue, TableLocations};
use otlp2parquet_compact::{CompactConfig, Stores, clean_scratch, compact};
use otlp2parquet_core::Table;
use otlp2parquet_core::ports::{ObjectStore, Queue, ReceivedMessage};
use otlp2parquet_core::stage::settle_lambda_batch;
use otlp2parquet_iceberg::NamespaceIdent;
use otlp2parquet_iceberg::catalog::ensure_table;
use otlp2parquet_iceberg::deployment::CatalogSettings;
use tracing::info;

/// Where sort spills and outputs being written go unless
/// `OTLP2PARQUET_SCRATCH_DIR` says otherwise: Lambda's only writable disk.
const DEFAULT_SCRATCH_DIR: &str = "/tmp/otlp2parquet-compaction";

/// Where compacted files go, and what becomes of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Plain Parquet: raw and compacted files in this bucket; the compacted
    /// files are the product.
    Plain(PlainWarehouse),
    /// Iceberg (S3 Tables, or a REST catalog): raw files in the state
    /// bucket, compacted files in each table's location (tables created on
    /// first use), announced to the committer through the FIFO commit queue.
    Iceberg {
        /// The catalog the tables are in.
        catalog: CatalogSettings,
        /// Where "data files ready" messages go.
        commit_queue_url: String,
    },
}

/// What the compactor function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactorSettings {
    /// Where raw files are read and compacted files written.
    pub mode: Mode,
    /// Bucket and prefix of plans, claims and results.
    pub state: (String, String),
    /// The namespace tables are laid out under.
    pub namespace: String,
    /// The queue the function is fed by: poison messages go to its
    /// dead-letter queue.
    pub compaction_queue_url: String,
    /// Size at which a compacted file is closed.
    pub target_file_bytes: u64,
    /// Memory DataFusion may sort in before spilling to disk.
    pub memory_limit_bytes: usize,
    /// Local scratch directory.
    pub scratch_dir: PathBuf,
}

impl CompactorSettings {
    /// Reads and checks the variables (see the README's configuration table).
    pub fn from_variables<F: Fn(&str) -> Option<String>>(
        variables: &Variables<F>,
    ) -> Result<Self, ConfigError> {
        const STATE: &str = "OTLP2PARQUET_STATE_URI";
        const STATE_WHAT: &str =
            "the general-purpose bucket (and prefix) for the stages' records, s3://bucket/prefix";
        let (mode, state) = match CatalogSettings::from_variables(variables)? {
            None => {
                let warehouse = PlainWarehouse::from_variables(variables)?;
                let state = match variables.optional(STATE) {
                    // Plain mode's bucket is a general-purpose one: the records
                    // can live beside the data, outside every table's `data/`.
                    None => (warehouse.bucket.clone(), warehouse.prefix.clone()),
                    Some(_) => variables.s3_uri(STATE, STATE_WHAT)?,
                };
                (Mode::Plain(warehouse), state)
            }
            Some(catalog) => (
                Mode::Iceberg {
                    catalog,
                    commit_queue_url: variables.queue_url("OTLP2PARQUET_COMMIT_QUEUE_URL")?,
                },
                // Claims must be conditional, listable and deletable: never
                // in a table bucket.
                variables.s3_uri(STATE, STATE_WHAT)?,
            ),
        };
        let target_file_mib = variables.number("OTLP2PARQUET_TARGET_FILE_MIB", 128)?;
        // Half the function's memory by default: the rest holds the runtime,
        // the writer's row group and the clients.
        let function_mib = variables
            .number("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 512)
            .unwrap_or(512);
        let memory_mib = variables.number(
            "OTLP2PARQUET_COMPACTION_MEMORY_MIB",
            (function_mib / 2).max(64),
        )?;
        for (name, value) in [
            ("OTLP2PARQUET_TARGET_FILE_MIB", target_file_mib),
            ("OTLP2PARQUET_COMPACTION_MEMORY_MIB", memory_mib),
        ] {
            if value == 0 {
                return Err(ConfigError::new(name, "0 MiB; it should be at least 1"));
            }
        }
        Ok(CompactorSettings {
            mode,
            state,
            namespace: variables.namespace()?,
            compaction_queue_url: variables.queue_url("OTLP2PARQUET_COMPACTION_QUEUE_URL")?,
            target_file_bytes: (target_file_mib as u64) << 20,
            memory_limit_bytes: memory_mib << 20,
            scratch_dir: variables
                .optional("OTLP2PARQUET_SCRATCH_DIR")
                .unwrap_or_else(|| DEFAULT_SCRATCH_DIR.to_string())
                .into(),
        })
    }
}

/// The compactor, with the clients built once per cold start.
pub struct Compactor {
    stores: Stores,
    queue: SqsQueue,
    /// Where finished compactions are announced (S3 Tables mode).
    commit_queue: Option<SqsQueue>,
    config: CompactConfig,
}

impl Compactor {
    /// The compactor of `settings`, its clients built from `sdk`. With a
    /// catalog this creates the tables that do not exist yet, to learn where
    /// the catalog puts each: a few catalog calls per cold start.
    pub async fn new(
        settings: &CompactorSettings,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let (s3, sqs) = (
            otlp2parquet_aws::s3_client(sdk),
            otlp2parquet_aws::sqs_client(sdk),
        );
        let state: Arc<dyn ObjectStore> = Arc::new(S3Store::new(
            s3.clone(),
            &settings.state.0,
            &settings.state.1,
        ));
        let (data, commit_queue): (Arc<dyn ObjectStore>, _) = match &settings.mode {
            Mode::Plain(warehouse) => (
                Arc::new(S3Store::new(s3, &warehouse.bucket, &warehouse.prefix)),
                None,
            ),
            Mode::Iceberg {
                catalog,
                commit_queue_url,
            } => {
                let catalog = catalog.open(sdk, s3.clone()).await?;
                let namespace = NamespaceIdent::new(settings.namespace.clone());
                let mut locations = BTreeMap::new();
                for table in Table::ALL {
                    let created = ensure_table(catalog.as_ref(), &namespace, table).await?;
                    locations.insert(
                        table.name().to_string(),
                        created.metadata().location().to_string(),
                    );
                }
                let routed =
                    TableLocations::new(&settings.namespace, state.clone(), s3, &locations)?;
                (
                    Arc::new(routed),
                    Some(SqsQueue::new(sqs.clone(), commit_queue_url)),
                )
            }
        };
        let mut config = CompactConfig::new(&settings.scratch_dir);
        config.namespace = settings.namespace.clone();
        config.target_file_bytes = settings.target_file_bytes;
        config.memory_limit_bytes = settings.memory_limit_bytes;
        Ok(Compactor {
            stores: Stores { data, state },
            queue: SqsQueue::new(sqs, &settings.compaction_queue_url),
            commit_queue,
            config,
        })
    }

    /// Compacts the files the event's messages name; the response reports the
    /// messages to hand back.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        batch_response(self.handle_messages(&received_messages(&event)).await)
    }

    /// Compacts what `messages` name; returns the ids of those to hand back
    /// (the rest are done, or were moved to the dead-letter queue).
    pub async fn handle_messages(&self, messages: &[ReceivedMessage]) -> Vec<String> {
        // One invocation at a time per execution environment: whatever is in
        // the scratch directory was left by one that died (a timeout).
        clean_scratch(&self.config.scratch_dir);
        // Plain mode: the compacted files are the product, nothing to commit.
        let commit_queue = self.commit_queue.as_ref().map(|q| q as &dyn Queue);
        let report = compact(messages, commit_queue, &self.stores, &self.config).await;
        let failed = settle_lambda_batch(&self.queue, messages, &report.outcomes).await;
        info!(
            messages = messages.len(),
            failed = failed.len(),
            compactions = report.compactions,
            inputs = report.inputs,
            outputs = report.outputs,
            rows = report.rows,
            "batch compacted"
        );
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/compaction";

    #[test]
    fn defaults_follow_the_function_memory_and_the_warehouse() {
        let settings = CompactorSettings::from_variables(&Variables::from_pairs(&[
            ("OTLP2PARQUET_CATALOG", "none"),
            ("OTLP2PARQUET_S3_BUCKET", "telemetry"),
            ("OTLP2PARQUET_S3_PREFIX", "lake"),
            ("OTLP2PARQUET_COMPACTION_QUEUE_URL", QUEUE),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048"),
        ]))
        .unwrap();
        assert_eq!(settings.state, ("telemetry".into(), "lake".into()));
        assert_eq!(settings.memory_limit_bytes, 1024 << 20);
        assert_eq!(settings.target_file_bytes, 128 << 20);
        assert_eq!(settings.scratch_dir, PathBuf::from(DEFAULT_SCRATCH_DIR));
        assert_eq!(settings.namespace, "otel");

        let settings = CompactorSettings::from_variables(&Variables::from_pairs(&[
            ("OTLP2PARQUET_CATALOG", "none"),
            ("OTLP2PARQUET_S3_BUCKET", "telemetry"),
            ("OTLP2PARQUET_COMPACTION_QUEUE_URL", QUEUE),
            ("OTLP2PARQUET_STATE_URI", "s3://state/pipeline"),
            ("OTLP2PARQUET_COMPACTION_MEMORY_MIB", "300"),
            ("OTLP2PARQUET_TARGET_FILE_MIB", "64"),
        ]))
        .unwrap();
        assert_eq!(settings.state, ("state".into(), "pipeline".into()));
        assert_eq!(settings.memory_limit_bytes, 300 << 20);
        assert_eq!(settings.target_file_bytes, 64 << 20);
    }

    #[test]
    fn s3_tables_mode_needs_a_state_bucket_and_a_commit_queue() {
        let base = [
            ("OTLP2PARQUET_CATALOG", "s3tables"),
            (
                "OTLP2PARQUET_ICEBERG_WAREHOUSE",
                "arn:aws:s3tables:us-east-1:123456789012:bucket/telemetry",
            ),
            ("OTLP2PARQUET_COMPACTION_QUEUE_URL", QUEUE),
        ];
        let err = CompactorSettings::from_variables(&Variables::from_pairs(&base)).unwrap_err();
        assert_eq!(err.variable, "OTLP2PARQUET_COMMIT_QUEUE_URL", "{err}");
        let mut pairs = base.to_vec();
        pairs.push((
            "OTLP2PARQUET_COMMIT_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/commit.fifo",
        ));
        let err = CompactorSettings::from_variables(&Variables::from_pairs(&pairs)).unwrap_err();
        assert_eq!(err.variable, "OTLP2PARQUET_STATE_URI", "{err}");
        pairs.push(("OTLP2PARQUET_STATE_URI", "s3://state/pipeline"));
        let settings = CompactorSettings::from_variables(&Variables::from_pairs(&pairs)).unwrap();
        assert_eq!(settings.state, ("state".into(), "pipeline".into()));
        assert!(matches!(
            settings.mode,
            Mode::Iceberg {
                catalog: CatalogSettings::S3Tables { .. },
                ..
            }
        ));
    }

    #[test]
    fn wrong_variables_are_named() {
        for (broken, value) in [
            ("OTLP2PARQUET_COMPACTION_QUEUE_URL", ""),
            ("OTLP2PARQUET_STATE_URI", "state-bucket"),
            ("OTLP2PARQUET_COMPACTION_MEMORY_MIB", "a lot"),
            ("OTLP2PARQUET_TARGET_FILE_MIB", "0"),
            ("OTLP2PARQUET_CATALOG", "glue"),
        ] {
            let mut pairs = vec![
                ("OTLP2PARQUET_CATALOG", "none"),
                ("OTLP2PARQUET_S3_BUCKET", "telemetry"),
                ("OTLP2PARQUET_COMPACTION_QUEUE_URL", QUEUE),
            ];
            pairs.retain(|(name, _)| *name != broken);
            pairs.push((broken, value));
            let err =
                CompactorSettings::from_variables(&Variables::from_pairs(&pairs)).unwrap_err();
            assert_eq!(err.variable, broken, "{err}");
        }
    }
}
