//! The seven tables, defined once: columns, Iceberg field ids, partition specs, sort orders.
//!
//! The columns below are the source of truth. [`arrow_schema`] is the Arrow
//! schema the converter builds batches in, with each field's id in the
//! `PARQUET:field_id` metadata, so every Parquet file written from these batches
//! maps onto the Iceberg table by id rather than by name. With the `iceberg`
//! feature, [`TableDefinition`] adds the Iceberg schema, partition spec and sort
//! order a catalog needs; the ingest path does without (and without the `iceberg`
//! crate), and a test checks that `iceberg::arrow::schema_to_arrow_schema` of the
//! Iceberg schema is exactly [`arrow_schema`].
//!
//! Column names follow the OpenTelemetry Collector's ClickHouse exporter so that
//! queries written for that schema carry over.
//!
//! Field ids are the ones an Iceberg catalog assigns when it creates the table: a
//! catalog re-numbers the fields of a new table whatever ids the request carried
//! (Iceberg's "fresh ids": the fields of a struct get consecutive ids, then the
//! fields nested in each of them, in order). [`IdAllocator`] hands them out in that
//! order, and a test checks them against the assignment itself
//! (`TableMetadataBuilder::new`), so the ids in every Parquet file we write equal
//! those of the tables we create. Columns are only ever appended; an existing
//! table keeps the ids it was created with.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{
    DataType, Field, Fields, Schema as ArrowSchema, SchemaRef as ArrowSchemaRef, TimeUnit,
};

use crate::Table;

/// The type of a column, as far as this project uses Iceberg's types.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnType {
    /// UTF-8 `string`.
    String,
    /// 32-bit signed `int` (OTLP enums, signed 32-bit fields).
    Int,
    /// 64-bit signed `long` (also every unsigned OTLP integer).
    Long,
    /// `double`.
    Double,
    /// `boolean`.
    Boolean,
    /// `timestamptz`: microseconds since the epoch, UTC.
    Timestamptz,
    /// `map<string, string>`: OTLP attributes, non-string values rendered as JSON.
    Attributes,
    /// `list<T>` with required elements.
    List(Box<ColumnType>),
    /// `struct<...>`.
    Struct(Vec<Column>),
}

/// One column (or nested field) of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name, PascalCase as in the ClickHouse exporter.
    pub name: &'static str,
    /// Column type.
    pub ty: ColumnType,
    /// Whether the column is `required` (never null) rather than `optional`.
    pub required: bool,
    /// The OTLP field the column is filled from.
    pub source: &'static str,
}

fn req(name: &'static str, ty: ColumnType, source: &'static str) -> Column {
    Column {
        name,
        ty,
        required: true,
        source,
    }
}

fn opt(name: &'static str, ty: ColumnType, source: &'static str) -> Column {
    Column {
        name,
        ty,
        required: false,
        source,
    }
}

use ColumnType::{Attributes, Boolean, Double, Int, Long, Timestamptz};
const STRING: ColumnType = ColumnType::String;

fn list(element: ColumnType) -> ColumnType {
    ColumnType::List(Box::new(element))
}

/// Columns every table shares: who sent the data (resource) and which library made it (scope).
fn resource_and_scope_columns() -> Vec<Column> {
    vec![
        req(
            "ServiceName",
            STRING,
            "Resource.attributes[\"service.name\"] (\"\" when absent)",
        ),
        req("ResourceAttributes", Attributes, "Resource.attributes"),
        req(
            "ResourceDroppedAttributesCount",
            Long,
            "Resource.dropped_attributes_count",
        ),
        req(
            "ResourceSchemaUrl",
            STRING,
            "Resource{Logs,Spans,Metrics}.schema_url",
        ),
        req("ScopeName", STRING, "InstrumentationScope.name"),
        req("ScopeVersion", STRING, "InstrumentationScope.version"),
        req(
            "ScopeAttributes",
            Attributes,
            "InstrumentationScope.attributes",
        ),
        req(
            "ScopeDroppedAttributesCount",
            Long,
            "InstrumentationScope.dropped_attributes_count",
        ),
        req(
            "ScopeSchemaUrl",
            STRING,
            "Scope{Logs,Spans,Metrics}.schema_url",
        ),
    ]
}

fn exemplars_column() -> Column {
    req(
        "Exemplars",
        list(ColumnType::Struct(vec![
            req(
                "FilteredAttributes",
                Attributes,
                "Exemplar.filtered_attributes",
            ),
            opt("TimeUnix", Timestamptz, "Exemplar.time_unix_nano"),
            opt("Value", Double, "Exemplar.as_double, or as_int as double"),
            opt("IntValue", Long, "Exemplar.as_int (null for as_double)"),
            req("SpanId", STRING, "Exemplar.span_id, lowercase hex"),
            req("TraceId", STRING, "Exemplar.trace_id, lowercase hex"),
        ])),
        "*DataPoint.exemplars",
    )
}

