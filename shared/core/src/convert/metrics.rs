//! Metric data points to the five `metrics_*` tables, one per data point type.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::error::ArrowError;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, SummaryDataPoint, exemplar, metric::Data, number_data_point,
};

use super::builders::{
    AttributesBuilder, DoubleListBuilder, ListOffsets, LongListBuilder, ResourceContext,
    ResourceScopeColumns, ScopeContext, list_element, micros, struct_fields, struct_list,
    timestamp_builder,
};
use super::values::{check_id, hex};
use super::{Limits, Rejections, assemble};
use crate::schema::arrow_schema;
use crate::{Error, Result, Table};

/// The data type of a column of `table`, looked up by name.
fn dt(table: Table, name: &str) -> Result<&'static arrow::datatypes::DataType, ArrowError> {
    arrow_schema(table)
        .field_with_name(name)
        .map(|f| f.data_type())
}

/// The columns every metrics table starts with (`schema::metric_columns`).
struct MetricColumns {
    name: StringBuilder,
    description: StringBuilder,
    unit: StringBuilder,
    metadata: AttributesBuilder,
    attributes: AttributesBuilder,
    start_time: TimestampMicrosecondBuilder,
    time: TimestampMicrosecondBuilder,
    flags: Int64Builder,
}

impl MetricColumns {
    fn new() -> Self {
        MetricColumns {
            name: StringBuilder::new(),
            description: StringBuilder::new(),
            unit: StringBuilder::new(),
            metadata: AttributesBuilder::with_capacity(0),
            attributes: AttributesBuilder::with_capacity(0),
            start_time: timestamp_builder(0),
            time: timestamp_builder(0),
            flags: Int64Builder::new(),
        }
    }

    fn append(
        &mut self,
        metric: &Metric,
        attributes: &[KeyValue],
        start: u64,
        time: u64,
        flags: u32,
    ) {
        self.name.append_value(&metric.name);
        self.description.append_value(&metric.description);
        self.unit.append_value(&metric.unit);
        self.metadata.append(&metric.metadata);
        self.attributes.append(attributes);
        self.start_time.append_option(micros(start));
        self.time.append_option(micros(time));
        self.flags.append_value(flags.into());
    }

    fn finish(&mut self, table: Table) -> Result<Vec<ArrayRef>, ArrowError> {
        Ok(vec![
            Arc::new(self.name.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.unit.finish()),
            self.metadata.finish(dt(table, "MetricMetadata")?)?,
            self.attributes.finish(dt(table, "Attributes")?)?,
            Arc::new(self.start_time.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.flags.finish()),
        ])
    }
}

/// The `Exemplars` column.
struct ExemplarColumns {
    offsets: ListOffsets,
    count: usize,
    filtered_attributes: AttributesBuilder,
    time: TimestampMicrosecondBuilder,
    value: Float64Builder,
    int_value: Int64Builder,
    span_id: StringBuilder,
    trace_id: StringBuilder,
}

impl ExemplarColumns {
    fn new() -> Self {
        ExemplarColumns {
            offsets: ListOffsets::with_capacity(0),
            count: 0,
            filtered_attributes: AttributesBuilder::with_capacity(0),
            time: timestamp_builder(0),
            value: Float64Builder::new(),
            int_value: Int64Builder::new(),
            span_id: StringBuilder::new(),
            trace_id: StringBuilder::new(),
        }
    }

    fn validate(exemplars: &[Exemplar]) -> Result<(), String> {
        for (i, e) in exemplars.iter().enumerate() {
            check_id(&e.span_id, 8, "span_id")
                .and_then(|()| check_id(&e.trace_id, 16, "trace_id"))
                .map_err(|reason| format!("exemplars[{i}]: {reason}"))?;
        }
        Ok(())
    }

    fn append(&mut self, exemplars: &[Exemplar]) {
        let mut buf = [0u8; 32];
        for e in exemplars {
            self.filtered_attributes.append(&e.filtered_attributes);
            self.time.append_option(micros(e.time_unix_nano));
            let (value, int_value) = match e.value {
                Some(exemplar::Value::AsDouble(d)) => (Some(d), None),
                Some(exemplar::Value::AsInt(i)) => (Some(i as f64), Some(i)),
                None => (None, None),
            };
            self.value.append_option(value);
            self.int_value.append_option(int_value);
            self.span_id.append_value(hex(&e.span_id, &mut buf));
            self.trace_id.append_value(hex(&e.trace_id, &mut buf));
        }
        self.count += exemplars.len();
        self.offsets.push(self.count);
    }

