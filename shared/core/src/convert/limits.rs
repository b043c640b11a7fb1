//! Caps on what one request may make a conversion do.
//!
//! The wire size of a request says little about what converting it costs: every
//! row repeats its resource's and scope's attributes, and one record may carry
//! hundreds of thousands of attributes or an array of millions of values. The
//! caps here keep each record's share bounded; the converted-size estimate
//! (`super::estimated_converted_bytes`) bounds the whole.
//!
//! Attributes over a cap are dropped and counted in the record's
//! `dropped_attributes_count`, as the OpenTelemetry SDKs' attribute limits do,
//! so a query sees that something was left out. Data points have no such count
//! in OTLP, and their attributes are their identity (dropping one would merge
//! two time series), so a data point over a cap is rejected instead and
//! reported in `partial_success`.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::otlp::ExportRequest;

/// What one request may cost to convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest estimated size of the converted request, in bytes; a request
    /// over it is refused whole (413).
    pub max_converted_bytes: u64,
    /// Largest estimated size of the converted request as a multiple of its
    /// protobuf size, for requests estimated above [`EXPANSION_FLOOR_BYTES`].
    /// Keeps memory proportional to what a client sent: a 0.5 MiB body must
    /// not take 300 MiB because its resource repeats on every row.
    pub max_expansion: u64,
    /// Attributes kept per resource, scope, log record, span, span event and
    /// span link: the first ones in the request, the rest dropped and counted.
    pub max_attributes: usize,
    /// Values one attribute may hold, counting every element of its arrays and
    /// key-value lists at any depth; an attribute holding more is dropped and
    /// counted.
    pub max_attribute_values: usize,
}

/// See [`Limits::max_converted_bytes`].
pub const DEFAULT_MAX_CONVERTED_BYTES: u64 = 512 * 1024 * 1024;
/// See [`Limits::max_expansion`]. Records of a few hundred bytes convert to
/// two to four times their protobuf size; small records under a large
/// resource (100-byte logs from a pod with 2 KiB of Kubernetes attributes)
/// reach about 20 times, and must still pass.
pub const DEFAULT_MAX_EXPANSION: u64 = 32;
/// Estimated converted size any request may have, whatever its body size: a
/// client told to send smaller batches must be able to.
pub const EXPANSION_FLOOR_BYTES: u64 = 64 * 1024 * 1024;
/// See [`Limits::max_attributes`]. Eight times the SDKs' default of 128: a
/// collector merging resource detectors and processors adds more than an SDK
/// does, and what a user sends today must not start disappearing.
pub const DEFAULT_MAX_ATTRIBUTES: usize = 1024;
/// See [`Limits::max_attribute_values`].
pub const DEFAULT_MAX_ATTRIBUTE_VALUES: usize = 10_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_converted_bytes: DEFAULT_MAX_CONVERTED_BYTES,
            max_expansion: DEFAULT_MAX_EXPANSION,
            max_attributes: DEFAULT_MAX_ATTRIBUTES,
            max_attribute_values: DEFAULT_MAX_ATTRIBUTE_VALUES,
        }
    }
}

impl Limits {
    /// These limits with another cap on attributes per record.
    pub fn with_max_attributes(mut self, max: usize) -> Self {
        self.max_attributes = max;
        self
    }

    /// These limits with another cap on values per attribute.
    pub fn with_max_attribute_values(mut self, max: usize) -> Self {
        self.max_attribute_values = max;
        self
    }

    /// These limits with another cap on the converted size.
    pub fn with_max_converted_bytes(mut self, max: u64) -> Self {
        self.max_converted_bytes = max;
        self
    }

    /// The largest estimated converted size allowed for `request`, whose
    /// estimate is `estimated`.
    pub(crate) fn converted_bytes_allowed(&self, request: &ExportRequest, estimated: u64) -> u64 {
        if estimated <= EXPANSION_FLOOR_BYTES.min(self.max_converted_bytes) {
            // The common case never pays for measuring the request.
            return self.max_converted_bytes;
        }
        let proportional = (request.encoded_len() as u64)
            .saturating_mul(self.max_expansion)
            .max(EXPANSION_FLOOR_BYTES);
        proportional.min(self.max_converted_bytes)
    }