/// The columns every metrics table starts with.
fn metric_columns() -> Vec<Column> {
    vec![
        req("MetricName", STRING, "Metric.name"),
        req("MetricDescription", STRING, "Metric.description"),
        req("MetricUnit", STRING, "Metric.unit"),
        req("MetricMetadata", Attributes, "Metric.metadata"),
        req("Attributes", Attributes, "*DataPoint.attributes"),
        opt(
            "StartTimeUnix",
            Timestamptz,
            "*DataPoint.start_time_unix_nano",
        ),
        opt("TimeUnix", Timestamptz, "*DataPoint.time_unix_nano"),
        req("Flags", Long, "*DataPoint.flags"),
    ]
}

fn temporality_column() -> Column {
    req(
        "AggregationTemporality",
        Int,
        "aggregation_temporality (0 unspecified, 1 delta, 2 cumulative)",
    )
}

/// The columns of `table`, in order.
pub fn columns(table: Table) -> Vec<Column> {
    let mut cols = match table {
        Table::Logs => vec![
            opt("Timestamp", Timestamptz, "LogRecord.time_unix_nano"),
            opt(
                "ObservedTimestamp",
                Timestamptz,
                "LogRecord.observed_time_unix_nano",
            ),
            req("TraceId", STRING, "LogRecord.trace_id, lowercase hex"),
            req("SpanId", STRING, "LogRecord.span_id, lowercase hex"),
            req("TraceFlags", Long, "LogRecord.flags"),
            req("SeverityText", STRING, "LogRecord.severity_text"),
            req("SeverityNumber", Int, "LogRecord.severity_number"),
            req(
                "Body",
                STRING,
                "LogRecord.body: a string as is, any other value as JSON",
            ),
            req("EventName", STRING, "LogRecord.event_name"),
            req("LogAttributes", Attributes, "LogRecord.attributes"),
            req(
                "LogDroppedAttributesCount",
                Long,
                "LogRecord.dropped_attributes_count",
            ),
        ],
        Table::Traces => vec![
            opt("Timestamp", Timestamptz, "Span.start_time_unix_nano"),
            req("TraceId", STRING, "Span.trace_id, lowercase hex"),
            req("SpanId", STRING, "Span.span_id, lowercase hex"),
            req("ParentSpanId", STRING, "Span.parent_span_id, lowercase hex"),
            req("TraceState", STRING, "Span.trace_state"),
            req("SpanName", STRING, "Span.name"),
            req(
                "SpanKind",
                STRING,
                "Span.kind: Unspecified, Internal, Server, Client, Producer, Consumer",
            ),
            req("SpanFlags", Long, "Span.flags"),
            req(
                "Duration",
                Long,
                "Span.end_time_unix_nano - start_time_unix_nano, nanoseconds",
            ),
            req("StatusCode", STRING, "Span.status.code: Unset, Ok, Error"),
            req("StatusMessage", STRING, "Span.status.message"),
            req("SpanAttributes", Attributes, "Span.attributes"),
            req(
                "SpanDroppedAttributesCount",
                Long,
                "Span.dropped_attributes_count",
            ),
            req(
                "Events",
                list(ColumnType::Struct(vec![
                    opt("Timestamp", Timestamptz, "Event.time_unix_nano"),
                    req("Name", STRING, "Event.name"),
                    req("Attributes", Attributes, "Event.attributes"),
                    req(
                        "DroppedAttributesCount",
                        Long,
                        "Event.dropped_attributes_count",
                    ),
                ])),
                "Span.events",
            ),
            req("EventsDroppedCount", Long, "Span.dropped_events_count"),
            req(
                "Links",
                list(ColumnType::Struct(vec![
                    req("TraceId", STRING, "Link.trace_id, lowercase hex"),
                    req("SpanId", STRING, "Link.span_id, lowercase hex"),
                    req("TraceState", STRING, "Link.trace_state"),
                    req("Attributes", Attributes, "Link.attributes"),
                    req(
                        "DroppedAttributesCount",
                        Long,
                        "Link.dropped_attributes_count",
                    ),
                    req("Flags", Long, "Link.flags"),
                ])),
                "Span.links",
            ),
            req("LinksDroppedCount", Long, "Span.dropped_links_count"),
        ],
        Table::MetricsGauge | Table::MetricsSum => {
            let mut c = metric_columns();
            c.push(opt(
                "Value",
                Double,
                "NumberDataPoint.as_double, or as_int as double",
            ));
            c.push(opt(
                "IntValue",
                Long,
                "NumberDataPoint.as_int (null for as_double)",
            ));
            if table == Table::MetricsSum {
                c.push(temporality_column());
                c.push(req("IsMonotonic", Boolean, "Sum.is_monotonic"));
            }
            c.push(exemplars_column());
            c
        }
        Table::MetricsHistogram => {
            let mut c = metric_columns();
            c.extend([
                req("Count", Long, "HistogramDataPoint.count"),
                opt("Sum", Double, "HistogramDataPoint.sum"),
                req(
                    "BucketCounts",
                    list(Long),
                    "HistogramDataPoint.bucket_counts",
                ),
                req(
                    "ExplicitBounds",
                    list(Double),
                    "HistogramDataPoint.explicit_bounds",
                ),
                opt("Min", Double, "HistogramDataPoint.min"),
                opt("Max", Double, "HistogramDataPoint.max"),
                temporality_column(),
                exemplars_column(),
            ]);
            c
        }
        Table::MetricsExponentialHistogram => {
            let mut c = metric_columns();
            c.extend([
                req("Count", Long, "ExponentialHistogramDataPoint.count"),
                opt("Sum", Double, "ExponentialHistogramDataPoint.sum"),
                req("Scale", Int, "ExponentialHistogramDataPoint.scale"),
                req(
                    "ZeroCount",
                    Long,
                    "ExponentialHistogramDataPoint.zero_count",
                ),
                req(
                    "ZeroThreshold",
                    Double,
                    "ExponentialHistogramDataPoint.zero_threshold",
                ),
                req("PositiveOffset", Int, "positive.offset"),
                req("PositiveBucketCounts", list(Long), "positive.bucket_counts"),
                req("NegativeOffset", Int, "negative.offset"),
                req("NegativeBucketCounts", list(Long), "negative.bucket_counts"),
                opt("Min", Double, "ExponentialHistogramDataPoint.min"),
                opt("Max", Double, "ExponentialHistogramDataPoint.max"),
                temporality_column(),
                exemplars_column(),
            ]);
            c
        }
        Table::MetricsSummary => {
            let mut c = metric_columns();
            c.extend([
                req("Count", Long, "SummaryDataPoint.count"),
                req("Sum", Double, "SummaryDataPoint.sum"),
                req(
                    "ValueAtQuantiles",
                    list(ColumnType::Struct(vec![
                        req("Quantile", Double, "ValueAtQuantile.quantile"),
                        req("Value", Double, "ValueAtQuantile.value"),
                    ])),
                    "SummaryDataPoint.quantile_values",
                ),
            ]);
            c
        }
    };
    cols.extend(resource_and_scope_columns());
    cols
}

