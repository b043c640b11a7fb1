//! The converted-size check, done on the protobuf wire format before decoding.
//!
//! Decoding materialises the whole request before [`super::convert_with`] can
//! estimate and refuse it: every attribute becomes a `KeyValue` with two heap
//! strings, every log record a struct of about 200 bytes. A request of 10,000
//! resource attributes over 10,000 records (0.44 MiB) took 12.7× its body in
//! memory just to be refused. Reading the wire format borrows from the body
//! and allocates nothing, so such a request is refused at the cost of one pass
//! over its bytes.
//!
//! What is computed is a lower bound of [`super::estimated_converted_bytes`]
//! on the trimmed request, compared with an upper bound of the size it is
//! allowed, so the early check refuses only what the full path would refuse
//! too. It counts the per-row overhead and the resource and scope attributes
//! that trimming certainly keeps (scalar values among the first
//! `max_attributes`), at their canonical encoded size; anything it cannot read
//! counts as zero and is left to the decoder to judge.

use super::ROW_OVERHEAD_BYTES;
use super::limits::{EXPANSION_FLOOR_BYTES, Limits};
use crate::{Error, Signal};

/// Refuses `body`, the protobuf export request of `signal`, when its
/// converted size is certainly over `limits`; see the module docs.
pub fn refuse_before_decoding(signal: Signal, body: &[u8], limits: &Limits) -> Result<(), Error> {
    let estimated = match signal {
        Signal::Logs | Signal::Traces => rows_lower_bound(body, limits),
        Signal::Metrics => metrics_lower_bound(body, limits),
    };
    if estimated <= EXPANSION_FLOOR_BYTES.min(limits.max_converted_bytes) {
        return Ok(());
    }
    // Re-encoding the decoded request never makes it longer than its body.
    let allowed = (body.len() as u64)
        .saturating_mul(limits.max_expansion)
        .max(EXPANSION_FLOOR_BYTES)
        .min(limits.max_converted_bytes);
    if estimated > allowed {
        return Err(Error::ConversionTooLarge {
            estimated,
            limit: allowed,
        });
    }
    Ok(())
}

/// A field's value on the wire.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Reads a varint from the front of `rest`.
fn varint(rest: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, tail) = rest.split_first()?;
        *rest = tail;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of one message, in wire order; `None` ends it early on bytes
/// that are not a message (groups included: OTLP has none).
fn fields(message: &[u8]) -> impl Iterator<Item = Option<(u64, Value<'_>)>> {
    let mut rest = message;
    let mut broken = false;
    std::iter::from_fn(move || {
        if rest.is_empty() || broken {
            return None;
        }
        let field = (|| {
            let key = varint(&mut rest)?;
            let value = match key & 7 {
                0 => Value::Varint(varint(&mut rest)?),
                1 => {
                    rest = rest.get(8..)?;
                    Value::Fixed
                }
                2 => {
                    let len = usize::try_from(varint(&mut rest)?).ok()?;
                    let bytes = rest.get(..len)?;
                    rest = &rest[len..];
                    Value::Bytes(bytes)
                }
                5 => {
                    rest = rest.get(4..)?;
                    Value::Fixed
                }
                _ => return None,
            };
            Some((key >> 3, value))
        })();
        broken = field.is_none();
        Some(field)
    })
}

/// The length-delimited values of `field` in `message`.
fn each<'a>(message: &'a [u8], field: u64) -> impl Iterator<Item = &'a [u8]> + 'a {
    fields(message)
        .map_while(|f| f)
        .filter_map(move |(n, v)| match v {
            Value::Bytes(bytes) if n == field => Some(bytes),
            _ => None,
        })
}

