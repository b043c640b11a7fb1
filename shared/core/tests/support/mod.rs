//! Test support: an independent oracle of what each OTLP record must become, and a
//! generic reader that turns Arrow data (as read back from Parquet) into JSON rows.
//!
//! The oracle is written from the OTLP data model and the README's column table,
//! not from the converter's code, so that a round trip compares two independent
//! descriptions of the same record.
#![allow(dead_code)]

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, exemplar, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use otlp2parquet_core::Table;
use otlp2parquet_core::otlp::ExportRequest;
use otlp2parquet_core::parquet::ParquetWriterBuilder;
use otlp2parquet_core::schema::TableDefinition;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value, json};

pub type Row = Map<String, Value>;

/// Writes `batch` as a Parquet file in memory and reads it back with the `parquet` crate.
pub fn parquet_round_trip(table: Table, batch: &RecordBatch) -> (Bytes, Vec<RecordBatch>) {
    let schema = TableDefinition::get(table).arrow_schema.clone();
    let bytes = Bytes::from(
        ParquetWriterBuilder::new()
            .write(schema, std::slice::from_ref(batch), Vec::new())
            .unwrap(),
    );
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
        .unwrap()
        .build()
        .unwrap();
    let batches = reader.collect::<Result<Vec<_>, _>>().unwrap();
    (bytes, batches)
}

fn double(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        json!(v.to_string())
    }
}

/// One Arrow value as JSON.
pub fn arrow_value(array: &dyn Array, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => json!(array.as_string::<i32>().value(i)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => double(array.as_primitive::<Float64Type>().value(i)),
        DataType::Boolean => json!(array.as_boolean().value(i)),
        DataType::Timestamp(_, tz) => {
            assert_eq!(tz.as_deref(), Some("+00:00"), "timestamps are UTC");
            json!(array.as_primitive::<TimestampMicrosecondType>().value(i))
        }
        DataType::Map(..) => {
            let entries = array.as_map().value(i);
            let keys = entries.column(0).as_string::<i32>();
            let values = entries.column(1).as_string::<i32>();
            let mut m = Map::new();
            for j in 0..entries.len() {
                assert!(
                    m.insert(keys.value(j).to_string(), json!(values.value(j)))
                        .is_none(),
                    "duplicate map key"
                );
            }
            Value::Object(m)
        }
        DataType::List(_) => {
            let items = array.as_list::<i32>().value(i);
            Value::Array((0..items.len()).map(|j| arrow_value(&items, j)).collect())
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), arrow_value(c, i)))
                    .collect(),
            )
        }
        other => panic!("unexpected type {other}"),
    }
}

/// All rows of `batches` as JSON objects keyed by column name.
pub fn arrow_rows(batches: &[RecordBatch]) -> Vec<Row> {
    let mut rows = Vec::new();
    for batch in batches {
        for i in 0..batch.num_rows() {
            rows.push(
                batch
                    .schema()
                    .fields()
                    .iter()
                    .zip(batch.columns())
                    .map(|(f, c)| (f.name().clone(), arrow_value(c, i)))
                    .collect(),
            );
        }
    }
    rows
}

// ---------------------------------------------------------------------------
// The oracle.

/// An AnyValue as plain JSON (what a non-string attribute is rendered as).
fn any_json(v: Option<&AnyValue>) -> Value {
    use any_value::Value as V;
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(V::StringValueStrindex(_)) => Value::Null,
        Some(V::StringValue(s)) => json!(s),
        Some(V::BoolValue(b)) => json!(b),
        Some(V::IntValue(i)) => json!(i),
        Some(V::DoubleValue(d)) => double(*d),
        Some(V::BytesValue(b)) => {
            use base64::Engine;
            json!(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(V::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| any_json(Some(v))).collect())
        }
        Some(V::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .map(|kv| (kv.key.clone(), any_json(kv.value.as_ref())))
                .collect(),
        ),
    }
}

/// What a string column holding an AnyValue must contain.
pub fn rendered(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(_) => serde_json::to_string(&any_json(v)).unwrap(),
    }
}

fn attrs(kvs: &[KeyValue]) -> Value {
    // Later duplicates win, as when a map is built from the list.
    let mut m = Map::new();
    for kv in kvs {
        m.insert(kv.key.clone(), json!(rendered(kv.value.as_ref())));
    }
    Value::Object(m)
}

fn ts(nanos: u64) -> Value {
    if nanos == 0 {
        Value::Null
    } else {
        json!((nanos / 1000) as i64)
    }
}

fn hex(id: &[u8]) -> Value {
    json!(hex::encode(id))
}

