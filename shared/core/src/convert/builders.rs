//! Column builders that produce arrays of exactly the Arrow types of the table schemas.
//!
//! The Arrow schema of each table is derived from its Iceberg schema and carries a
//! field id on every nested field (map entries, list elements, struct members). A
//! stock `MapBuilder` or `ListBuilder` names those inner fields its own way, without
//! ids, and `RecordBatch::try_new` then rejects the column. These builders collect
//! offsets and child values themselves and assemble the arrays at `finish` against
//! the target `DataType`, so the inner fields are the schema's own.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, Float64Builder, Int64Builder, ListArray, MapArray, StringBuilder,
    StructArray, TimestampMicrosecondBuilder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, FieldRef, Fields};
use arrow::error::ArrowError;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::values::{for_each_distinct, render_value};

/// The timezone Iceberg's `timestamptz` maps to in Arrow.
pub(crate) const UTC: &str = "+00:00";

/// OTLP nanoseconds to `timestamptz` microseconds; 0 means "not set" and is null.
pub(crate) fn micros(nanos: u64) -> Option<i64> {
    (nanos != 0).then_some((nanos / 1_000) as i64)
}

pub(crate) fn timestamp_builder(capacity: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone(UTC)
}

fn offsets(offsets: &mut Vec<i32>) -> OffsetBuffer<i32> {
    let taken = std::mem::replace(offsets, vec![0]);
    OffsetBuffer::new(ScalarBuffer::from(taken))
}

fn unexpected(what: &str, dt: &DataType) -> ArrowError {
    ArrowError::SchemaError(format!("expected {what}, the schema has {dt}"))
}

/// The element field of a list type.
pub(crate) fn list_element(dt: &DataType) -> Result<&FieldRef, ArrowError> {
    match dt {
        DataType::List(field) => Ok(field),
        other => Err(unexpected("a list", other)),
    }
}

/// The member fields of a struct type.
pub(crate) fn struct_fields(dt: &DataType) -> Result<&Fields, ArrowError> {
    match dt {
        DataType::Struct(fields) => Ok(fields),
        other => Err(unexpected("a struct", other)),
    }
}

/// Builds a `list<struct<..>>` column from offsets and the struct's member columns.
pub(crate) fn struct_list(
    dt: &DataType,
    list_offsets: &mut Vec<i32>,
    members: Vec<ArrayRef>,
) -> Result<ArrayRef, ArrowError> {
    let element = list_element(dt)?;
    let fields = struct_fields(element.data_type())?;
    let values = StructArray::try_new(fields.clone(), members, None)?;
    Ok(Arc::new(ListArray::try_new(
        element.clone(),
        offsets(list_offsets),
        Arc::new(values),
        None,
    )?))
}

/// A `map<string, string>` column of attributes.
pub(crate) struct AttributesBuilder {
    offsets: Vec<i32>,
    keys: StringBuilder,
    values: StringBuilder,
    scratch: String,
}

impl AttributesBuilder {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        AttributesBuilder {
            offsets,
            keys: StringBuilder::new(),
            values: StringBuilder::new(),
            scratch: String::new(),
        }
    }

    fn end_row(&mut self) {
        self.offsets.push(self.keys.len() as i32);
    }

    /// Appends one row holding `attrs`, values rendered as in [`render_value`].
    pub(crate) fn append(&mut self, attrs: &[KeyValue]) {
        for_each_distinct(attrs, |kv| {
            self.keys.append_value(&kv.key);
            match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => self.values.append_value(s),
                _ => {
                    self.scratch.clear();
                    render_value(kv.value.as_ref(), &mut self.scratch);
                    self.values.append_value(&self.scratch);
                }
            }
        });
        self.end_row();
    }

    /// Appends one row of already rendered pairs (resource and scope attributes,
    /// which repeat on every row of their records and are rendered once).
    pub(crate) fn append_rendered(&mut self, pairs: &[(&str, Cow<'_, str>)]) {
        for (k, v) in pairs {
            self.keys.append_value(k);
            self.values.append_value(v);
        }
        self.end_row();
    }

    pub(crate) fn finish(&mut self, dt: &DataType) -> Result<ArrayRef, ArrowError> {
        let (entries, sorted) = match dt {
            DataType::Map(entries, sorted) => (entries, *sorted),
            other => return Err(unexpected("a map", other)),
        };
        let fields = struct_fields(entries.data_type())?;
        let keys: ArrayRef = Arc::new(self.keys.finish());
        let values: ArrayRef = Arc::new(self.values.finish());
        let entries_array = StructArray::try_new(fields.clone(), vec![keys, values], None)?;
        Ok(Arc::new(MapArray::try_new(
            entries.clone(),
            offsets(&mut self.offsets),
            entries_array,
            None,
            sorted,
        )?))
    }
}

macro_rules! primitive_list_builder {
    ($name:ident, $builder:ty, $native:ty) => {
        /// A `list<..>` column of required primitive elements.
        pub(crate) struct $name {
            offsets: Vec<i32>,
            values: $builder,
        }

        impl $name {
            pub(crate) fn with_capacity(rows: usize) -> Self {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                $name {
                    offsets,
                    values: <$builder>::new(),
                }
            }

            pub(crate) fn append(&mut self, items: impl IntoIterator<Item = $native>) {
                for item in items {
                    self.values.append_value(item);
                }
                self.offsets.push(self.values.len() as i32);
            }

            pub(crate) fn finish(&mut self, dt: &DataType) -> Result<ArrayRef, ArrowError> {
                let element = list_element(dt)?;
                Ok(Arc::new(ListArray::try_new(
                    element.clone(),
                    offsets(&mut self.offsets),
                    Arc::new(self.values.finish()),
                    None,
                )?))
            }
        }
    };
}

primitive_list_builder!(LongListBuilder, Int64Builder, i64);
primitive_list_builder!(DoubleListBuilder, Float64Builder, f64);

/// Tracks where the children of a `list<struct>` column start and end.
pub(crate) struct ListOffsets(pub(crate) Vec<i32>);

impl ListOffsets {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        let mut v = Vec::with_capacity(rows + 1);
        v.push(0);
        ListOffsets(v)
    }

    pub(crate) fn push(&mut self, children_so_far: usize) {
        self.0.push(children_so_far as i32);
    }
}

