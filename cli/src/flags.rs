//! Command-line flags of every subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use otlp2parquet_core::Signal;
use otlp2parquet_core::convert::{DEFAULT_MAX_ATTRIBUTE_VALUES, DEFAULT_MAX_ATTRIBUTES, Limits};

/// Land OpenTelemetry logs, traces and metrics as Parquet files and Iceberg tables.
#[derive(Debug, Parser)]
#[command(name = "otlp2parquet", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert OTLP files (.pb, .json, .jsonl, optionally gzip) into one Parquet file per table.
    ///
    /// Every input is decoded and converted before anything is written, so bad
    /// input leaves no output behind. Records the OTLP spec calls invalid (ids of
    /// the wrong length, unknown enum values) are skipped and reported, as an
    /// OTLP server reports them in `partial_success`.
    #[command(
        after_help = "Example:\n  otlp2parquet generate --signal logs --requests 3 --format jsonl --out logs.jsonl\n  otlp2parquet convert --signal logs logs.jsonl --out parquet/"
    )]
    Convert(ConvertArgs),
    /// Write deterministic synthetic OTLP export requests, for tests and load.
    #[command(
        after_help = "Example:\n  otlp2parquet generate --signal traces --records 1000 --out traces.pb"
    )]
    Generate(GenerateArgs),
    /// Run the pipeline in one process: OTLP/HTTP in, Iceberg tables out.
    ///
    /// Listens for OTLP/HTTP (protobuf or JSON, optionally gzip) on /v1/logs,
    /// /v1/traces and /v1/metrics, writes each request durably as raw Parquet into
    /// the warehouse before answering, and commits the files to Iceberg tables in
    /// the embedded SQLite catalog every flush interval and on shutdown.
    Serve(ServeArgs),
    /// Print the table schemas: columns, Iceberg types and field ids.
    Schema(SchemaArgs),
    /// List the Iceberg tables of a warehouse: snapshots, rows, files, metadata location.
    Tables(TablesArgs),
    /// Runs SQL over the committed tables (DataFusion) and prints the result.
    #[command(
        after_help = "Tables are named logs, traces, metrics_gauge, metrics_sum, metrics_histogram,\nmetrics_exponential_histogram and metrics_summary; column names keep their case.\n\nExamples:\n  otlp2parquet query \"SELECT ServiceName, count(*) AS n FROM logs GROUP BY 1 ORDER BY n DESC\"\n  otlp2parquet query \"SELECT SpanName, avg(Duration) / 1e6 AS avg_ms FROM traces GROUP BY 1\"\n  otlp2parquet query \"SELECT LogAttributes['http.method'] AS method, count(*) FROM logs GROUP BY 1\""
    )]
    Query(QueryArgs),
    /// Dead-letter queue: show what failed, or replay it once the cause is fixed.
    Dlq(DlqArgs),
    /// Run the compactor or committer of the AWS pipeline as a long-lived
    /// process (a container, a VM) instead of a Lambda function.
    ///
    /// It polls the stage's SQS queue and handles each batch exactly as the
    /// Lambda function and its event source mapping do: up to 10 messages, the
    /// failed ones handed back for another try, poison ones moved to the
    /// dead-letter queue. Configured by the same variables as the function
    /// (OTLP2PARQUET_CATALOG, OTLP2PARQUET_STATE_URI, the queue URLs, ...; see
    /// the README) and the AWS SDK's own. Run one committer only: it is the
    /// single writer of the tables.
    Worker(WorkerArgs),
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The stage: `compact` reads OTLP2PARQUET_COMPACTION_QUEUE_URL, `commit`
    /// OTLP2PARQUET_COMMIT_QUEUE_URL.
    #[arg(value_enum)]
    pub stage: WorkerStage,
    /// How long a received batch stays hidden from other consumers; longer
    /// than a batch can take (the function timeout, on Lambda).
    #[arg(long, default_value_t = 900)]
    pub visibility_timeout_secs: u64,
    /// Stop once a receive finds the queue empty, instead of waiting for
    /// more (for batch jobs and tests).
    #[arg(long)]
    pub exit_when_empty: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WorkerStage {
    /// Compact raw files (the compaction queue).
    Compact,
    /// Commit compacted files (the commit queue).
    Commit,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The signal the input files hold.
    #[arg(long, value_parser = parse_signal)]
    pub signal: Signal,
    /// Input files. `.pb` holds one protobuf export request, `.json` one JSON export
    /// request, `.jsonl` one JSON export request per line; a `.gz` suffix (or gzip
    /// content) is decompressed.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Directory to write `<table>.parquet` files into (created if missing;
    /// existing files of the same name are replaced). Plain Parquet mode.
    #[arg(
        long,
        required_unless_present = "warehouse",
        conflicts_with = "warehouse"
    )]
    pub out: Option<PathBuf>,
    /// Iceberg mode: write into the tables of the embedded catalog in this
    /// warehouse directory (SQLite `catalog.db` beside the table data), creating
    /// them on first use, and commit one snapshot per table.
    #[arg(long, env = "OTLP2PARQUET_ICEBERG_WAREHOUSE")]
    pub warehouse: Option<PathBuf>,
    /// Iceberg namespace of the tables.
    #[arg(long, default_value = "otel", env = "OTLP2PARQUET_ICEBERG_NAMESPACE")]
    pub namespace: String,
    /// Largest accepted size of one request after decompression, in bytes.
    #[arg(long, default_value_t = otlp2parquet_core::otlp::DEFAULT_MAX_DECODED_BYTES)]
    pub max_decoded_bytes: usize,
    #[command(flatten)]
    pub attribute_limits: AttributeLimitArgs,
}

