//! Decoded OTLP requests to Arrow record batches, one per destination table.
//!
//! Conversion validates every record before it appends anything, so a record is
//! either in the output whole or counted as rejected with a reason — the contract
//! of OTLP's `partial_success`. Rejected are records that would be stored wrong:
//! ids of the wrong length, enum values the OTLP spec does not define, histograms
//! whose bucket counts do not match their bounds.

mod builders;
mod logs;
mod metrics;
mod traces;
pub mod values;

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};

use crate::otlp::ExportRequest;
use crate::schema::TableDefinition;
use crate::{Error, Result, Table};

use builders::ResourceScopeColumns;

/// How many records a request had that could not be stored, and why.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejections {
    /// Number of rejected log records, spans or data points.
    pub count: u64,
    /// Up to [`Rejections::MAX_REASONS`] reasons, each naming the record's position.
    pub reasons: Vec<String>,
}

impl Rejections {
    /// How many reasons are kept; the count keeps counting past it.
    pub const MAX_REASONS: usize = 10;

    pub(crate) fn reject(&mut self, reason: impl FnOnce() -> String) {
        self.count += 1;
        if self.reasons.len() < Self::MAX_REASONS {
            self.reasons.push(reason());
        }
    }

    /// The message for OTLP's `partial_success.error_message`, empty when nothing was rejected.
    pub fn error_message(&self) -> String {
        let mut out = String::new();
        if self.count == 0 {
            return out;
        }
        let _ = write!(out, "{} rejected: {}", self.count, self.reasons.join("; "));
        if self.count as usize > self.reasons.len() {
            let _ = write!(
                out,
                "; and {} more",
                self.count as usize - self.reasons.len()
            );
        }
        out
    }
}

/// The result of converting one request.
#[derive(Debug)]
pub struct Converted {
    /// One non-empty batch per table that received records, in [`Table::ALL`] order.
    pub batches: Vec<(Table, RecordBatch)>,
    /// Records that were not converted.
    pub rejections: Rejections,
}

impl Converted {
    /// Number of rows over all batches.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|(_, b)| b.num_rows()).sum()
    }
}

/// Converts a decoded request into record batches in the tables' Arrow schemas.
///
/// Takes the request by value and frees it part by part while converting: a
/// decoded request is several times the size of its wire form, and holding it
/// whole next to the finished columns would double the peak.
pub fn convert(request: ExportRequest) -> Result<Converted> {
    let mut rejections = Rejections::default();
    let batches = match request {
        ExportRequest::Logs(r) => logs::convert(r, &mut rejections)?,
        ExportRequest::Traces(r) => traces::convert(r, &mut rejections)?,
        ExportRequest::Metrics(r) => metrics::convert(r, &mut rejections)?,
    };
    Ok(Converted {
        batches: batches
            .into_iter()
            .filter(|(_, b)| b.num_rows() > 0)
            .collect(),
        rejections,
    })
}

/// Puts a table's own columns and the shared resource/scope columns into one batch.
fn assemble(
    table: Table,
    mut columns: Vec<ArrayRef>,
    common: &mut ResourceScopeColumns,
) -> Result<(Table, RecordBatch)> {
    let schema = TableDefinition::get(table).arrow_schema.clone();
    let arrow = |source| Error::Arrow {
        table: table.name(),
        source,
    };
    let fields = schema.fields();
    let tail: Vec<_> = fields[fields.len() - ResourceScopeColumns::COUNT..]
        .iter()
        .map(|f| f.data_type())
        .collect();
    columns.extend(common.finish(&tail).map_err(arrow)?);
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(arrow)?;
    Ok((table, batch))
}

/// The data type of `table`'s column `name`; the names are this crate's constants.
fn column_type(table: Table, name: &str) -> Result<&'static arrow::datatypes::DataType> {
    let schema = &TableDefinition::get(table).arrow_schema;
    schema
        .field_with_name(name)
        .map(|f| f.data_type())
        .map_err(|source| Error::Arrow {
            table: table.name(),
            source,
        })
}
