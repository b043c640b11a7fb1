//! The seven tables, defined once: columns, Iceberg field ids, partition specs, sort orders.
//!
//! The Iceberg schema is the source of truth. The Arrow schema the converter builds
//! against is derived from it with `iceberg::arrow::schema_to_arrow_schema`, which
//! puts each field's id into the `PARQUET:field_id` metadata, so every Parquet file
//! written from these batches maps onto the Iceberg table by id rather than by name.
//!
//! Column names follow the OpenTelemetry Collector's ClickHouse exporter so that
//! queries written for that schema carry over.
//!
//! Field ids are the ones an Iceberg catalog assigns when it creates the table: a
//! catalog re-numbers the fields of a new table whatever ids the request carried
//! (Iceberg's "fresh ids": the fields of a struct get consecutive ids, then the
//! fields nested in each of them, in order). Deriving our ids through the same
//! assignment (`TableMetadataBuilder::new`) makes the ids in every Parquet file we
//! write equal to those of the tables we create, before and after creation. Columns
//! are only ever appended; an existing table keeps the ids it was created with.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::SchemaRef as ArrowSchemaRef;
use std::collections::HashMap;

use iceberg::spec::{
    FormatVersion, ListType, MapType, NestedField, NullOrder, PartitionSpec, PrimitiveType, Schema,
    SortDirection, SortField, SortOrder, StructType, TableMetadataBuilder, Transform, Type,
    UnboundPartitionSpec,
};

use crate::{Result, Table};

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

fn iceberg_type(ty: &ColumnType, ids: &mut IdAllocator) -> Type {
    match ty {
        ColumnType::String => Type::Primitive(PrimitiveType::String),
        ColumnType::Int => Type::Primitive(PrimitiveType::Int),
        ColumnType::Long => Type::Primitive(PrimitiveType::Long),
        ColumnType::Double => Type::Primitive(PrimitiveType::Double),
        ColumnType::Boolean => Type::Primitive(PrimitiveType::Boolean),
        ColumnType::Timestamptz => Type::Primitive(PrimitiveType::Timestamptz),
        ColumnType::Attributes => {
            let key = ids.take();
            let value = ids.take();
            Type::Map(MapType::new(
                NestedField::map_key_element(key, Type::Primitive(PrimitiveType::String)).into(),
                NestedField::map_value_element(value, Type::Primitive(PrimitiveType::String), true)
                    .into(),
            ))
        }
        ColumnType::List(element) => {
            let id = ids.take();
            let element_type = iceberg_type(element, ids);
            Type::List(ListType::new(
                NestedField::list_element(id, element_type, true).into(),
            ))
        }
        ColumnType::Struct(fields) => {
            let field_ids: Vec<i32> = fields.iter().map(|_| ids.take()).collect();
            let nested = fields
                .iter()
                .zip(field_ids)
                .map(|(field, id)| nested_field(id, field, ids).into())
                .collect();
            Type::Struct(StructType::new(nested))
        }
    }
}

fn nested_field(id: i32, column: &Column, ids: &mut IdAllocator) -> NestedField {
    let ty = iceberg_type(&column.ty, ids);
    NestedField::new(id, column.name, ty, column.required).with_doc(column.source)
}

/// Everything a table needs in a catalog: schema, partition spec, sort order, and
/// the Arrow schema (with field ids) the converter produces batches in.
#[derive(Debug)]
pub struct TableDefinition {
    /// Which table this is.
    pub table: Table,
    /// The Iceberg schema (schema id 0).
    pub schema: Arc<Schema>,
    /// `day(<time column>)`.
    pub partition_spec: PartitionSpec,
    /// See [`sort_columns`].
    pub sort_order: SortOrder,
    /// The Arrow schema derived from `schema`, with `PARQUET:field_id` metadata.
    pub arrow_schema: ArrowSchemaRef,
}

