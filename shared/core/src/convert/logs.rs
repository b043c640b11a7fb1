//! Log records to the `logs` table.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};

use super::builders::{
    AttributesBuilder, ResourceContext, ResourceScopeColumns, ScopeContext, micros,
    timestamp_builder,
};
use super::values::{check_id, hex, render_value};
use super::{Rejections, assemble, column_type};
use crate::{Result, Table};

/// The highest `SeverityNumber` OTLP defines (`FATAL4`).
const MAX_SEVERITY: i32 = 24;

pub(super) fn convert(
    request: ExportLogsServiceRequest,
    rejections: &mut Rejections,
) -> Result<Vec<(Table, RecordBatch)>> {
    let rows: usize = request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    let mut timestamp = timestamp_builder(rows);
    let mut observed = timestamp_builder(rows);
    let mut trace_id = StringBuilder::with_capacity(rows, rows * 32);
    let mut span_id = StringBuilder::with_capacity(rows, rows * 16);
    let mut flags = Int64Builder::with_capacity(rows);
    let mut severity_text = StringBuilder::with_capacity(rows, rows * 5);
    let mut severity_number = Int32Builder::with_capacity(rows);
    let mut body = StringBuilder::with_capacity(rows, rows * 64);
    let mut event_name = StringBuilder::with_capacity(rows, 0);
    let mut attributes = AttributesBuilder::with_capacity(rows);
    let mut dropped = Int64Builder::with_capacity(rows);
    let mut common = ResourceScopeColumns::with_capacity(rows);
    let mut scratch = String::new();
    let mut id_buf = [0u8; 32];

    // The request is consumed scope by scope, so that its memory is freed while the
    // Arrow columns grow: peak memory stays near the larger of the two, not their sum.
    for (ri, resource_logs) in request.resource_logs.into_iter().enumerate() {
        let ResourceLogs {
            resource,
            scope_logs,
            schema_url,
        } = resource_logs;
        let resource = ResourceContext::new(resource.as_ref(), &schema_url);
        for (si, scope_logs) in scope_logs.into_iter().enumerate() {
            let scope = ScopeContext::new(scope_logs.scope.as_ref(), &scope_logs.schema_url);
            for (li, record) in scope_logs.log_records.iter().enumerate() {
                if let Err(reason) = validate(record) {
                    rejections.reject(|| {
                        format!("resource_logs[{ri}].scope_logs[{si}].log_records[{li}]: {reason}")
                    });
                    continue;
                }
                timestamp.append_option(micros(record.time_unix_nano));
                observed.append_option(micros(record.observed_time_unix_nano));
                trace_id.append_value(hex(&record.trace_id, &mut id_buf));
                span_id.append_value(hex(&record.span_id, &mut id_buf));
                flags.append_value(record.flags.into());
                severity_text.append_value(&record.severity_text);
                severity_number.append_value(record.severity_number);
                scratch.clear();
                render_value(record.body.as_ref(), &mut scratch);
                body.append_value(&scratch);
                event_name.append_value(&record.event_name);
                attributes.append(&record.attributes);
                dropped.append_value(record.dropped_attributes_count.into());
                common.append(&resource, &scope);
            }
        }
    }

    let table = Table::Logs;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(timestamp.finish()),
        Arc::new(observed.finish()),
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(flags.finish()),
        Arc::new(severity_text.finish()),
        Arc::new(severity_number.finish()),
        Arc::new(body.finish()),
        Arc::new(event_name.finish()),
        attributes
            .finish(column_type(table, "LogAttributes")?)
            .map_err(|source| crate::Error::Arrow {
                table: table.name(),
                source,
            })?,
        Arc::new(dropped.finish()),
    ];
    Ok(vec![assemble(table, columns, &mut common)?])
}

fn validate(record: &LogRecord) -> Result<(), String> {
    if !(0..=MAX_SEVERITY).contains(&record.severity_number) {
        return Err(format!(
            "severity_number {} is not a SeverityNumber (0..=24)",
            record.severity_number
        ));
    }
    check_id(&record.trace_id, 16, "trace_id")?;
    check_id(&record.span_id, 8, "span_id")
}
