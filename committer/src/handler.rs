//! The committer function: its settings and the handler of one SQS batch.
//!
//! Fed by the FIFO commit queue with reserved concurrency 1, it is the single
//! writer of every table. The handler maps the event onto the commit stage
//! (`otlp2parquet_iceberg::commit::commit`: one append per table per batch,
//! exactly once through the ledger in the state store) and its outcomes onto
//! the batch response: a failed message is reported with every later message
//! of its group (one group per table), as Lambda requires of FIFO queues, and
//! a poison one is moved to the dead-letter queue with its reason.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use otlp2parquet_aws::config::{ConfigError, Variables};
use otlp2parquet_aws::lambda::{batch_response, received_messages};
use otlp2parquet_aws::{S3Store, SqsQueue};
use otlp2parquet_core::ports::ReceivedMessage;
use otlp2parquet_core::stage::settle_lambda_batch;
use otlp2parquet_iceberg::commit::{CommitConfig, CommitReport, Staging, commit, commit_due};
use otlp2parquet_iceberg::deployment::CatalogSettings;
use tracing::info;

/// Lambda's longest function timeout: a pending commit older than this was
/// abandoned by an invocation that can no longer be running.
const DEFAULT_LEASE_SECS: usize = 900;

/// What the committer function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitterSettings {
    /// The catalog the tables are in.
    pub catalog: CatalogSettings,
    /// The namespace of the tables.
    pub namespace: String,
    /// Bucket and prefix of the commit ledger.
    pub state: (String, String),
    /// The queue the function is fed by: poison messages go to its
    /// dead-letter queue.
    pub commit_queue_url: String,
    /// How old a pending commit must be before it counts as abandoned.
    pub pending_lease: Duration,
    /// Compactions gathered over batches before a commit; `None`: every batch.
    pub staging: Option<Staging>,
}

impl CommitterSettings {
    /// Reads and checks the variables (see the README's configuration table).
    pub fn from_variables<F: Fn(&str) -> Option<String>>(
        variables: &Variables<F>,
    ) -> Result<Self, ConfigError> {
        let catalog = CatalogSettings::from_variables(variables)?.ok_or_else(|| {
            ConfigError::new(
                "OTLP2PARQUET_CATALOG",
                "none: plain mode has nothing to commit, so it runs no committer; set it to \
                 s3tables or rest",
            )
        })?;
        Ok(CommitterSettings {
            catalog,
            namespace: variables.namespace()?,
            state: variables.s3_uri(
                "OTLP2PARQUET_STATE_URI",
                "the general-purpose bucket (and prefix) for the commit ledger, s3://bucket/prefix",
            )?,
            commit_queue_url: variables.queue_url("OTLP2PARQUET_COMMIT_QUEUE_URL")?,
            pending_lease: Duration::from_secs(
                variables.number("OTLP2PARQUET_COMMIT_LEASE_SECS", DEFAULT_LEASE_SECS)? as u64,
            ),
            staging: match variables.number("OTLP2PARQUET_COMMIT_BATCH_COMPACTIONS", 1)? {
                0 | 1 => None,
                max_compactions => Some(Staging {
                    max_compactions,
                    max_wait: Duration::from_secs(
                        variables.number("OTLP2PARQUET_COMMIT_MAX_WAIT_SECS", 60)? as u64,
                    ),
                }),
            },
        })
    }
}

/// The committer, with the clients built once per cold start.
pub struct Committer {
    catalog: Arc<dyn iceberg::Catalog>,
    state: S3Store,
    queue: SqsQueue,
    config: CommitConfig,
}

impl Committer {
    /// The committer of `settings`, its clients built from `sdk`; a REST
    /// catalog is asked for its configuration here.
    pub async fn new(
        settings: &CommitterSettings,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let s3 = otlp2parquet_aws::s3_client(sdk);
        // Metadata and manifests go through the same S3 client as everything else.
        let catalog = settings.catalog.open(sdk, s3.clone()).await?;
        Ok(Committer {
            catalog,
            state: S3Store::new(s3, &settings.state.0, &settings.state.1),
            queue: SqsQueue::new(
                otlp2parquet_aws::sqs_client(sdk),
                &settings.commit_queue_url,
            ),
            config: CommitConfig {
                namespace: settings.namespace.clone(),
                pending_lease: settings.pending_lease,
                staging: settings.staging,
            },
        })
    }