    fn finish(&mut self, table: Table) -> Result<ArrayRef, ArrowError> {
        let list_type = dt(table, "Exemplars")?;
        let fields = struct_fields(list_element(list_type)?.data_type())?;
        struct_list(
            list_type,
            &mut self.offsets.0,
            vec![
                self.filtered_attributes.finish(fields[0].data_type())?,
                Arc::new(self.time.finish()),
                Arc::new(self.value.finish()),
                Arc::new(self.int_value.finish()),
                Arc::new(self.span_id.finish()),
                Arc::new(self.trace_id.finish()),
            ],
        )
    }
}

/// What every table builder has: the leading metric columns, the trailing
/// resource/scope columns and a row count.
struct Frame {
    table: Table,
    rows: usize,
    metric: MetricColumns,
    common: ResourceScopeColumns,
}

impl Frame {
    fn new(table: Table) -> Self {
        Frame {
            table,
            rows: 0,
            metric: MetricColumns::new(),
            common: ResourceScopeColumns::with_capacity(0),
        }
    }

    fn finish(
        mut self,
        own: impl FnOnce(Table) -> Result<Vec<ArrayRef>, ArrowError>,
    ) -> Result<Option<(Table, RecordBatch)>> {
        if self.rows == 0 {
            return Ok(None);
        }
        let table = self.table;
        let columns = (|| {
            let mut columns = self.metric.finish(table)?;
            columns.extend(own(table)?);
            Ok(columns)
        })()
        .map_err(|source| Error::Arrow {
            table: table.name(),
            source,
        })?;
        assemble(table, columns, &mut self.common).map(Some)
    }
}

/// Gauges and sums: both are `NumberDataPoint`s.
struct NumberTable {
    frame: Frame,
    value: Float64Builder,
    int_value: Int64Builder,
    temporality: Int32Builder,
    monotonic: BooleanBuilder,
    exemplars: ExemplarColumns,
}

impl NumberTable {
    fn new(table: Table) -> Self {
        NumberTable {
            frame: Frame::new(table),
            value: Float64Builder::new(),
            int_value: Int64Builder::new(),
            temporality: Int32Builder::new(),
            monotonic: BooleanBuilder::new(),
            exemplars: ExemplarColumns::new(),
        }
    }

    fn append(&mut self, metric: &Metric, p: &NumberDataPoint, sum: Option<(i32, bool)>) {
        self.frame.metric.append(
            metric,
            &p.attributes,
            p.start_time_unix_nano,
            p.time_unix_nano,
            p.flags,
        );
        let (value, int_value) = match p.value {
            Some(number_data_point::Value::AsDouble(d)) => (Some(d), None),
            Some(number_data_point::Value::AsInt(i)) => (Some(i as f64), Some(i)),
            None => (None, None),
        };
        self.value.append_option(value);
        self.int_value.append_option(int_value);
        if let Some((temporality, monotonic)) = sum {
            self.temporality.append_value(temporality);
            self.monotonic.append_value(monotonic);
        }
        self.exemplars.append(&p.exemplars);
        self.frame.rows += 1;
    }

    fn finish(mut self) -> Result<Option<(Table, RecordBatch)>> {
        let is_sum = self.frame.table == Table::MetricsSum;
        self.frame.finish(|table| {
            let mut c: Vec<ArrayRef> = vec![
                Arc::new(self.value.finish()),
                Arc::new(self.int_value.finish()),
            ];
            if is_sum {
                c.push(Arc::new(self.temporality.finish()));
                c.push(Arc::new(self.monotonic.finish()));
            }
            c.push(self.exemplars.finish(table)?);
            Ok(c)
        })
    }
}

struct HistogramTable {
    frame: Frame,
    count: Int64Builder,
    sum: Float64Builder,
    bucket_counts: LongListBuilder,
    explicit_bounds: DoubleListBuilder,
    min: Float64Builder,
    max: Float64Builder,
    temporality: Int32Builder,
    exemplars: ExemplarColumns,
}