/// A resource, rendered once for all of its records.
pub(crate) struct ResourceContext<'a> {
    service_name: Cow<'a, str>,
    attributes: Vec<(&'a str, Cow<'a, str>)>,
    dropped_attributes_count: i64,
    schema_url: &'a str,
}

fn render_pairs(attrs: &[KeyValue]) -> Vec<(&str, Cow<'_, str>)> {
    let mut pairs = Vec::with_capacity(attrs.len());
    for_each_distinct(attrs, |kv| {
        let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => Cow::Borrowed(s.as_str()),
            _ => {
                let mut s = String::new();
                render_value(kv.value.as_ref(), &mut s);
                Cow::Owned(s)
            }
        };
        pairs.push((kv.key.as_str(), value));
    });
    pairs
}

impl<'a> ResourceContext<'a> {
    pub(crate) fn new(resource: Option<&'a Resource>, schema_url: &'a str) -> Self {
        let attributes = resource
            .map(|r| render_pairs(&r.attributes))
            .unwrap_or_default();
        let service_name = attributes
            .iter()
            .find(|(k, _)| *k == "service.name")
            .map(|(_, v)| v.clone())
            .unwrap_or(Cow::Borrowed(""));
        ResourceContext {
            service_name,
            attributes,
            dropped_attributes_count: resource.map_or(0, |r| r.dropped_attributes_count.into()),
            schema_url,
        }
    }
}

/// An instrumentation scope, rendered once for all of its records.
pub(crate) struct ScopeContext<'a> {
    name: &'a str,
    version: &'a str,
    attributes: Vec<(&'a str, Cow<'a, str>)>,
    dropped_attributes_count: i64,
    schema_url: &'a str,
}

impl<'a> ScopeContext<'a> {
    pub(crate) fn new(scope: Option<&'a InstrumentationScope>, schema_url: &'a str) -> Self {
        ScopeContext {
            name: scope.map_or("", |s| s.name.as_str()),
            version: scope.map_or("", |s| s.version.as_str()),
            attributes: scope
                .map(|s| render_pairs(&s.attributes))
                .unwrap_or_default(),
            dropped_attributes_count: scope.map_or(0, |s| s.dropped_attributes_count.into()),
            schema_url,
        }
    }
}

/// The columns every table ends with (see `schema::resource_and_scope_columns`).
pub(crate) struct ResourceScopeColumns {
    service_name: StringBuilder,
    resource_attributes: AttributesBuilder,
    resource_dropped: Int64Builder,
    resource_schema_url: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attributes: AttributesBuilder,
    scope_dropped: Int64Builder,
    scope_schema_url: StringBuilder,
}

impl ResourceScopeColumns {
    /// How many columns [`ResourceScopeColumns::finish`] returns.
    pub(crate) const COUNT: usize = 9;

    pub(crate) fn with_capacity(rows: usize) -> Self {
        ResourceScopeColumns {
            service_name: StringBuilder::with_capacity(rows, rows * 8),
            resource_attributes: AttributesBuilder::with_capacity(rows),
            resource_dropped: Int64Builder::with_capacity(rows),
            resource_schema_url: StringBuilder::with_capacity(rows, 0),
            scope_name: StringBuilder::with_capacity(rows, rows * 8),
            scope_version: StringBuilder::with_capacity(rows, 0),
            scope_attributes: AttributesBuilder::with_capacity(rows),
            scope_dropped: Int64Builder::with_capacity(rows),
            scope_schema_url: StringBuilder::with_capacity(rows, 0),
        }
    }

    pub(crate) fn append(&mut self, resource: &ResourceContext<'_>, scope: &ScopeContext<'_>) {
        self.service_name.append_value(&resource.service_name);
        self.resource_attributes
            .append_rendered(&resource.attributes);
        self.resource_dropped
            .append_value(resource.dropped_attributes_count);
        self.resource_schema_url.append_value(resource.schema_url);
        self.scope_name.append_value(scope.name);
        self.scope_version.append_value(scope.version);
        self.scope_attributes.append_rendered(&scope.attributes);
        self.scope_dropped
            .append_value(scope.dropped_attributes_count);
        self.scope_schema_url.append_value(scope.schema_url);
    }

    /// Finishes the columns; `types` are the data types of the table's last
    /// [`ResourceScopeColumns::COUNT`] fields.
    pub(crate) fn finish(&mut self, types: &[&DataType]) -> Result<Vec<ArrayRef>, ArrowError> {
        Ok(vec![
            Arc::new(self.service_name.finish()),
            self.resource_attributes.finish(types[1])?,
            Arc::new(self.resource_dropped.finish()),
            Arc::new(self.resource_schema_url.finish()),
            Arc::new(self.scope_name.finish()),
            Arc::new(self.scope_version.finish()),
            self.scope_attributes.finish(types[6])?,
            Arc::new(self.scope_dropped.finish()),
            Arc::new(self.scope_schema_url.finish()),
        ])
    }
}
