//! The Iceberg side of the table definitions: schema, partition spec and sort
//! order, as a catalog needs them (the `iceberg` feature).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::SchemaRef as ArrowSchemaRef;
use iceberg::spec::{
    FormatVersion, ListType, MapType, NestedField, NullOrder, PartitionSpec, PrimitiveType, Schema,
    SortDirection, SortField, SortOrder, StructType, TableMetadataBuilder, Transform, Type,
    UnboundPartitionSpec,
};

use super::{Column, ColumnType, IdAllocator, arrow_schema, columns, sort_columns, time_column};
use crate::{Result, Table};

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
    /// [`arrow_schema`](super::arrow_schema): what `schema` is in Arrow, with
    /// `PARQUET:field_id` metadata (a test checks it against iceberg's own
    /// conversion).
    pub arrow_schema: ArrowSchemaRef,
}

impl TableDefinition {
    /// The Iceberg schema with the ids [`IdAllocator`] hands out.
    pub(super) fn provisional_schema(table: Table) -> Result<Schema> {
        let mut ids = IdAllocator { next: 1 };
        let columns = columns(table);
        let top_level: Vec<i32> = columns.iter().map(|_| ids.take()).collect();
        let fields = columns
            .iter()
            .zip(top_level)
            .map(|(column, id)| nested_field(id, column, &mut ids).into())
            .collect::<Vec<_>>();
        Ok(Schema::builder()
            .with_schema_id(0)
            .with_fields(fields)
            .build()?)
    }

    pub(super) fn build(table: Table) -> Result<Self> {
        let provisional = Self::provisional_schema(table)?;
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
        let arrow_schema = arrow_schema(table).clone();
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
