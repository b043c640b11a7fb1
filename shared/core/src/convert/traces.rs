//! Spans to the `traces` table.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use arrow::error::ArrowError;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

use super::builders::{
    AttributesBuilder, ListOffsets, ResourceContext, ResourceScopeColumns, ScopeContext, micros,
    struct_list, timestamp_builder,
};
use super::values::{check_id, hex};
use super::{Rejections, assemble, column_type};
use crate::{Error, Result, Table};

/// `SpanKind` as the ClickHouse exporter writes it.
fn kind_name(kind: i32) -> Option<&'static str> {
    Some(match SpanKind::try_from(kind).ok()? {
        SpanKind::Unspecified => "Unspecified",
        SpanKind::Internal => "Internal",
        SpanKind::Server => "Server",
        SpanKind::Client => "Client",
        SpanKind::Producer => "Producer",
        SpanKind::Consumer => "Consumer",
    })
}

/// `Status.code` as the ClickHouse exporter writes it.
fn status_name(code: i32) -> Option<&'static str> {
    Some(match StatusCode::try_from(code).ok()? {
        StatusCode::Unset => "Unset",
        StatusCode::Ok => "Ok",
        StatusCode::Error => "Error",
    })
}

/// Checks everything about a span that could make it unstorable.
fn validate(span: &Span) -> Result<(&'static str, &'static str), String> {
    let kind = kind_name(span.kind)
        .ok_or_else(|| format!("kind {} is not a SpanKind (0..=5)", span.kind))?;
    let code = span.status.as_ref().map_or(0, |s| s.code);
    let status = status_name(code)
        .ok_or_else(|| format!("status.code {code} is not a StatusCode (0..=2)"))?;
    // A span without its own ids cannot be found or joined: OTLP requires them.
    if span.trace_id.len() != 16 {
        return Err(format!(
            "trace_id must be 16 bytes, got {}",
            span.trace_id.len()
        ));
    }
    if span.span_id.len() != 8 {
        return Err(format!(
            "span_id must be 8 bytes, got {}",
            span.span_id.len()
        ));
    }
    check_id(&span.parent_span_id, 8, "parent_span_id")?;
    for (i, link) in span.links.iter().enumerate() {
        if link.trace_id.len() != 16 || link.span_id.len() != 8 {
            return Err(format!(
                "links[{i}] must have a 16-byte trace_id and an 8-byte span_id, got {} and {}",
                link.trace_id.len(),
                link.span_id.len()
            ));
        }
    }
    Ok((kind, status))
}