/// The time column a table is partitioned (by day) and sorted on.
pub fn time_column(table: Table) -> &'static str {
    match table {
        Table::Logs | Table::Traces => "Timestamp",
        _ => "TimeUnix",
    }
}

/// The columns of the table's sort order, most significant first.
pub fn sort_columns(table: Table) -> Vec<&'static str> {
    match table {
        Table::Logs | Table::Traces => vec!["ServiceName", time_column(table)],
        _ => vec!["MetricName", "ServiceName", time_column(table)],
    }
}

/// The metadata key Parquet readers (and Iceberg) take a field's id from.
const FIELD_ID_KEY: &str = "PARQUET:field_id";

fn with_id(field: Field, id: i32) -> Field {
    field.with_metadata(HashMap::from([(FIELD_ID_KEY.to_string(), id.to_string())]))
}

fn arrow_type(ty: &ColumnType, ids: &mut IdAllocator) -> DataType {
    match ty {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int => DataType::Int32,
        ColumnType::Long => DataType::Int64,
        ColumnType::Double => DataType::Float64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Timestamptz => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
        }
        ColumnType::Attributes => {
            let key = with_id(Field::new("key", DataType::Utf8, false), ids.take());
            let value = with_id(Field::new("value", DataType::Utf8, false), ids.take());
            let entries = Field::new(
                "key_value",
                DataType::Struct(Fields::from(vec![key, value])),
                false,
            );
            DataType::Map(Arc::new(entries), false)
        }
        ColumnType::List(element) => {
            let id = ids.take();
            let element_type = arrow_type(element, ids);
            DataType::List(Arc::new(with_id(
                Field::new("element", element_type, false),
                id,
            )))
        }
        ColumnType::Struct(fields) => {
            let field_ids: Vec<i32> = fields.iter().map(|_| ids.take()).collect();
            let nested: Vec<Field> = fields
                .iter()
                .zip(field_ids)
                .map(|(field, id)| arrow_field(id, field, ids))
                .collect();
            DataType::Struct(Fields::from(nested))
        }
    }
}