fn common(
    row: &mut Row,
    resource: Option<&Resource>,
    resource_url: &str,
    scope: Option<&InstrumentationScope>,
    scope_url: &str,
) {
    let resource_attrs = resource.map(|r| attrs(&r.attributes)).unwrap_or(json!({}));
    let service = resource_attrs
        .get("service.name")
        .cloned()
        .unwrap_or(json!(""));
    row.insert("ServiceName".into(), service);
    row.insert("ResourceAttributes".into(), resource_attrs);
    row.insert(
        "ResourceDroppedAttributesCount".into(),
        json!(resource.map_or(0, |r| r.dropped_attributes_count)),
    );
    row.insert("ResourceSchemaUrl".into(), json!(resource_url));
    row.insert("ScopeName".into(), json!(scope.map_or("", |s| &s.name)));
    row.insert(
        "ScopeVersion".into(),
        json!(scope.map_or("", |s| &s.version)),
    );
    row.insert(
        "ScopeAttributes".into(),
        scope.map(|s| attrs(&s.attributes)).unwrap_or(json!({})),
    );
    row.insert(
        "ScopeDroppedAttributesCount".into(),
        json!(scope.map_or(0, |s| s.dropped_attributes_count)),
    );
    row.insert("ScopeSchemaUrl".into(), json!(scope_url));
}

fn exemplars(list: &[Exemplar]) -> Value {
    Value::Array(
        list.iter()
            .map(|e| {
                let (v, i) = match e.value {
                    Some(exemplar::Value::AsDouble(d)) => (double(d), Value::Null),
                    Some(exemplar::Value::AsInt(i)) => (json!(i as f64), json!(i)),
                    None => (Value::Null, Value::Null),
                };
                json!({"FilteredAttributes": attrs(&e.filtered_attributes), "TimeUnix": ts(e.time_unix_nano),
                       "Value": v, "IntValue": i, "SpanId": hex(&e.span_id), "TraceId": hex(&e.trace_id)})
            })
            .collect(),
    )
}

