//! Decoded OTLP requests to Arrow record batches, one per destination table.
//!
//! Conversion validates every record before it appends anything, so a record is
//! either in the output whole or counted as rejected with a reason — the contract
//! of OTLP's `partial_success`. Rejected are records that would be stored wrong:
//! ids of the wrong length, enum values the OTLP spec does not define, histograms
//! whose bucket counts do not match their bounds.

mod builders;
mod limits;
mod logs;
mod metrics;
mod traces;
pub mod values;
mod wire;

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use crate::otlp::ExportRequest;
use crate::schema::arrow_schema;
use crate::{Error, Result, Table};

use builders::ResourceScopeColumns;
pub use limits::{
    DEFAULT_MAX_ATTRIBUTE_VALUES, DEFAULT_MAX_ATTRIBUTES, DEFAULT_MAX_CONVERTED_BYTES,
    DEFAULT_MAX_EXPANSION, EXPANSION_FLOOR_BYTES, Limits,
};
pub use wire::refuse_before_decoding;

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

/// Converts a decoded request into record batches in the tables' Arrow schemas,
/// within the default [`Limits`].
///
/// Takes the request by value and frees it part by part while converting: a
/// decoded request is several times the size of its wire form, and holding it
/// whole next to the finished columns would double the peak.
pub fn convert(request: ExportRequest) -> Result<Converted> {
    convert_with(request, &Limits::default())
}

/// Bytes of Arrow data each row costs beyond its values (offsets, validity,
/// fixed-width columns), as the estimate counts it.
const ROW_OVERHEAD_BYTES: u64 = 128;

/// [`convert`] within `limits`: attributes over the caps are dropped and
/// counted (data points over them rejected), then a request whose estimated
/// converted size ([`estimated_converted_bytes`]) exceeds the limits (absolute,
/// and relative to its size) is refused before any column is built.
pub fn convert_with(mut request: ExportRequest, limits: &Limits) -> Result<Converted> {
    limits.trim_request(&mut request);
    let estimated = estimated_converted_bytes(&request);
    let allowed = limits.converted_bytes_allowed(&request, estimated);
    if estimated > allowed {
        return Err(Error::ConversionTooLarge {
            estimated,
            limit: allowed,
        });
    }
    let mut rejections = Rejections::default();
    let batches = match request {
        ExportRequest::Logs(r) => logs::convert(r, &mut rejections)?,
        ExportRequest::Traces(r) => traces::convert(r, &mut rejections)?,
        ExportRequest::Metrics(r) => metrics::convert(r, limits, &mut rejections)?,
    };
    Ok(Converted {
        batches: batches
            .into_iter()
            .filter(|(_, b)| b.num_rows() > 0)
            .collect(),
        rejections,
    })
}

/// How many data points there are, and their encoded size.
fn points_bytes<P: prost::Message>(points: &[P]) -> (u64, u64) {
    let bytes = points.iter().map(|p| p.encoded_len() as u64).sum();
    (points.len() as u64, bytes)
}

fn attributes_bytes(attributes: &[KeyValue]) -> u64 {
    attributes
        .iter()
        .map(|kv| (kv.key.len() + kv.value.as_ref().map_or(0, |v| v.encoded_len())) as u64)
        .sum()
}

/// What a request will take once converted, estimated in one pass over it
/// without building anything.
///
/// Every row repeats its resource's and scope's attributes (and a data point
/// its metric's name, description and unit), so a small body can expand to
/// gigabytes: 10,000 resource attributes over 10,000 records is a 1 MiB body
/// and several GiB of columns. The estimate counts exactly those repetitions,
/// plus each record's own encoded size and a fixed cost per row.
pub fn estimated_converted_bytes(request: &ExportRequest) -> u64 {
    let resource_bytes = |r: Option<&Resource>| r.map_or(0, |r| attributes_bytes(&r.attributes));
    let scope_bytes = |s: Option<&InstrumentationScope>| {
        s.map_or(0, |s| {
            (s.name.len() + s.version.len()) as u64 + attributes_bytes(&s.attributes)
        })
    };
    let mut total: u64 = 0;
    match request {
        ExportRequest::Logs(r) => {
            for rl in &r.resource_logs {
                let rb = resource_bytes(rl.resource.as_ref());
                for sl in &rl.scope_logs {
                    let shared = ROW_OVERHEAD_BYTES + rb + scope_bytes(sl.scope.as_ref());
                    for record in &sl.log_records {
                        total = total.saturating_add(shared + record.encoded_len() as u64);
                    }
                }
            }
        }
        ExportRequest::Traces(r) => {
            for rs in &r.resource_spans {
                let rb = resource_bytes(rs.resource.as_ref());
                for ss in &rs.scope_spans {
                    let shared = ROW_OVERHEAD_BYTES + rb + scope_bytes(ss.scope.as_ref());
                    for span in &ss.spans {
                        total = total.saturating_add(shared + span.encoded_len() as u64);
                    }
                }
            }
        }
        ExportRequest::Metrics(r) => {
            use opentelemetry_proto::tonic::metrics::v1::metric::Data;
            for rm in &r.resource_metrics {
                let rb = resource_bytes(rm.resource.as_ref());
                for sm in &rm.scope_metrics {
                    let shared = ROW_OVERHEAD_BYTES + rb + scope_bytes(sm.scope.as_ref());
                    for metric in &sm.metrics {
                        let per_point = shared
                            + (metric.name.len() + metric.description.len() + metric.unit.len())
                                as u64
                            + attributes_bytes(&metric.metadata);
                        let (count, points) = match &metric.data {
                            Some(Data::Gauge(g)) => points_bytes(&g.data_points),
                            Some(Data::Sum(s)) => points_bytes(&s.data_points),
                            Some(Data::Histogram(h)) => points_bytes(&h.data_points),
                            Some(Data::ExponentialHistogram(h)) => points_bytes(&h.data_points),
                            Some(Data::Summary(s)) => points_bytes(&s.data_points),
                            None => (0, 0),
                        };
                        total = total.saturating_add(per_point.saturating_mul(count) + points);
                    }
                }
            }
        }
    }
    total
}

/// Puts a table's own columns and the shared resource/scope columns into one batch.
fn assemble(
    table: Table,
    mut columns: Vec<ArrayRef>,
    common: &mut ResourceScopeColumns,
) -> Result<(Table, RecordBatch)> {
    let schema = arrow_schema(table).clone();
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
    let schema = arrow_schema(table);
    schema
        .field_with_name(name)
        .map(|f| f.data_type())
        .map_err(|source| Error::Arrow {
            table: table.name(),
            source,
        })
}