    /// Why `attributes` (a data point's, an exemplar's or a metric's metadata)
    /// break a cap, if they do. Data points are rejected rather than trimmed;
    /// see the module docs.
    pub(crate) fn check(&self, attributes: &[KeyValue], what: &str) -> Result<(), String> {
        if attributes.len() > self.max_attributes {
            return Err(format!(
                "{what} has {} attributes, more than the limit of {}",
                attributes.len(),
                self.max_attributes
            ));
        }
        match attributes
            .iter()
            .find(|kv| !self.value_within(kv.value.as_ref()))
        {
            Some(kv) => Err(format!(
                "{what} attribute {:?} holds more than the limit of {} values",
                kv.key, self.max_attribute_values
            )),
            None => Ok(()),
        }
    }

    /// Whether `value` holds at most `max_attribute_values` values.
    fn value_within(&self, value: Option<&AnyValue>) -> bool {
        // The attribute's own value is not one of the values it holds.
        let mut budget = self.max_attribute_values.saturating_add(1);
        spend(value, &mut budget)
    }

    /// Drops the attributes over the caps and adds their number to `dropped`.
    fn trim(&self, attributes: &mut Vec<KeyValue>, dropped: &mut u32) {
        let before = attributes.len();
        if before == 0 {
            return;
        }
        attributes.retain(|kv| self.value_within(kv.value.as_ref()));
        attributes.truncate(self.max_attributes);
        let removed = before - attributes.len();
        if removed > 0 {
            // What was dropped is gone for good: give its memory back now, not
            // when the whole request is freed.
            attributes.shrink_to_fit();
            *dropped = dropped.saturating_add(u32::try_from(removed).unwrap_or(u32::MAX));
        }
    }

    /// Trims every resource, scope, log record, span, event and link of
    /// `request` to the caps. Metrics are left whole: their data points are
    /// checked one by one during conversion ([`Limits::check`]), except their
    /// resources and scopes, which are trimmed like any other.
    pub(crate) fn trim_request(&self, request: &mut ExportRequest) {
        let resource = |r: Option<&mut Resource>| {
            if let Some(r) = r {
                self.trim(&mut r.attributes, &mut r.dropped_attributes_count);
            }
        };
        match request {
            ExportRequest::Logs(r) => {
                for rl in &mut r.resource_logs {
                    resource(rl.resource.as_mut());
                    for sl in &mut rl.scope_logs {
                        if let Some(s) = sl.scope.as_mut() {
                            self.trim(&mut s.attributes, &mut s.dropped_attributes_count);
                        }
                        for record in &mut sl.log_records {
                            self.trim(&mut record.attributes, &mut record.dropped_attributes_count);
                        }
                    }
                }
            }
            ExportRequest::Traces(r) => {
                for rs in &mut r.resource_spans {
                    resource(rs.resource.as_mut());
                    for ss in &mut rs.scope_spans {
                        if let Some(s) = ss.scope.as_mut() {
                            self.trim(&mut s.attributes, &mut s.dropped_attributes_count);
                        }
                        for span in &mut ss.spans {
                            self.trim(&mut span.attributes, &mut span.dropped_attributes_count);
                            for event in &mut span.events {
                                self.trim(
                                    &mut event.attributes,
                                    &mut event.dropped_attributes_count,
                                );
                            }
                            for link in &mut span.links {
                                self.trim(&mut link.attributes, &mut link.dropped_attributes_count);
                            }
                        }
                    }
                }
            }
            ExportRequest::Metrics(r) => {
                for rm in &mut r.resource_metrics {
                    resource(rm.resource.as_mut());
                    for sm in &mut rm.scope_metrics {
                        if let Some(s) = sm.scope.as_mut() {
                            self.trim(&mut s.attributes, &mut s.dropped_attributes_count);
                        }
                    }
                }
            }
        }
    }
}