impl HistogramTable {
    fn new() -> Self {
        HistogramTable {
            frame: Frame::new(Table::MetricsHistogram),
            count: Int64Builder::new(),
            sum: Float64Builder::new(),
            bucket_counts: LongListBuilder::with_capacity(0),
            explicit_bounds: DoubleListBuilder::with_capacity(0),
            min: Float64Builder::new(),
            max: Float64Builder::new(),
            temporality: Int32Builder::new(),
            exemplars: ExemplarColumns::new(),
        }
    }

    fn validate(p: &HistogramDataPoint) -> Result<(), String> {
        if !p.bucket_counts.is_empty() && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
            return Err(format!(
                "{} bucket_counts do not fit {} explicit_bounds (need one more count than bounds)",
                p.bucket_counts.len(),
                p.explicit_bounds.len()
            ));
        }
        check_counts("count", [&p.count])?;
        check_counts("bucket count", &p.bucket_counts)?;
        ExemplarColumns::validate(&p.exemplars)
    }

    fn append(&mut self, metric: &Metric, p: &HistogramDataPoint, temporality: i32) {
        self.frame.metric.append(
            metric,
            &p.attributes,
            p.start_time_unix_nano,
            p.time_unix_nano,
            p.flags,
        );
        self.count.append_value(p.count as i64);
        self.sum.append_option(p.sum);
        self.bucket_counts
            .append(p.bucket_counts.iter().map(|&c| c as i64));
        self.explicit_bounds
            .append(p.explicit_bounds.iter().copied());
        self.min.append_option(p.min);
        self.max.append_option(p.max);
        self.temporality.append_value(temporality);
        self.exemplars.append(&p.exemplars);
        self.frame.rows += 1;
    }

    fn finish(mut self) -> Result<Option<(Table, RecordBatch)>> {
        self.frame.finish(|table| {
            Ok(vec![
                Arc::new(self.count.finish()),
                Arc::new(self.sum.finish()),
                self.bucket_counts.finish(dt(table, "BucketCounts")?)?,
                self.explicit_bounds.finish(dt(table, "ExplicitBounds")?)?,
                Arc::new(self.min.finish()),
                Arc::new(self.max.finish()),
                Arc::new(self.temporality.finish()),
                self.exemplars.finish(table)?,
            ])
        })
    }
}

struct ExponentialHistogramTable {
    frame: Frame,
    count: Int64Builder,
    sum: Float64Builder,
    scale: Int32Builder,
    zero_count: Int64Builder,
    zero_threshold: Float64Builder,
    positive_offset: Int32Builder,
    positive_counts: LongListBuilder,
    negative_offset: Int32Builder,
    negative_counts: LongListBuilder,
    min: Float64Builder,
    max: Float64Builder,
    temporality: Int32Builder,
    exemplars: ExemplarColumns,
}

impl ExponentialHistogramTable {
    fn new() -> Self {
        ExponentialHistogramTable {
            frame: Frame::new(Table::MetricsExponentialHistogram),
            count: Int64Builder::new(),
            sum: Float64Builder::new(),
            scale: Int32Builder::new(),
            zero_count: Int64Builder::new(),
            zero_threshold: Float64Builder::new(),
            positive_offset: Int32Builder::new(),
            positive_counts: LongListBuilder::with_capacity(0),
            negative_offset: Int32Builder::new(),
            negative_counts: LongListBuilder::with_capacity(0),
            min: Float64Builder::new(),
            max: Float64Builder::new(),
            temporality: Int32Builder::new(),
            exemplars: ExemplarColumns::new(),
        }
    }

    fn validate(p: &ExponentialHistogramDataPoint) -> Result<(), String> {
        check_counts("count", [&p.count, &p.zero_count])?;
        for buckets in [&p.positive, &p.negative].into_iter().flatten() {
            check_counts("bucket count", &buckets.bucket_counts)?;
        }
        ExemplarColumns::validate(&p.exemplars)
    }