/// Caps on the attributes of one record (README: "What is refused, and what is trimmed").
#[derive(Debug, Clone, Args)]
pub struct AttributeLimitArgs {
    /// Attributes kept per resource, scope, log record, span, span event and
    /// link: the first ones, the rest dropped and counted in the row's
    /// dropped_attributes_count, as the OpenTelemetry SDKs do. A metric data
    /// point over it is rejected instead (its attributes are its identity).
    #[arg(long, default_value_t = DEFAULT_MAX_ATTRIBUTES, env = "OTLP2PARQUET_MAX_ATTRIBUTES")]
    pub max_attributes: usize,
    /// Values one attribute may hold, counting the elements of its arrays and
    /// key-value lists at any depth; a longer attribute is dropped and counted
    /// like one over --max-attributes.
    #[arg(
        long,
        default_value_t = DEFAULT_MAX_ATTRIBUTE_VALUES,
        env = "OTLP2PARQUET_MAX_ATTRIBUTE_VALUES"
    )]
    pub max_attribute_values: usize,
}

impl AttributeLimitArgs {
    /// The conversion limits these flags set; the rest are the defaults.
    pub fn limits(&self) -> Limits {
        Limits::default()
            .with_max_attributes(self.max_attributes)
            .with_max_attribute_values(self.max_attribute_values)
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    /// Binary protobuf, one request per file.
    Pb,
    /// OTLP JSON, one request per file.
    Json,
    /// OTLP JSON, one request per line, all in one file.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Which signal to generate.
    #[arg(long, value_parser = parse_signal)]
    pub signal: Signal,
    /// Number of export requests.
    #[arg(long, default_value_t = 1)]
    pub requests: usize,
    /// Log records, spans or metric data points per request (an OTel Collector batch is about 1,000).
    #[arg(long, default_value_t = 1000)]
    pub records: usize,
    /// Number of distinct services (resources).
    #[arg(long, default_value_t = 10)]
    pub services: usize,
    /// Number of distinct values per varying attribute.
    #[arg(long, default_value_t = 100)]
    pub cardinality: usize,
    /// Approximate log body size in bytes.
    #[arg(long, default_value_t = 200)]
    pub body_bytes: usize,
    /// Seed: the same seed and flags always produce the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output encoding.
    #[arg(long, value_enum, default_value_t = OutputFormat::Pb)]
    pub format: OutputFormat,
    /// Gzip the output (adds `.gz` to generated file names).
    #[arg(long)]
    pub gzip: bool,
    /// Output path. One request (or `--format jsonl`): this file, `-` for stdout.
    /// Several `pb`/`json` requests: a directory that receives `<signal>-<n>.<ext>`.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file with any of: listen, warehouse, namespace, catalog,
    /// flush_interval_secs, flush_bytes, target_file_mib, compaction_memory_mib,
    /// max_body_bytes, max_attributes, max_attribute_values. Flags and environment variables override it.
    #[arg(long, env = "OTLP2PARQUET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (OTLP/HTTP's default port is 4318).
    #[arg(long, default_value = "127.0.0.1:4318", env = "OTLP2PARQUET_LISTEN")]
    pub listen: std::net::SocketAddr,
    /// Warehouse directory: table data, catalog.db (Iceberg catalog) and queues.db.
    #[arg(
        long,
        default_value = "otlp2parquet-data",
        env = "OTLP2PARQUET_ICEBERG_WAREHOUSE"
    )]
    pub warehouse: PathBuf,
    /// Iceberg namespace of the tables.
    #[arg(long, default_value = "otel", env = "OTLP2PARQUET_ICEBERG_NAMESPACE")]
    pub namespace: String,
    /// Where tables are committed: `sqlite` (an Iceberg SQL catalog in
    /// <warehouse>/catalog.db), `rest` (the Iceberg REST catalog at --rest-uri;
    /// implied by setting it) or `none` (plain Parquet: compacted files under
    /// <warehouse>/<namespace>/<table>/data/, no catalog). With
    /// --compaction-queue-url also `s3tables`, as the AWS functions read it.
    #[arg(long, value_enum, default_value_t = CatalogKind::Sqlite, env = "OTLP2PARQUET_CATALOG")]
    pub catalog: CatalogKind,
    /// Run as the AWS pipeline's ingest stage instead of the whole pipeline:
    /// each request's raw Parquet goes to S3 and a message naming it to this
    /// SQS queue before the client's 200; the compactor and committer
    /// (functions, or `otlp2parquet worker`) do the rest. S3 and SQS are
    /// configured as for the ingest function: OTLP2PARQUET_STATE_URI (Iceberg
    /// modes) or OTLP2PARQUET_S3_BUCKET/_PREFIX (--catalog none), and the AWS
    /// SDK's variables (AWS_REGION, AWS_ENDPOINT_URL, ...).
    #[arg(long, env = "OTLP2PARQUET_COMPACTION_QUEUE_URL")]
    pub compaction_queue_url: Option<String>,
    /// URI of an Iceberg REST catalog to commit to instead of the embedded one
    /// (data files still go to --warehouse, which the server must be able to name).
    #[arg(long, env = "OTLP2PARQUET_ICEBERG_REST_URI")]
    pub rest_uri: Option<String>,
    /// Bearer token for the REST catalog.
    #[arg(long, env = "OTLP2PARQUET_ICEBERG_REST_TOKEN", hide_env_values = true)]
    pub rest_token: Option<String>,
    /// Seconds between flushes (compaction, then commit). Data is durable as soon
    /// as a client has its answer; it becomes visible to queries at the next flush.
    #[arg(
        long = "flush-interval",
        default_value_t = 10.0,
        env = "OTLP2PARQUET_FLUSH_INTERVAL_SECS"
    )]
    pub flush_interval_secs: f64,
    /// Flush early once this many bytes of raw files are waiting.
    #[arg(long, default_value_t = 128 * 1024 * 1024, env = "OTLP2PARQUET_FLUSH_BYTES")]
    pub flush_bytes: u64,
    /// Size of compacted files, in MiB: raw files are merged up to it.
    #[arg(long, default_value_t = 128, env = "OTLP2PARQUET_TARGET_FILE_MIB")]
    pub target_file_mib: u64,
    /// Memory compaction may use for sorting before it spills to disk, in MiB.
    #[arg(
        long,
        default_value_t = 256,
        env = "OTLP2PARQUET_COMPACTION_MEMORY_MIB"
    )]
    pub compaction_memory_mib: usize,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024, env = "OTLP2PARQUET_MAX_BODY_BYTES")]
    pub max_body_bytes: usize,
    /// Seconds a request body may take to arrive; slower ones get 408 (so slow
    /// or stalled clients cannot hold connections and memory indefinitely).
    #[arg(
        long = "body-timeout",
        default_value_t = 30.0,
        env = "OTLP2PARQUET_BODY_TIMEOUT_SECS"
    )]
    pub body_timeout_secs: f64,
    /// MiB of accepted requests that may wait in the write-ahead log to be
    /// converted to Parquet; beyond it requests get 503 with Retry-After until
    /// the conversion catches up.
    #[arg(long, default_value_t = 1024, env = "OTLP2PARQUET_WAL_BACKLOG_MIB")]
    pub wal_backlog_mib: u64,
    #[command(flatten)]
    pub attribute_limits: AttributeLimitArgs,
}

