//! Parquet files written the way every reader of these tables expects them.
//!
//! zstd compression, statistics down to the page level (so engines can skip pages
//! by time or service), and row groups capped by both rows and bytes. The Arrow
//! schema passed in already carries `PARQUET:field_id` on every field (see
//! [`crate::schema`]); the Arrow writer turns that metadata into Parquet field ids.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::{Error, Result};

/// Settings for the Parquet files this project writes.
#[derive(Debug, Clone)]
pub struct ParquetWriterBuilder {
    zstd_level: i32,
    max_row_group_rows: usize,
    data_page_bytes: usize,
    raw: bool,
}

impl Default for ParquetWriterBuilder {
    fn default() -> Self {
        ParquetWriterBuilder {
            // Level 1 compresses telemetry (repetitive strings) nearly as well as 3
            // at a fraction of the CPU; compaction can afford to rewrite with more.
            zstd_level: 1,
            max_row_group_rows: 1024 * 1024,
            data_page_bytes: 1024 * 1024,
            raw: false,
        }
    }
}

impl ParquetWriterBuilder {
    /// Starts from the defaults: zstd level 1 (the crate's `zstd` feature),
    /// 1 Mi-row row groups, 1 MiB pages.
    pub fn new() -> Self {
        Self::default()
    }

    /// Settings for raw files, which live until compaction rewrites them and
    /// are read once, whole, by it: LZ4 instead of zstd and statistics per
    /// column chunk instead of per page. Encoding them is on the path of
    /// every request `serve` acknowledges; see the README's benchmarks.
    pub fn for_raw_files() -> Self {
        ParquetWriterBuilder {
            raw: true,
            ..Self::default()
        }
    }

    /// Sets the zstd level (1..=22).
    pub fn with_zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level;
        self
    }

    /// Caps row groups at this many rows.
    pub fn with_max_row_group_rows(mut self, rows: usize) -> Self {
        self.max_row_group_rows = rows;
        self
    }

    /// The writer properties these settings describe.
    pub fn properties(&self) -> Result<WriterProperties> {
        let (compression, statistics) = if self.raw {
            (Compression::LZ4_RAW, EnabledStatistics::Chunk)
        } else {
            let level = ZstdLevel::try_new(self.zstd_level)?;
            (Compression::ZSTD(level), EnabledStatistics::Page)
        };
        let mut props = WriterProperties::builder()
            .set_compression(compression)
            .set_statistics_enabled(statistics)
            .set_max_row_group_row_count(Some(self.max_row_group_rows))
            .set_data_page_size_limit(self.data_page_bytes)
            .set_created_by(concat!("otlp2parquet ", env!("CARGO_PKG_VERSION")).to_string());
        // Ids, bodies, times and measurements are (nearly) unique per row: a
        // dictionary for them costs hashing every value and a page that zstd then
        // compresses on its own, and saves nothing. Low-cardinality columns (service,
        // severity, names, attribute keys and values) keep their dictionaries.
        for column in HIGH_CARDINALITY_COLUMNS {
            props = props.set_column_dictionary_enabled(ColumnPath::from(*column), false);
        }
        Ok(props.build())
    }

    /// Writes `batches` (all of `schema`) into `out` as one Parquet file.
    pub fn write<W: Write + Send>(
        &self,
        schema: SchemaRef,
        batches: &[RecordBatch],
        out: W,
    ) -> Result<W> {
        let mut writer = ArrowWriter::try_new(out, schema, Some(self.properties()?))?;
        for batch in batches {
            writer.write(batch)?;
        }
        Ok(writer.into_inner()?)
    }

    /// Writes `batches` to `path` atomically: into a temporary file beside it, fsync'd,
    /// then renamed, so a crash or an error never leaves a partial file at `path`.
    /// Returns the file's footer metadata and its size in bytes.
    pub fn write_file(
        &self,
        schema: SchemaRef,
        batches: &[RecordBatch],
        path: &Path,
    ) -> Result<(ParquetMetaData, u64)> {
        let tmp = temporary_path(path);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let result = (|| {
            let file = File::create(&tmp).map_err(io(&tmp))?;
            let mut writer = ArrowWriter::try_new(file, schema, Some(self.properties()?))?;
            for batch in batches {
                writer.write(batch)?;
            }
            let metadata = writer.finish()?;
            let file = writer.inner();
            file.sync_all().map_err(io(&tmp))?;
            let size = file.metadata().map_err(io(&tmp))?.len();
            std::fs::rename(&tmp, path).map_err(io(path))?;
            Ok((metadata, size))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// Top-level columns written without a dictionary; see [`ParquetWriterBuilder::properties`].
const HIGH_CARDINALITY_COLUMNS: &[&str] = &[
    "Timestamp",
    "ObservedTimestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "Body",
    "Duration",
    "StartTimeUnix",
    "TimeUnix",
    "Value",
    "IntValue",
    "Count",
    "Sum",
    "Min",
    "Max",
];

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}