fn obj(v: Value) -> Row {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// The rows every table must hold for `request`, assuming no record is invalid.
pub fn expected_rows(request: &ExportRequest) -> BTreeMap<Table, Vec<Row>> {
    let mut out: BTreeMap<Table, Vec<Row>> = BTreeMap::new();
    match request {
        ExportRequest::Logs(r) => {
            for rl in &r.resource_logs {
                for sl in &rl.scope_logs {
                    for l in &sl.log_records {
                        let mut row = obj(json!({
                            "Timestamp": ts(l.time_unix_nano), "ObservedTimestamp": ts(l.observed_time_unix_nano),
                            "TraceId": hex(&l.trace_id), "SpanId": hex(&l.span_id), "TraceFlags": l.flags,
                            "SeverityText": l.severity_text, "SeverityNumber": l.severity_number,
                            "Body": rendered(l.body.as_ref()), "EventName": l.event_name,
                            "LogAttributes": attrs(&l.attributes), "LogDroppedAttributesCount": l.dropped_attributes_count,
                        }));
                        common(
                            &mut row,
                            rl.resource.as_ref(),
                            &rl.schema_url,
                            sl.scope.as_ref(),
                            &sl.schema_url,
                        );
                        out.entry(Table::Logs).or_default().push(row);
                    }
                }
            }
        }
        ExportRequest::Traces(r) => {
            for rs in &r.resource_spans {
                for ss in &rs.scope_spans {
                    for s in &ss.spans {
                        let kind = [
                            "Unspecified",
                            "Internal",
                            "Server",
                            "Client",
                            "Producer",
                            "Consumer",
                        ][s.kind as usize];
                        let code = s.status.as_ref().map_or(0, |st| st.code);
                        let status = ["Unset", "Ok", "Error"][code as usize];
                        let mut row = obj(json!({
                            "Timestamp": ts(s.start_time_unix_nano), "TraceId": hex(&s.trace_id), "SpanId": hex(&s.span_id),
                            "ParentSpanId": hex(&s.parent_span_id), "TraceState": s.trace_state, "SpanName": s.name,
                            "SpanKind": kind, "SpanFlags": s.flags,
                            "Duration": s.end_time_unix_nano as i64 - s.start_time_unix_nano as i64,
                            "StatusCode": status,
                            "StatusMessage": s.status.as_ref().map_or("", |st| &st.message),
                            "SpanAttributes": attrs(&s.attributes), "SpanDroppedAttributesCount": s.dropped_attributes_count,
                            "Events": s.events.iter().map(|e| json!({"Timestamp": ts(e.time_unix_nano), "Name": e.name,
                                "Attributes": attrs(&e.attributes), "DroppedAttributesCount": e.dropped_attributes_count})).collect::<Vec<_>>(),
                            "EventsDroppedCount": s.dropped_events_count,
                            "Links": s.links.iter().map(|l| json!({"TraceId": hex(&l.trace_id), "SpanId": hex(&l.span_id),
                                "TraceState": l.trace_state, "Attributes": attrs(&l.attributes),
                                "DroppedAttributesCount": l.dropped_attributes_count, "Flags": l.flags})).collect::<Vec<_>>(),
                            "LinksDroppedCount": s.dropped_links_count,
                        }));
                        common(
                            &mut row,
                            rs.resource.as_ref(),
                            &rs.schema_url,
                            ss.scope.as_ref(),
                            &ss.schema_url,
                        );
                        out.entry(Table::Traces).or_default().push(row);
                    }
                }
            }
        }
        ExportRequest::Metrics(r) => {
            for rm in &r.resource_metrics {
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        let head = |attributes: &[KeyValue], start: u64, time: u64, flags: u32| {
                            obj(
                                json!({"MetricName": m.name, "MetricDescription": m.description, "MetricUnit": m.unit,
                                "MetricMetadata": attrs(&m.metadata), "Attributes": attrs(attributes),
                                "StartTimeUnix": ts(start), "TimeUnix": ts(time), "Flags": flags}),
                            )
                        };
                        let mut rows: Vec<(Table, Row)> = Vec::new();
                        let number =
                            |p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| match p
                                .value
                            {
                                Some(number_data_point::Value::AsDouble(d)) => {
                                    (double(d), Value::Null)
                                }
                                Some(number_data_point::Value::AsInt(i)) => {
                                    (json!(i as f64), json!(i))
                                }
                                None => (Value::Null, Value::Null),
                            };
                        match &m.data {
                            Some(Data::Gauge(g)) => {
                                for p in &g.data_points {
                                    let mut row = head(
                                        &p.attributes,
                                        p.start_time_unix_nano,
                                        p.time_unix_nano,
                                        p.flags,
                                    );
                                    let (v, i) = number(p);
                                    row.insert("Value".into(), v);
                                    row.insert("IntValue".into(), i);
                                    row.insert("Exemplars".into(), exemplars(&p.exemplars));
                                    rows.push((Table::MetricsGauge, row));
                                }
                            }
                            Some(Data::Sum(s)) => {
                                for p in &s.data_points {
                                    let mut row = head(
                                        &p.attributes,
                                        p.start_time_unix_nano,
                                        p.time_unix_nano,
                                        p.flags,
                                    );
                                    let (v, i) = number(p);
                                    row.insert("Value".into(), v);
                                    row.insert("IntValue".into(), i);
                                    row.insert(
                                        "AggregationTemporality".into(),
                                        json!(s.aggregation_temporality),
                                    );
                                    row.insert("IsMonotonic".into(), json!(s.is_monotonic));
                                    row.insert("Exemplars".into(), exemplars(&p.exemplars));
                                    rows.push((Table::MetricsSum, row));
                                }
                            }
                            Some(Data::Histogram(h)) => {
                                for p in &h.data_points {
                                    let mut row = head(
                                        &p.attributes,
                                        p.start_time_unix_nano,
                                        p.time_unix_nano,
                                        p.flags,
                                    );
                                    row.extend(obj(json!({"Count": p.count, "Sum": p.sum.map(double), "BucketCounts": p.bucket_counts,
                                    "ExplicitBounds": p.explicit_bounds.iter().map(|b| double(*b)).collect::<Vec<_>>(),
                                    "Min": p.min.map(double), "Max": p.max.map(double),
                                    "AggregationTemporality": h.aggregation_temporality, "Exemplars": exemplars(&p.exemplars)})));
                                    rows.push((Table::MetricsHistogram, row));
                                }
                            }
                            Some(Data::ExponentialHistogram(h)) => {
                                for p in &h.data_points {
                                    let mut row = head(
                                        &p.attributes,
                                        p.start_time_unix_nano,
                                        p.time_unix_nano,
                                        p.flags,
                                    );
                                    let pos = p.positive.clone().unwrap_or_default();
                                    let neg = p.negative.clone().unwrap_or_default();
                                    row.extend(obj(json!({"Count": p.count, "Sum": p.sum.map(double), "Scale": p.scale,
                                    "ZeroCount": p.zero_count, "ZeroThreshold": double(p.zero_threshold),
                                    "PositiveOffset": pos.offset, "PositiveBucketCounts": pos.bucket_counts,
                                    "NegativeOffset": neg.offset, "NegativeBucketCounts": neg.bucket_counts,
                                    "Min": p.min.map(double), "Max": p.max.map(double),
                                    "AggregationTemporality": h.aggregation_temporality, "Exemplars": exemplars(&p.exemplars)})));
                                    rows.push((Table::MetricsExponentialHistogram, row));
                                }
                            }
                            Some(Data::Summary(s)) => {
                                for p in &s.data_points {
                                    let mut row = head(
                                        &p.attributes,
                                        p.start_time_unix_nano,
                                        p.time_unix_nano,
                                        p.flags,
                                    );
                                    row.extend(obj(json!({"Count": p.count, "Sum": double(p.sum),
                                    "ValueAtQuantiles": p.quantile_values.iter().map(|q| json!({"Quantile": double(q.quantile), "Value": double(q.value)})).collect::<Vec<_>>()})));
                                    rows.push((Table::MetricsSummary, row));
                                }
                            }
                            None => {}
                        }
                        for (table, mut row) in rows {
                            common(
                                &mut row,
                                rm.resource.as_ref(),
                                &rm.schema_url,
                                sm.scope.as_ref(),
                                &sm.schema_url,
                            );
                            out.entry(table).or_default().push(row);
                        }
                    }
                }
            }
        }
    }
    out
}