/// Where `serve` commits tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogKind {
    /// The embedded Iceberg SQL catalog (SQLite), readable by PyIceberg and DuckDB.
    Sqlite,
    /// An Iceberg REST catalog (--rest-uri).
    Rest,
    /// No catalog: plain Parquet files.
    None,
    /// S3 Tables: only as the AWS pipeline's ingest stage
    /// (--compaction-queue-url), where the committer commits to it.
    S3tables,
}

impl CatalogKind {
    /// The value as written in OTLP2PARQUET_CATALOG.
    pub fn as_str(self) -> &'static str {
        match self {
            CatalogKind::Sqlite => "sqlite",
            CatalogKind::Rest => "rest",
            CatalogKind::None => "none",
            CatalogKind::S3tables => "s3tables",
        }
    }
}

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub action: DlqAction,
}

/// The embedded pipeline's warehouse, for `dlq show` and `dlq replay`.
#[derive(Debug, Args)]
pub struct DlqWarehouse {
    /// Warehouse directory of the embedded pipeline (holds queues.db).
    #[arg(
        long,
        env = "OTLP2PARQUET_ICEBERG_WAREHOUSE",
        default_value = "otlp2parquet-data"
    )]
    pub warehouse: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// Print the embedded pipeline's dead-lettered messages.
    Show(DlqWarehouse),
    /// Count, age, tables and failure reasons of the messages in an SQS
    /// dead-letter queue; the messages stay where they are.
    ///
    /// AWS credentials, region and endpoint come from the SDK's standard
    /// variables (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, ...).
    Inspect {
        /// The dead-letter queue's URL.
        queue_url: String,
        /// Look at no more than this many messages.
        #[arg(long, default_value_t = 1000)]
        max: usize,
        /// Print each message's body too.
        #[arg(long)]
        bodies: bool,
    },
    /// Move dead-lettered messages back to be processed again, once the
    /// cause is fixed.
    ///
    /// Without --from/--to: every message of the embedded pipeline's
    /// dead-letter queues (in --warehouse). With them: the messages of the SQS
    /// queue --from are sent to --to (keeping FIFO message groups, with
    /// deduplication ids of their own), each deleted from --from only after it
    /// was sent. A crash in between leaves a duplicate, which the stages
    /// absorb; nothing is lost.
    Replay {
        #[command(flatten)]
        warehouse: DlqWarehouse,
        /// The SQS dead-letter queue to replay (URL).
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// The SQS queue to send the messages to (URL): the queue whose
        /// redrive policy names --from.
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// Move at most this many messages.
        #[arg(long, requires = "from")]
        max: Option<usize>,
        /// Count what would be moved and move nothing.
        #[arg(long, requires = "from")]
        dry_run: bool,
    },
}

/// The embedded catalog a reading command looks at.
#[derive(Debug, Args)]
pub struct CatalogLocation {
    /// Warehouse directory of `otlp2parquet serve` (holds catalog.db).
    #[arg(
        long,
        env = "OTLP2PARQUET_ICEBERG_WAREHOUSE",
        default_value = "otlp2parquet-data"
    )]
    pub warehouse: PathBuf,
    /// Iceberg namespace of the tables.
    #[arg(long, default_value = "otel", env = "OTLP2PARQUET_ICEBERG_NAMESPACE")]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct TablesArgs {
    #[command(flatten)]
    pub location: CatalogLocation,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL statement.
    pub sql: String,
    #[command(flatten)]
    pub location: CatalogLocation,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Print Markdown tables (as in the README) instead of plain text.
    #[arg(long)]
    pub markdown: bool,
}

fn parse_signal(s: &str) -> Result<Signal, String> {
    s.parse()
}