/// Takes one unit of `budget` for `value` and one for each value nested in it;
/// false as soon as the budget runs out. Stops early, so a huge array costs no
/// more than the budget to check. Nesting depth is bounded by the decoder.
fn spend(value: Option<&AnyValue>, budget: &mut usize) -> bool {
    let Some(taken) = budget.checked_sub(1) else {
        return false;
    };
    *budget = taken;
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::ArrayValue(a)) => a.values.iter().all(|v| spend(Some(v), budget)),
        Some(Value::KvlistValue(kv)) => kv.values.iter().all(|kv| spend(kv.value.as_ref(), budget)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn string(key: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue("v".into())),
            }),
            ..Default::default()
        }
    }

    fn array(key: &str, values: usize) -> KeyValue {
        let scalar = AnyValue {
            value: Some(Value::IntValue(1)),
        };
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![scalar; values],
                })),
            }),
            ..Default::default()
        }
    }

    fn limits(attributes: usize, values: usize) -> Limits {
        Limits::default()
            .with_max_attributes(attributes)
            .with_max_attribute_values(values)
    }

    #[test]
    fn the_first_attributes_are_kept_and_the_rest_counted() {
        let mut attrs: Vec<_> = (0..10).map(|i| string(&format!("k{i}"))).collect();
        let mut dropped = 2;
        limits(4, 100).trim(&mut attrs, &mut dropped);
        let keys: Vec<_> = attrs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["k0", "k1", "k2", "k3"]);
        assert_eq!(dropped, 2 + 6);
    }

    #[test]
    fn an_attribute_holding_too_many_values_is_dropped() {
        let nested = KeyValue {
            key: "nested".into(),
            value: Some(AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![array("inner", 3), array("inner2", 3)],
                })),
            }),
            ..Default::default()
        };
        // 2 lists + 6 scalars = 8 values inside `nested`.
        let mut attrs = vec![array("exactly", 8), array("over", 9), nested, string("s")];
        let mut dropped = 0;
        limits(100, 8).trim(&mut attrs, &mut dropped);
        let keys: Vec<_> = attrs.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(keys, ["exactly", "nested", "s"]);
        assert_eq!(dropped, 1);
        let mut attrs = vec![array("exactly", 8)];
        limits(100, 7).trim(&mut attrs, &mut dropped);
        assert!(attrs.is_empty());
        assert_eq!(dropped, 2);
    }

    #[test]
    fn data_points_are_checked_not_trimmed() {
        let l = limits(2, 3);
        assert!(
            l.check(&[string("a"), string("b")], "the data point")
                .is_ok()
        );
        let err = l
            .check(&[string("a"), string("b"), string("c")], "the data point")
            .unwrap_err();
        assert_eq!(
            err,
            "the data point has 3 attributes, more than the limit of 2"
        );
        let err = l.check(&[array("long", 4)], "an exemplar").unwrap_err();
        assert_eq!(
            err,
            "an exemplar attribute \"long\" holds more than the limit of 3 values"
        );
    }

    // Below the floor the absolute limit applies; above it, the estimate may be
    // at most `max_expansion` times the request's size.
    #[test]
    fn large_estimates_are_allowed_in_proportion_to_the_request() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
        let request = ExportRequest::Logs(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: (0..300_000).map(|i| string(&format!("k{i:07}"))).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
        });
        let size = request.encoded_len() as u64;
        assert!(
            size > 1 << 20 && size * 32 > EXPANSION_FLOOR_BYTES,
            "{size}"
        );
        let l = Limits::default();
        assert_eq!(
            l.converted_bytes_allowed(&request, 1 << 20),
            DEFAULT_MAX_CONVERTED_BYTES
        );
        assert_eq!(l.converted_bytes_allowed(&request, 1 << 30), size * 32);
        let small = ExportRequest::Logs(ExportLogsServiceRequest::default());
        assert_eq!(
            l.converted_bytes_allowed(&small, 1 << 30),
            EXPANSION_FLOOR_BYTES
        );
        let strict = l.with_max_converted_bytes(1 << 20);
        assert_eq!(strict.converted_bytes_allowed(&request, 1 << 30), 1 << 20);
    }
}