impl TableDefinition {
    fn build(table: Table) -> Result<Self> {
        let mut ids = IdAllocator { next: 1 };
        let columns = columns(table);
        let top_level: Vec<i32> = columns.iter().map(|_| ids.take()).collect();
        let fields = columns
            .iter()
            .zip(top_level)
            .map(|(column, id)| nested_field(id, column, &mut ids).into())
            .collect::<Vec<_>>();
        let provisional = Schema::builder()
            .with_schema_id(0)
            .with_fields(fields)
            .build()?;
        // Number the fields exactly as a catalog will when it creates the table.
        let schema = Arc::new(
            TableMetadataBuilder::new(
                provisional,
                UnboundPartitionSpec::builder().build(),
                SortOrder::unsorted_order(),
                "memory://otlp2parquet".to_string(),
                FormatVersion::V2,
                HashMap::new(),
            )?
            .build()?
            .metadata
            .current_schema()
            .as_ref()
            .clone(),
        );
        let time = time_column(table);
        let partition_spec = PartitionSpec::builder(schema.clone())
            .with_spec_id(0)
            .add_partition_field(time, format!("{time}_day"), Transform::Day)?
            .build()?;
        let mut sort = SortOrder::builder();
        sort.with_order_id(1);
        for name in sort_columns(table) {
            let field = schema.field_by_name(name).ok_or_else(|| {
                iceberg::Error::new(
                    iceberg::ErrorKind::DataInvalid,
                    format!("sort column {name} is not in table {table}"),
                )
            })?;
            sort.with_sort_field(
                SortField::builder()
                    .source_id(field.id)
                    .transform(Transform::Identity)
                    .direction(SortDirection::Ascending)
                    .null_order(NullOrder::First)
                    .build(),
            );
        }
        let sort_order = sort.build(&schema)?;
        let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema)?);
        Ok(TableDefinition {
            table,
            schema,
            partition_spec,
            sort_order,
            arrow_schema,
        })
    }

    /// The definition of `table`, built once per process.
    pub fn get(table: Table) -> &'static TableDefinition {
        static DEFINITIONS: OnceLock<Vec<TableDefinition>> = OnceLock::new();
        let all = DEFINITIONS.get_or_init(|| {
            Table::ALL
                .iter()
                .map(|&t| {
                    // The definitions are constants of this crate: failing to build
                    // one is a bug caught by the unit tests, not a runtime condition.
                    TableDefinition::build(t).expect("table definitions are valid")
                })
                .collect()
        });
        &all[Table::ALL.iter().position(|t| *t == table).unwrap_or(0)]
    }
}

/// How a type is written in the README: Iceberg's names, nested types spelled out.
fn type_name(ty: &Type) -> String {
    match ty {
        Type::Primitive(p) => p.to_string(),
        Type::Map(m) => format!(
            "map<{}, {}>",
            type_name(&m.key_field.field_type),
            type_name(&m.value_field.field_type)
        ),
        Type::List(l) => format!("list<{}>", type_name(&l.element_field.field_type)),
        Type::Struct(_) => "struct".to_string(),
    }
}

/// One Markdown row per field, nested fields under their dotted path.
fn markdown_rows(path: &str, field: &NestedField, out: &mut String) {
    use std::fmt::Write;
    let nullable = if field.required { "" } else { " (nullable)" };
    let _ = writeln!(
        out,
        "| `{path}` | `{}`{nullable} | {} | {} |",
        type_name(&field.field_type),
        field.id,
        field.doc.as_deref().unwrap_or("")
    );
    let children: Vec<&NestedField> = match field.field_type.as_ref() {
        Type::Primitive(_) => vec![],
        Type::Map(m) => vec![&m.key_field, &m.value_field],
        Type::List(l) => vec![&l.element_field],
        Type::Struct(s) => s.fields().iter().map(|f| f.as_ref()).collect(),
    };
    for child in children {
        markdown_rows(&format!("{path}.{}", child.name), child, out);
    }
}

/// Renders the column table of every table as Markdown (the README's schema section).
pub fn markdown() -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for table in Table::ALL {
        let def = TableDefinition::get(table);
        let _ = writeln!(
            out,
            "#### `{}` — partitioned by `day({})`, sorted by {}\n",
            table.name(),
            time_column(table),
            sort_columns(table)
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        out.push_str("| Column | Type | Field id | Source |\n|---|---|---|---|\n");
        for field in def.schema.as_struct().fields() {
            markdown_rows(&field.name, field, &mut out);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
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
}