/// A column as an Arrow field: its id, and its source as the `doc` metadata
/// (as Iceberg writes a field's doc into Arrow schemas).
fn arrow_field(id: i32, column: &Column, ids: &mut IdAllocator) -> Field {
    let ty = arrow_type(&column.ty, ids);
    Field::new(column.name, ty, !column.required).with_metadata(HashMap::from([
        (FIELD_ID_KEY.to_string(), id.to_string()),
        ("doc".to_string(), column.source.to_string()),
    ]))
}

fn build_arrow_schema(table: Table) -> ArrowSchemaRef {
    let mut ids = IdAllocator { next: 1 };
    let columns = columns(table);
    let top_level: Vec<i32> = columns.iter().map(|_| ids.take()).collect();
    let fields: Vec<Field> = columns
        .iter()
        .zip(top_level)
        .map(|(column, id)| arrow_field(id, column, &mut ids))
        .collect();
    Arc::new(ArrowSchema::new(fields))
}

/// The Arrow schema of `table`'s batches, with field ids, built once per process.
pub fn arrow_schema(table: Table) -> &'static ArrowSchemaRef {
    static SCHEMAS: OnceLock<Vec<ArrowSchemaRef>> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| Table::ALL.iter().map(|&t| build_arrow_schema(t)).collect());
    &all[Table::ALL.iter().position(|t| *t == table).unwrap_or(0)]
}

/// Hands out provisional field ids; the catalog's assignment replaces them (see
/// the module docs), they only need to be unique.
struct IdAllocator {
    next: i32,
}

impl IdAllocator {
    fn take(&mut self) -> i32 {
        let id = self.next;
        self.next += 1;
        id
    }
}

#[cfg(feature = "iceberg")]
mod iceberg_schema;
#[cfg(feature = "iceberg")]
pub use iceberg_schema::{TableDefinition, markdown};

#[cfg(all(test, feature = "iceberg"))]
mod tests {
    use super::*;

    #[test]
    fn every_table_definition_builds() {
        for table in Table::ALL {
            let def = TableDefinition::build(table).unwrap();
            assert_eq!(def.arrow_schema.fields().len(), columns(table).len());
            assert!(!def.partition_spec.is_unpartitioned());
            assert!(!def.sort_order.is_unsorted());
        }
    }

    #[test]
    fn field_ids_are_the_ones_a_catalog_assigns() {
        let def = TableDefinition::get(Table::Traces);
        let n = def.schema.as_struct().fields().len() as i32;
        // Top-level columns first, in order ...
        assert_eq!(def.schema.field_by_name("Timestamp").unwrap().id, 1);
        assert_eq!(def.schema.field_by_name("ScopeSchemaUrl").unwrap().id, n);
        // ... then nested fields: SpanAttributes' key and value come right after.
        assert_eq!(def.schema.field_by_id(n + 1).unwrap().name, "key");
        assert_eq!(def.schema.field_by_id(n + 2).unwrap().name, "value");
        let max = def.schema.highest_field_id();
        let all: std::collections::BTreeSet<i32> = (1..=max)
            .filter(|id| def.schema.field_by_id(*id).is_some())
            .collect();
        assert_eq!(all.len() as i32, max, "ids are dense");
    }

    #[test]
    fn readme_documents_the_current_schema() {
        let readme = include_str!("../../../README.md");
        assert!(
            readme.contains(&markdown()),
            "README.md's schema section is stale: replace it with `otlp2parquet schema --markdown`"
        );
    }

    #[test]
    fn no_fixed_or_uuid_types() {
        for table in Table::ALL {
            let text = format!("{:?}", TableDefinition::get(table).schema);
            assert!(!text.contains("Fixed") && !text.contains("Uuid"), "{table}");
        }
    }

    #[test]
    fn the_arrow_schema_is_what_iceberg_makes_of_the_iceberg_schema() {
        for table in Table::ALL {
            let def = TableDefinition::get(table);
            let from_iceberg = iceberg::arrow::schema_to_arrow_schema(&def.schema).unwrap();
            assert_eq!(arrow_schema(table).as_ref(), &from_iceberg, "{table}");
        }
    }

    #[test]
    fn field_ids_are_given_in_the_order_a_catalog_gives_them() {
        // The provisional schema (our ids) is what the catalog's re-numbering
        // leaves unchanged.
        for table in Table::ALL {
            let def = TableDefinition::get(table);
            let ours = TableDefinition::provisional_schema(table).unwrap();
            assert_eq!(ours.as_struct(), def.schema.as_struct(), "{table}");
        }
    }
}