    fn append(&mut self, metric: &Metric, p: &ExponentialHistogramDataPoint, temporality: i32) {
        self.frame.metric.append(
            metric,
            &p.attributes,
            p.start_time_unix_nano,
            p.time_unix_nano,
            p.flags,
        );
        self.count.append_value(p.count as i64);
        self.sum.append_option(p.sum);
        self.scale.append_value(p.scale);
        self.zero_count.append_value(p.zero_count as i64);
        self.zero_threshold.append_value(p.zero_threshold);
        let positive = p.positive.as_ref();
        self.positive_offset
            .append_value(positive.map_or(0, |b| b.offset));
        self.positive_counts.append(
            positive
                .into_iter()
                .flat_map(|b| b.bucket_counts.iter().map(|&c| c as i64)),
        );
        let negative = p.negative.as_ref();
        self.negative_offset
            .append_value(negative.map_or(0, |b| b.offset));
        self.negative_counts.append(
            negative
                .into_iter()
                .flat_map(|b| b.bucket_counts.iter().map(|&c| c as i64)),
        );
        self.min.append_option(p.min);
        self.max.append_option(p.max);
        self.temporality.append_value(temporality);
        self.exemplars.append(&p.exemplars);
        self.frame.rows += 1;
    }

    fn finish(mut self) -> Result<Option<(Table, RecordBatch)>> {
        self.frame.finish(|table| {
            Ok(vec![
                Arc::new(self.count.finish()),
                Arc::new(self.sum.finish()),
                Arc::new(self.scale.finish()),
                Arc::new(self.zero_count.finish()),
                Arc::new(self.zero_threshold.finish()),
                Arc::new(self.positive_offset.finish()),
                self.positive_counts
                    .finish(dt(table, "PositiveBucketCounts")?)?,
                Arc::new(self.negative_offset.finish()),
                self.negative_counts
                    .finish(dt(table, "NegativeBucketCounts")?)?,
                Arc::new(self.min.finish()),
                Arc::new(self.max.finish()),
                Arc::new(self.temporality.finish()),
                self.exemplars.finish(table)?,
            ])
        })
    }
}

struct SummaryTable {
    frame: Frame,
    count: Int64Builder,
    sum: Float64Builder,
    quantiles: ListOffsets,
    quantile_count: usize,
    quantile: Float64Builder,
    quantile_value: Float64Builder,
}

impl SummaryTable {
    fn new() -> Self {
        SummaryTable {
            frame: Frame::new(Table::MetricsSummary),
            count: Int64Builder::new(),
            sum: Float64Builder::new(),
            quantiles: ListOffsets::with_capacity(0),
            quantile_count: 0,
            quantile: Float64Builder::new(),
            quantile_value: Float64Builder::new(),
        }
    }

    fn append(&mut self, metric: &Metric, p: &SummaryDataPoint) {
        self.frame.metric.append(
            metric,
            &p.attributes,
            p.start_time_unix_nano,
            p.time_unix_nano,
            p.flags,
        );
        self.count.append_value(p.count as i64);
        self.sum.append_value(p.sum);
        for q in &p.quantile_values {
            self.quantile.append_value(q.quantile);
            self.quantile_value.append_value(q.value);
        }
        self.quantile_count += p.quantile_values.len();
        self.quantiles.push(self.quantile_count);
        self.frame.rows += 1;
    }

    fn finish(mut self) -> Result<Option<(Table, RecordBatch)>> {
        self.frame.finish(|table| {
            Ok(vec![
                Arc::new(self.count.finish()),
                Arc::new(self.sum.finish()),
                struct_list(
                    dt(table, "ValueAtQuantiles")?,
                    &mut self.quantiles.0,
                    vec![
                        Arc::new(self.quantile.finish()),
                        Arc::new(self.quantile_value.finish()),
                    ],
                )?,
            ])
        })
    }
}

/// Unsigned 64-bit counts are stored as Iceberg `long`; one above `i64::MAX` would
/// wrap to a negative number, so its data point is rejected instead.
fn check_counts<'a>(what: &str, counts: impl IntoIterator<Item = &'a u64>) -> Result<(), String> {
    match counts.into_iter().find(|&&c| c > i64::MAX as u64) {
        Some(c) => Err(format!("{what} {c} does not fit a signed 64-bit long")),
        None => Ok(()),
    }
}

fn check_temporality(temporality: i32) -> Result<(), String> {
    if (0..=2).contains(&temporality) {
        Ok(())
    } else {
        Err(format!(
            "aggregation_temporality {temporality} is not an AggregationTemporality (0..=2)"
        ))
    }
}