/// The one value of a singular message field, or `None` when it is absent
/// or repeated (the decoder merges repeats; not worth modelling here).
fn single(message: &[u8], field: u64) -> Option<&[u8]> {
    let mut values = each(message, field);
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

fn varint_len(value: u64) -> u64 {
    u64::from((64 - (value | 1).leading_zeros()).div_ceil(7))
}

/// The canonical encoded size of an `AnyValue` holding one scalar (string,
/// bool, int or double), which trimming always keeps; `None` for anything else.
fn scalar_len(any_value: &[u8]) -> Option<u64> {
    let mut values = fields(any_value);
    let (field, value) = values.next()??;
    if values.next().is_some() {
        return None;
    }
    match (field, value) {
        (1, Value::Bytes(s)) => Some(1 + varint_len(s.len() as u64) + s.len() as u64),
        (2 | 3, Value::Varint(v)) => Some(1 + varint_len(v)),
        (4, Value::Fixed) => Some(9),
        _ => None,
    }
}

/// What the estimate counts for the attributes (`field`) of `message` that
/// trimming certainly keeps.
fn attributes_lower_bound(message: &[u8], field: u64, limits: &Limits) -> u64 {
    each(message, field)
        .take(limits.max_attributes)
        .map(|kv| {
            let key = each(kv, 1).last().map_or(0, |k| k.len() as u64);
            single(kv, 2).and_then(scalar_len).map_or(0, |v| key + v)
        })
        .sum()
}

/// Resource attributes (`Resource.attributes` = 1).
fn resource_lower_bound(resource_x: &[u8], limits: &Limits) -> u64 {
    single(resource_x, 1).map_or(0, |r| attributes_lower_bound(r, 1, limits))
}

/// Scope name (1), version (2) and attributes (3).
fn scope_lower_bound(scope_x: &[u8], limits: &Limits) -> u64 {
    single(scope_x, 1).map_or(0, |scope| {
        let text = |field| each(scope, field).last().map_or(0, |s| s.len() as u64);
        text(1) + text(2) + attributes_lower_bound(scope, 3, limits)
    })
}

/// Logs and traces have the same shape: request.1 = resource logs/spans,
/// whose 1 = resource and 2 = scope logs/spans, whose 1 = scope and 2 = the
/// rows.
fn rows_lower_bound(body: &[u8], limits: &Limits) -> u64 {
    let mut total = 0u64;
    for resource_x in each(body, 1) {
        let resource = resource_lower_bound(resource_x, limits);
        for scope_x in each(resource_x, 2) {
            let shared = ROW_OVERHEAD_BYTES + resource + scope_lower_bound(scope_x, limits);
            let rows = each(scope_x, 2).count() as u64;
            total = total.saturating_add(shared.saturating_mul(rows));
        }
    }
    total
}

/// Metrics: request.1 = resource metrics (1 = resource, 2 = scope metrics),
/// scope metrics (1 = scope, 2 = metrics), metric (name 1, description 2,
/// unit 3; gauge 5, sum 7, histogram 9, exponential histogram 10, summary 11,
/// each with data points at 1).
fn metrics_lower_bound(body: &[u8], limits: &Limits) -> u64 {
    let mut total = 0u64;
    for resource_metrics in each(body, 1) {
        let resource = resource_lower_bound(resource_metrics, limits);
        for scope_metrics in each(resource_metrics, 2) {
            let shared = ROW_OVERHEAD_BYTES + resource + scope_lower_bound(scope_metrics, limits);
            for metric in each(scope_metrics, 2) {
                let text = |field| each(metric, field).last().map_or(0, |s| s.len() as u64);
                let per_point = shared + text(1) + text(2) + text(3);
                // The decoder keeps the last of the oneof's fields.
                let points = fields(metric)
                    .map_while(|f| f)
                    .filter_map(|(n, v)| match (n, v) {
                        (5 | 7 | 9 | 10 | 11, Value::Bytes(data)) => Some(data),
                        _ => None,
                    })
                    .last()
                    .map_or(0, |data| each(data, 1).count() as u64);
                total = total.saturating_add(per_point.saturating_mul(points));
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
    };
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message as _;

    use super::super::estimated_converted_bytes;
    use super::*;
    use crate::otlp::ExportRequest;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn scalar_sizes_are_what_prost_encodes() {
        for value in [
            any_value::Value::StringValue("x".repeat(300)),
            any_value::Value::IntValue(-1),
            any_value::Value::IntValue(5),
            any_value::Value::BoolValue(true),
            any_value::Value::DoubleValue(1.5),
        ] {
            let any = AnyValue { value: Some(value) };
            assert_eq!(
                scalar_len(&any.encode_to_vec()),
                Some(any.encoded_len() as u64)
            );
        }
        let array = AnyValue {
            value: Some(any_value::Value::ArrayValue(Default::default())),
        };
        assert_eq!(scalar_len(&array.encode_to_vec()), None);
    }

    #[test]
    fn the_bound_counts_only_the_attributes_kept() {
        let limits = Limits::default().with_max_attributes(2);
        let resource = Resource {
            attributes: vec![
                kv("a", any_value::Value::StringValue("xyz".into())),
                kv("b", any_value::Value::IntValue(7)),
                kv("c", any_value::Value::StringValue("over the cap".into())),
            ],
            ..Default::default()
        };
        // a: 1 + (1 + 1 + 3); b: 1 + (1 + 1); c is past the cap.
        assert_eq!(
            attributes_lower_bound(&resource.encode_to_vec(), 1, &limits),
            6 + 3
        );
    }

    fn logs(resource_attributes: usize, records: usize) -> ExportLogsServiceRequest {
        let attributes = |n: usize| -> Vec<KeyValue> {
            (0..n)
                .map(|i| match i % 3 {
                    0 => kv(
                        &format!("k{i}"),
                        any_value::Value::StringValue(format!("v{i}")),
                    ),
                    1 => kv(&format!("k{i}"), any_value::Value::DoubleValue(i as f64)),
                    _ => kv(
                        &format!("k{i}"),
                        any_value::Value::ArrayValue(ArrayValue {
                            values: vec![AnyValue {
                                value: Some(any_value::Value::IntValue(1)),
                            }],
                        }),
                    ),
                })
                .collect()
        };
        ExportLogsServiceRequest {
            resource_logs: (0..2)
                .map(|_| ResourceLogs {
                    resource: Some(Resource {
                        attributes: attributes(resource_attributes),
                        ..Default::default()
                    }),
                    scope_logs: (0..3)
                        .map(|s| ScopeLogs {
                            scope: Some(InstrumentationScope {
                                name: format!("scope {s}"),
                                version: "1.0".into(),
                                attributes: attributes(s),
                                ..Default::default()
                            }),
                            log_records: (0..records)
                                .map(|i| LogRecord {
                                    time_unix_nano: i as u64,
                                    attributes: attributes(i % 4),
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn the_bound_never_exceeds_the_estimate_of_the_trimmed_request() {
        for limits in [Limits::default(), Limits::default().with_max_attributes(4)] {
            let request = logs(20, 50);
            let body = request.encode_to_vec();
            let mut trimmed = ExportRequest::Logs(request);
            limits.trim_request(&mut trimmed);
            let bound = rows_lower_bound(&body, &limits);
            assert!(bound > 300 * ROW_OVERHEAD_BYTES);
            assert!(bound <= estimated_converted_bytes(&trimmed), "{bound}");
        }
    }

    #[test]
    fn many_resource_attributes_over_many_records_are_refused_unread() {
        let body = logs(10_000, 2_000).encode_to_vec();
        let refused = refuse_before_decoding(Signal::Logs, &body, &Limits::default());
        assert!(
            matches!(refused, Err(Error::ConversionTooLarge { .. })),
            "{refused:?}"
        );
        // The full path agrees.
        let request = ExportLogsServiceRequest::decode(body.as_slice()).unwrap();
        let full = super::super::convert_with(ExportRequest::Logs(request), &Limits::default());
        assert!(matches!(full, Err(Error::ConversionTooLarge { .. })));
        // A request within the limits passes.
        let small = logs(10, 100).encode_to_vec();
        assert!(refuse_before_decoding(Signal::Logs, &small, &Limits::default()).is_ok());
    }

    #[test]
    fn garbage_is_left_to_the_decoder() {
        for body in [&b"\xff\xff\xff"[..], b"\x0a\x05ab", b"\x0b", b""] {
            assert!(refuse_before_decoding(Signal::Logs, body, &Limits::default()).is_ok());
            assert!(refuse_before_decoding(Signal::Metrics, body, &Limits::default()).is_ok());
        }
    }
}