    /// What the function answers to `event`: an SQS event's messages are
    /// committed (or staged) and the response names those to hand back; any
    /// other event (a schedule's) commits the staged compactions that are due.
    ///
    /// # Errors
    /// An event with `Records` that is not an SQS event.
    pub async fn handle_event(
        &self,
        event: serde_json::Value,
    ) -> Result<serde_json::Value, serde_json::Error> {
        if event.get("Records").is_some() {
            let response = self.handle(serde_json::from_value(event)?).await;
            return serde_json::to_value(response);
        }
        let report = self.commit_due(false).await;
        Ok(serde_json::json!({
            "commits": report.commits,
            "files": report.files,
            "rows": report.rows,
        }))
    }

    /// Commits the staged compactions that are due, or (`force`) all of them.
    pub async fn commit_due(&self, force: bool) -> CommitReport {
        let report = commit_due(self.catalog.as_ref(), &self.state, &self.config, force).await;
        if report.commits > 0 {
            info!(
                commits = report.commits,
                files = report.files,
                rows = report.rows,
                "staged compactions committed"
            );
        }
        report
    }

    /// Commits what the event's messages announce; the response reports the
    /// messages to hand back.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        batch_response(self.handle_messages(&received_messages(&event)).await)
    }

    /// Commits what `messages` announce; returns the ids of those to hand
    /// back (with, in a FIFO queue, every later message of their groups).
    pub async fn handle_messages(&self, messages: &[ReceivedMessage]) -> Vec<String> {
        let report = commit(messages, self.catalog.as_ref(), &self.state, &self.config).await;
        let failed = settle_lambda_batch(&self.queue, messages, &report.outcomes).await;
        info!(
            messages = messages.len(),
            failed = failed.len(),
            commits = report.commits,
            files = report.files,
            rows = report.rows,
            already_committed = report.already_committed,
            "batch committed"
        );
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: [(&str, &str); 4] = [
        ("OTLP2PARQUET_CATALOG", "s3tables"),
        (
            "OTLP2PARQUET_ICEBERG_WAREHOUSE",
            "arn:aws:s3tables:us-east-1:123456789012:bucket/telemetry",
        ),
        ("OTLP2PARQUET_STATE_URI", "s3://state/pipeline"),
        (
            "OTLP2PARQUET_COMMIT_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/123456789012/commit.fifo",
        ),
    ];

    #[test]
    fn settings_and_defaults() {
        let settings = CommitterSettings::from_variables(&Variables::from_pairs(&GOOD)).unwrap();
        assert_eq!(settings.namespace, "otel");
        assert_eq!(settings.state, ("state".into(), "pipeline".into()));
        assert_eq!(settings.pending_lease, Duration::from_secs(900));
        assert_eq!(settings.staging, None, "every batch committed unless asked");
        let mut pairs = GOOD.to_vec();
        pairs.push(("OTLP2PARQUET_COMMIT_BATCH_COMPACTIONS", "100"));
        let settings = CommitterSettings::from_variables(&Variables::from_pairs(&pairs)).unwrap();
        assert_eq!(
            settings.staging,
            Some(Staging {
                max_compactions: 100,
                max_wait: Duration::from_secs(60)
            })
        );
    }

    #[test]
    fn wrong_variables_are_named() {
        for (broken, value) in [
            ("OTLP2PARQUET_CATALOG", "none"),
            ("OTLP2PARQUET_ICEBERG_WAREHOUSE", "telemetry"),
            ("OTLP2PARQUET_STATE_URI", ""),
            ("OTLP2PARQUET_COMMIT_QUEUE_URL", "commit"),
            ("OTLP2PARQUET_COMMIT_LEASE_SECS", "long"),
            ("OTLP2PARQUET_COMMIT_BATCH_COMPACTIONS", "many"),
        ] {
            let mut pairs = GOOD.to_vec();
            pairs.retain(|(name, _)| *name != broken);
            pairs.push((broken, value));
            let err =
                CommitterSettings::from_variables(&Variables::from_pairs(&pairs)).unwrap_err();
            assert_eq!(err.variable, broken, "{err}");
        }
    }
}