/// Nanoseconds from start to end; an end before the start is kept as a negative
/// duration rather than wrapped around.
fn duration(span: &Span) -> i64 {
    (i128::from(span.end_time_unix_nano) - i128::from(span.start_time_unix_nano))
        .clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

pub(super) fn convert(
    request: ExportTraceServiceRequest,
    rejections: &mut Rejections,
) -> Result<Vec<(Table, RecordBatch)>> {
    let rows: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let mut timestamp = timestamp_builder(rows);
    let mut trace_id = StringBuilder::with_capacity(rows, rows * 32);
    let mut span_id = StringBuilder::with_capacity(rows, rows * 16);
    let mut parent_span_id = StringBuilder::with_capacity(rows, rows * 16);
    let mut trace_state = StringBuilder::with_capacity(rows, 0);
    let mut name = StringBuilder::with_capacity(rows, rows * 16);
    let mut kind = StringBuilder::with_capacity(rows, rows * 6);
    let mut flags = Int64Builder::with_capacity(rows);
    let mut duration_ns = Int64Builder::with_capacity(rows);
    let mut status_code = StringBuilder::with_capacity(rows, rows * 5);
    let mut status_message = StringBuilder::with_capacity(rows, 0);
    let mut attributes = AttributesBuilder::with_capacity(rows);
    let mut dropped_attributes = Int64Builder::with_capacity(rows);
    let mut events = ListOffsets::with_capacity(rows);
    let mut event_time = timestamp_builder(rows);
    let mut event_name = StringBuilder::new();
    let mut event_attributes = AttributesBuilder::with_capacity(rows);
    let mut event_dropped = Int64Builder::new();
    let mut dropped_events = Int64Builder::with_capacity(rows);
    let mut links = ListOffsets::with_capacity(rows);
    let mut link_trace_id = StringBuilder::new();
    let mut link_span_id = StringBuilder::new();
    let mut link_trace_state = StringBuilder::new();
    let mut link_attributes = AttributesBuilder::with_capacity(0);
    let mut link_dropped = Int64Builder::new();
    let mut link_flags = Int64Builder::new();
    let mut dropped_links = Int64Builder::with_capacity(rows);
    let mut common = ResourceScopeColumns::with_capacity(rows);
    let (mut event_count, mut link_count) = (0usize, 0usize);
    let mut buf = [0u8; 32];

    // Consumed scope by scope, as in `logs::convert`, to keep peak memory down.
    for (ri, resource_spans) in request.resource_spans.into_iter().enumerate() {
        let ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        } = resource_spans;
        let resource = ResourceContext::new(resource.as_ref(), &schema_url);
        for (si, scope_spans) in scope_spans.into_iter().enumerate() {
            let scope = ScopeContext::new(scope_spans.scope.as_ref(), &scope_spans.schema_url);
            for (pi, span) in scope_spans.spans.iter().enumerate() {
                let (kind_str, status_str) = match validate(span) {
                    Ok(v) => v,
                    Err(reason) => {
                        rejections.reject(|| {
                            format!("resource_spans[{ri}].scope_spans[{si}].spans[{pi}]: {reason}")
                        });
                        continue;
                    }
                };
                timestamp.append_option(micros(span.start_time_unix_nano));
                trace_id.append_value(hex(&span.trace_id, &mut buf));
                span_id.append_value(hex(&span.span_id, &mut buf));
                parent_span_id.append_value(hex(&span.parent_span_id, &mut buf));
                trace_state.append_value(&span.trace_state);
                name.append_value(&span.name);
                kind.append_value(kind_str);
                flags.append_value(span.flags.into());
                duration_ns.append_value(duration(span));
                status_code.append_value(status_str);
                status_message.append_value(span.status.as_ref().map_or("", |s| &s.message));
                attributes.append(&span.attributes);
                dropped_attributes.append_value(span.dropped_attributes_count.into());
                for event in &span.events {
                    event_time.append_option(micros(event.time_unix_nano));
                    event_name.append_value(&event.name);
                    event_attributes.append(&event.attributes);
                    event_dropped.append_value(event.dropped_attributes_count.into());
                }
                event_count += span.events.len();
                events.push(event_count);
                dropped_events.append_value(span.dropped_events_count.into());
                for link in &span.links {
                    link_trace_id.append_value(hex(&link.trace_id, &mut buf));
                    link_span_id.append_value(hex(&link.span_id, &mut buf));
                    link_trace_state.append_value(&link.trace_state);
                    link_attributes.append(&link.attributes);
                    link_dropped.append_value(link.dropped_attributes_count.into());
                    link_flags.append_value(link.flags.into());
                }
                link_count += span.links.len();
                links.push(link_count);
                dropped_links.append_value(span.dropped_links_count.into());
                common.append(&resource, &scope);
            }
        }
    }

    let table = Table::Traces;
    let events_type = column_type(table, "Events")?;
    let links_type = column_type(table, "Links")?;
    let attributes_type = column_type(table, "SpanAttributes")?;
    let mut nested = || -> Result<(ArrayRef, ArrayRef, ArrayRef), ArrowError> {
        let event_fields = super::builders::struct_fields(
            super::builders::list_element(events_type)?.data_type(),
        )?;
        let link_fields =
            super::builders::struct_fields(super::builders::list_element(links_type)?.data_type())?;
        let span_attributes = attributes.finish(attributes_type)?;
        let events_array = struct_list(
            events_type,
            &mut events.0,
            vec![
                Arc::new(event_time.finish()),
                Arc::new(event_name.finish()),
                event_attributes.finish(event_fields[2].data_type())?,
                Arc::new(event_dropped.finish()),
            ],
        )?;
        let links_array = struct_list(
            links_type,
            &mut links.0,
            vec![
                Arc::new(link_trace_id.finish()),
                Arc::new(link_span_id.finish()),
                Arc::new(link_trace_state.finish()),
                link_attributes.finish(link_fields[3].data_type())?,
                Arc::new(link_dropped.finish()),
                Arc::new(link_flags.finish()),
            ],
        )?;
        Ok((span_attributes, events_array, links_array))
    };
    let (span_attributes, events_array, links_array) = nested().map_err(|source| Error::Arrow {
        table: table.name(),
        source,
    })?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(timestamp.finish()),
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent_span_id.finish()),
        Arc::new(trace_state.finish()),
        Arc::new(name.finish()),
        Arc::new(kind.finish()),
        Arc::new(flags.finish()),
        Arc::new(duration_ns.finish()),
        Arc::new(status_code.finish()),
        Arc::new(status_message.finish()),
        span_attributes,
        Arc::new(dropped_attributes.finish()),
        events_array,
        Arc::new(dropped_events.finish()),
        links_array,
        Arc::new(dropped_links.finish()),
    ];
    Ok(vec![assemble(table, columns, &mut common)?])
}