pub(super) fn convert(
    request: ExportMetricsServiceRequest,
    limits: &Limits,
    rejections: &mut Rejections,
) -> Result<Vec<(Table, RecordBatch)>> {
    let mut gauge = NumberTable::new(Table::MetricsGauge);
    let mut sum = NumberTable::new(Table::MetricsSum);
    let mut histogram = HistogramTable::new();
    let mut exponential = ExponentialHistogramTable::new();
    let mut summary = SummaryTable::new();

    // Consumed scope by scope, as in `logs::convert`, to keep peak memory down.
    for (ri, resource_metrics) in request.resource_metrics.into_iter().enumerate() {
        let ResourceMetrics {
            resource,
            scope_metrics,
            schema_url,
        } = resource_metrics;
        let resource = ResourceContext::new(resource.as_ref(), &schema_url);
        for (si, scope_metrics) in scope_metrics.into_iter().enumerate() {
            let scope = ScopeContext::new(scope_metrics.scope.as_ref(), &scope_metrics.schema_url);
            for (mi, metric) in scope_metrics.metrics.iter().enumerate() {
                let mut reject = |pi: usize, reason: String| {
                    rejections.reject(|| {
                        format!(
                            "resource_metrics[{ri}].scope_metrics[{si}].metrics[{mi}] ({}) data_points[{pi}]: {reason}",
                            metric.name
                        )
                    })
                };
                let metadata = limits.check(&metric.metadata, "the metric's metadata");
                let within_limits = |attributes: &[KeyValue], exemplars: &[Exemplar]| {
                    metadata.clone()?;
                    limits.check(attributes, "the data point")?;
                    exemplars
                        .iter()
                        .try_for_each(|e| limits.check(&e.filtered_attributes, "an exemplar"))
                };
                match &metric.data {
                    Some(Data::Gauge(g)) => {
                        for (pi, p) in g.data_points.iter().enumerate() {
                            let valid = within_limits(&p.attributes, &p.exemplars)
                                .and_then(|()| ExemplarColumns::validate(&p.exemplars));
                            match valid {
                                Ok(()) => {
                                    gauge.append(metric, p, None);
                                    gauge.frame.common.append(&resource, &scope);
                                }
                                Err(reason) => reject(pi, reason),
                            }
                        }
                    }
                    Some(Data::Sum(s)) => {
                        for (pi, p) in s.data_points.iter().enumerate() {
                            let valid = within_limits(&p.attributes, &p.exemplars)
                                .and_then(|()| check_temporality(s.aggregation_temporality))
                                .and_then(|()| ExemplarColumns::validate(&p.exemplars));
                            match valid {
                                Ok(()) => {
                                    sum.append(
                                        metric,
                                        p,
                                        Some((s.aggregation_temporality, s.is_monotonic)),
                                    );
                                    sum.frame.common.append(&resource, &scope);
                                }
                                Err(reason) => reject(pi, reason),
                            }
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        for (pi, p) in h.data_points.iter().enumerate() {
                            let valid = within_limits(&p.attributes, &p.exemplars)
                                .and_then(|()| check_temporality(h.aggregation_temporality))
                                .and_then(|()| HistogramTable::validate(p));
                            match valid {
                                Ok(()) => {
                                    histogram.append(metric, p, h.aggregation_temporality);
                                    histogram.frame.common.append(&resource, &scope);
                                }
                                Err(reason) => reject(pi, reason),
                            }
                        }
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        for (pi, p) in h.data_points.iter().enumerate() {
                            let valid = within_limits(&p.attributes, &p.exemplars)
                                .and_then(|()| check_temporality(h.aggregation_temporality))
                                .and_then(|()| ExponentialHistogramTable::validate(p));
                            match valid {
                                Ok(()) => {
                                    exponential.append(metric, p, h.aggregation_temporality);
                                    exponential.frame.common.append(&resource, &scope);
                                }
                                Err(reason) => reject(pi, reason),
                            }
                        }
                    }
                    Some(Data::Summary(s)) => {
                        for (pi, p) in s.data_points.iter().enumerate() {
                            let valid = within_limits(&p.attributes, &[])
                                .and_then(|()| check_counts("count", [&p.count]));
                            match valid {
                                Ok(()) => {
                                    summary.append(metric, p);
                                    summary.frame.common.append(&resource, &scope);
                                }
                                Err(reason) => reject(pi, reason),
                            }
                        }
                    }
                    // A metric without data carries no data point to store or to count.
                    None => {}
                }
            }
        }
    }

    Ok([
        gauge.finish()?,
        sum.finish()?,
        histogram.finish()?,
        exponential.finish()?,
        summary.finish()?,
    ]
    .into_iter()
    .flatten()
    .collect())
}
