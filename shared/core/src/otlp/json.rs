//! The OTLP JSON encoding: serde mirrors of the protobuf messages.
//!
//! OTLP/HTTP JSON is the protobuf JSON mapping with OTLP's own twists: trace and
//! span ids are hex strings (not base64), 64-bit integers may be strings or numbers,
//! enums are integers. The generated prost types carry none of this, so the wire
//! shapes are mirrored here and converted into the prost types by moving fields.
//!
//! Lenient where real clients are sloppy: snake_case keys are accepted beside
//! lowerCamelCase, enums by name beside integers, 64-bit integers as numbers or
//! strings, doubles as `"NaN"`/`"Infinity"`, base64 with or without padding, unknown
//! keys are ignored. Strict where data would be corrupted: an id that is not hex or
//! bytes that are not base64 fail the request with the path to the bad value, and
//! the top-level object must name the signal's own field (`resourceLogs` for logs),
//! so that a payload of the wrong signal is an error rather than an empty request.

use std::fmt;
use std::marker::PhantomData;

use base64::Engine as _;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::metrics::v1 as pm;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
#[cfg(feature = "json-encoder")]
use serde::{Serialize, Serializer};

use super::ExportRequest;
use crate::{Error, Result, Signal};

// ---------------------------------------------------------------------------
// Scalar wire forms.

/// A `fixed64`/`uint64`: a JSON number or a decimal string; written as a string.
#[derive(Debug, Default, Clone, Copy)]
struct U64(u64);
/// An `int64`/`sfixed64`: a JSON number or a decimal string; written as a string.
#[derive(Debug, Default, Clone, Copy)]
struct I64(i64);
/// A `uint32`/`fixed32`: a JSON number (or, leniently, a decimal string).
#[derive(Debug, Default, Clone, Copy)]
struct U32(u32);
/// An `int32`: a JSON number (or, leniently, a decimal string).
#[derive(Debug, Default, Clone, Copy)]
struct I32(i32);
/// A `double`: a JSON number, or `"NaN"`, `"Infinity"`, `"-Infinity"`, or a numeric string.
#[derive(Debug, Default, Clone, Copy)]
struct F64(f64);
/// Trace and span ids: a hex string (OTLP's deviation from the protobuf JSON mapping).
#[derive(Debug, Default, Clone)]
struct HexId(Vec<u8>);
/// `bytes`: base64 (standard or URL-safe alphabet, padding optional).
#[derive(Debug, Default, Clone)]
struct Base64Bytes(Vec<u8>);

struct NumberVisitor<T>(PhantomData<T>, &'static str);

macro_rules! integer_wire_type {
    ($wrapper:ident, $inner:ty, $expecting:literal, $as_string:expr) => {
        impl<'de> Visitor<'de> for NumberVisitor<$wrapper> {
            type Value = $wrapper;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(self.1)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                <$inner>::try_from(v)
                    .map($wrapper)
                    .map_err(|_| E::custom(format!("{v} is out of range for {}", $expecting)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                <$inner>::try_from(v)
                    .map($wrapper)
                    .map_err(|_| E::custom(format!("{v} is out of range for {}", $expecting)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                // Some JSON encoders write every number as a float; accept those that
                // are whole and in range, refuse any that would lose information.
                if v.fract() == 0.0 && v >= <$inner>::MIN as f64 && v <= <$inner>::MAX as f64 {
                    Ok($wrapper(v as $inner))
                } else {
                    Err(E::custom(format!("{v} is not a valid {}", $expecting)))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.trim()
                    .parse::<$inner>()
                    .map($wrapper)
                    .map_err(|_| E::custom(format!("{v:?} is not a valid {}", $expecting)))
            }
        }
        impl<'de> Deserialize<'de> for $wrapper {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(NumberVisitor::<$wrapper>(PhantomData, $expecting))
            }
        }
        #[cfg(feature = "json-encoder")]
        impl Serialize for $wrapper {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let as_string: bool = $as_string;
                if as_string {
                    s.collect_str(&self.0)
                } else {
                    self.0.serialize(s)
                }
            }
        }
    };
}

integer_wire_type!(U64, u64, "an unsigned 64-bit integer", true);
integer_wire_type!(I64, i64, "a signed 64-bit integer", true);
integer_wire_type!(U32, u32, "an unsigned 32-bit integer", false);
integer_wire_type!(I32, i32, "a signed 32-bit integer", false);

impl<'de> Visitor<'de> for NumberVisitor<F64> {
    type Value = F64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<F64, E> {
        Ok(F64(v as f64))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<F64, E> {
        Ok(F64(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<F64, E> {
        Ok(F64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<F64, E> {
        match v {
            "NaN" => Ok(F64(f64::NAN)),
            "Infinity" => Ok(F64(f64::INFINITY)),
            "-Infinity" => Ok(F64(f64::NEG_INFINITY)),
            _ => v
                .trim()
                .parse::<f64>()
                .map(F64)
                .map_err(|_| E::custom(format!("{v:?} is not a valid double"))),
        }
    }
}

impl<'de> Deserialize<'de> for F64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberVisitor::<F64>(PhantomData, "a double"))
    }
}

#[cfg(feature = "json-encoder")]
impl Serialize for F64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            v if v.is_nan() => s.serialize_str("NaN"),
            v if v == f64::INFINITY => s.serialize_str("Infinity"),
            v if v == f64::NEG_INFINITY => s.serialize_str("-Infinity"),
            v => s.serialize_f64(v),
        }
    }
}

struct StrVisitor<F>(F, &'static str);

impl<'de, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'de> for StrVisitor<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

/// Decodes a trace or span id. OTLP says hex, but protobuf's own JSON printers
/// (the proto3 JSON mapping) write `bytes` as base64, and some producers send
/// that. The two are told apart by length alone, and only where the length is
/// unambiguous: 24 base64 characters are 16 bytes (a trace id) and 12 are 8 (a
/// span id), lengths no valid hex id has. Everything else must be hex.
fn decode_id(v: &str) -> Result<Vec<u8>, String> {
    let expected = match v.len() {
        24 => Some(16),
        12 => Some(8),
        _ => None,
    };
    if let Some(bytes) = expected {
        return match decode_base64(v) {
            Ok(id) if id.len() == bytes => Ok(id),
            _ => Err(format!(
                "{v:?} is neither a hex id nor a base64 id of {bytes} bytes"
            )),
        };
    }
    hex::decode(v).map_err(|e| format!("{v:?} is not a hex id: {e}"))
}

impl<'de> Deserialize<'de> for HexId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(
            |v: &str| decode_id(v).map(HexId),
            "a hex-encoded (or, for 8- and 16-byte ids, base64-encoded) id",
        ))
    }
}

#[cfg(feature = "json-encoder")]
impl Serialize for HexId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

/// Base64 as real encoders write it: standard or URL-safe alphabet, padded or not.
pub(crate) fn decode_base64(v: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
    STANDARD
        .decode(v)
        .or_else(|e| URL_SAFE.decode(v).map_err(|_| e))
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor(
            |v: &str| {
                decode_base64(v)
                    .map(Base64Bytes)
                    .map_err(|e| format!("invalid base64: {e}"))
            },
            "base64-encoded bytes",
        ))
    }
}

#[cfg(feature = "json-encoder")]
impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

/// An OTLP enum: its integer, or (leniently) its protobuf name.
#[derive(Debug, Default, Clone, Copy)]
struct Enum<E>(i32, PhantomData<E>);

trait ProtoEnum {
    const NAME: &'static str;
    fn from_name(name: &str) -> Option<i32>;
}

macro_rules! proto_enum {
    ($marker:ident, $ty:ty, $name:literal) => {
        #[derive(Debug, Default, Clone, Copy)]
        struct $marker;
        impl ProtoEnum for $marker {
            const NAME: &'static str = $name;
            fn from_name(name: &str) -> Option<i32> {
                <$ty>::from_str_name(name).map(|v| v as i32)
            }
        }
    };
}

proto_enum!(SeverityNumber, pl::SeverityNumber, "SeverityNumber");
proto_enum!(SpanKind, pt::span::SpanKind, "SpanKind");
proto_enum!(StatusCode, pt::status::StatusCode, "StatusCode");
proto_enum!(
    AggregationTemporality,
    pm::AggregationTemporality,
    "AggregationTemporality"
);

impl<'de, E: ProtoEnum> Visitor<'de> for NumberVisitor<Enum<E>> {
    type Value = Enum<E>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a {} (integer or name)", E::NAME)
    }
    fn visit_u64<Er: de::Error>(self, v: u64) -> Result<Self::Value, Er> {
        i32::try_from(v)
            .map(|v| Enum(v, PhantomData))
            .map_err(|_| Er::custom(format!("{v} is not a {}", E::NAME)))
    }
    fn visit_i64<Er: de::Error>(self, v: i64) -> Result<Self::Value, Er> {
        i32::try_from(v)
            .map(|v| Enum(v, PhantomData))
            .map_err(|_| Er::custom(format!("{v} is not a {}", E::NAME)))
    }
    fn visit_str<Er: de::Error>(self, v: &str) -> Result<Self::Value, Er> {
        E::from_name(v)
            .or_else(|| v.parse().ok())
            .map(|v| Enum(v, PhantomData))
            .ok_or_else(|| Er::custom(format!("{v:?} is not a {} name", E::NAME)))
    }
}

impl<'de, E: ProtoEnum> Deserialize<'de> for Enum<E> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberVisitor::<Enum<E>>(PhantomData, ""))
    }
}

#[cfg(feature = "json-encoder")]
impl<E> Serialize for Enum<E> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(self.0)
    }
}

impl<E> From<i32> for Enum<E> {
    fn from(v: i32) -> Self {
        Enum(v, PhantomData)
    }
}

// ---------------------------------------------------------------------------
// Messages. Field names are lowerCamelCase on the wire; the snake_case aliases
// accept what hand-written and some older clients send.

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct AnyValue {
    #[serde(alias = "string_value", skip_serializing_if = "Option::is_none")]
    string_value: Option<String>,
    #[serde(alias = "bool_value", skip_serializing_if = "Option::is_none")]
    bool_value: Option<bool>,
    #[serde(alias = "int_value", skip_serializing_if = "Option::is_none")]
    int_value: Option<I64>,
    #[serde(alias = "double_value", skip_serializing_if = "Option::is_none")]
    double_value: Option<F64>,
    #[serde(alias = "array_value", skip_serializing_if = "Option::is_none")]
    array_value: Option<ArrayValue>,
    #[serde(alias = "kvlist_value", skip_serializing_if = "Option::is_none")]
    kvlist_value: Option<KeyValueList>,
    #[serde(alias = "bytes_value", skip_serializing_if = "Option::is_none")]
    bytes_value: Option<Base64Bytes>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(default)]
struct ArrayValue {
    values: Vec<AnyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(default)]
struct KeyValueList {
    values: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(default)]
struct KeyValue {
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<AnyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct Resource {
    attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: U32,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct InstrumentationScope {
    name: String,
    version: String,
    attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: U32,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct LogsRequest {
    #[serde(alias = "resource_logs")]
    resource_logs: Vec<ResourceLogs>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct ResourceLogs {
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<Resource>,
    #[serde(alias = "scope_logs")]
    scope_logs: Vec<ScopeLogs>,
    #[serde(alias = "schema_url")]
    schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct ScopeLogs {
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<InstrumentationScope>,
    #[serde(alias = "log_records")]
    log_records: Vec<LogRecord>,
    #[serde(alias = "schema_url")]
    schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct LogRecord {
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: U64,
    #[serde(alias = "observed_time_unix_nano")]
    observed_time_unix_nano: U64,
    #[serde(alias = "severity_number")]
    severity_number: Enum<SeverityNumber>,
    #[serde(alias = "severity_text")]
    severity_text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<AnyValue>,
    attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: U32,
    flags: U32,
    #[serde(alias = "trace_id")]
    trace_id: HexId,
    #[serde(alias = "span_id")]
    span_id: HexId,
    #[serde(alias = "event_name")]
    event_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct TracesRequest {
    #[serde(alias = "resource_spans")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct ResourceSpans {
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<Resource>,
    #[serde(alias = "scope_spans")]
    scope_spans: Vec<ScopeSpans>,
    #[serde(alias = "schema_url")]
    schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct ScopeSpans {
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<InstrumentationScope>,
    spans: Vec<Span>,
    #[serde(alias = "schema_url")]
    schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct Span {
    #[serde(alias = "trace_id")]
    trace_id: HexId,
    #[serde(alias = "span_id")]
    span_id: HexId,
    #[serde(alias = "trace_state")]
    trace_state: String,
    #[serde(alias = "parent_span_id")]
    parent_span_id: HexId,
    flags: U32,
    name: String,
    kind: Enum<SpanKind>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: U64,
    #[serde(alias = "end_time_unix_nano")]
    end_time_unix_nano: U64,
    attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: U32,
    events: Vec<Event>,
    #[serde(alias = "dropped_events_count")]
    dropped_events_count: U32,
    links: Vec<Link>,
    #[serde(alias = "dropped_links_count")]
    dropped_links_count: U32,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct Event {
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: U64,
    name: String,
    attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: U32,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct Link {
    #[serde(alias = "trace_id")]
    trace_id: HexId,
    #[serde(alias = "span_id")]
    span_id: HexId,
    #[serde(alias = "trace_state")]
    trace_state: String,
    attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count")]
    dropped_attributes_count: U32,
    flags: U32,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(default)]
struct Status {
    message: String,
    code: Enum<StatusCode>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct MetricsRequest {
    #[serde(alias = "resource_metrics")]
    resource_metrics: Vec<ResourceMetrics>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct ResourceMetrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<Resource>,
    #[serde(alias = "scope_metrics")]
    scope_metrics: Vec<ScopeMetrics>,
    #[serde(alias = "schema_url")]
    schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct ScopeMetrics {
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<InstrumentationScope>,
    metrics: Vec<Metric>,
    #[serde(alias = "schema_url")]
    schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct Metric {
    name: String,
    description: String,
    unit: String,
    metadata: Vec<KeyValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gauge: Option<Gauge>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sum: Option<Sum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    histogram: Option<Histogram>,
    #[serde(
        alias = "exponential_histogram",
        skip_serializing_if = "Option::is_none"
    )]
    exponential_histogram: Option<ExponentialHistogram>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<Summary>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct Gauge {
    #[serde(alias = "data_points")]
    data_points: Vec<NumberDataPoint>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct Sum {
    #[serde(alias = "data_points")]
    data_points: Vec<NumberDataPoint>,
    #[serde(alias = "aggregation_temporality")]
    aggregation_temporality: Enum<AggregationTemporality>,
    #[serde(alias = "is_monotonic")]
    is_monotonic: bool,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct Histogram {
    #[serde(alias = "data_points")]
    data_points: Vec<HistogramDataPoint>,
    #[serde(alias = "aggregation_temporality")]
    aggregation_temporality: Enum<AggregationTemporality>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct ExponentialHistogram {
    #[serde(alias = "data_points")]
    data_points: Vec<ExponentialHistogramDataPoint>,
    #[serde(alias = "aggregation_temporality")]
    aggregation_temporality: Enum<AggregationTemporality>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct Summary {
    #[serde(alias = "data_points")]
    data_points: Vec<SummaryDataPoint>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct NumberDataPoint {
    attributes: Vec<KeyValue>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: U64,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: U64,
    #[serde(alias = "as_double", skip_serializing_if = "Option::is_none")]
    as_double: Option<F64>,
    #[serde(alias = "as_int", skip_serializing_if = "Option::is_none")]
    as_int: Option<I64>,
    exemplars: Vec<Exemplar>,
    flags: U32,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct HistogramDataPoint {
    attributes: Vec<KeyValue>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: U64,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: U64,
    count: U64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sum: Option<F64>,
    #[serde(alias = "bucket_counts")]
    bucket_counts: Vec<U64>,
    #[serde(alias = "explicit_bounds")]
    explicit_bounds: Vec<F64>,
    exemplars: Vec<Exemplar>,
    flags: U32,
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<F64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<F64>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct ExponentialHistogramDataPoint {
    attributes: Vec<KeyValue>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: U64,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: U64,
    count: U64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sum: Option<F64>,
    scale: I32,
    #[serde(alias = "zero_count")]
    zero_count: U64,
    #[serde(skip_serializing_if = "Option::is_none")]
    positive: Option<Buckets>,
    #[serde(skip_serializing_if = "Option::is_none")]
    negative: Option<Buckets>,
    flags: U32,
    exemplars: Vec<Exemplar>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<F64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<F64>,
    #[serde(alias = "zero_threshold")]
    zero_threshold: F64,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct Buckets {
    offset: I32,
    #[serde(alias = "bucket_counts")]
    bucket_counts: Vec<U64>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct SummaryDataPoint {
    attributes: Vec<KeyValue>,
    #[serde(alias = "start_time_unix_nano")]
    start_time_unix_nano: U64,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: U64,
    count: U64,
    sum: F64,
    #[serde(alias = "quantile_values")]
    quantile_values: Vec<ValueAtQuantile>,
    flags: U32,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(default)]
struct ValueAtQuantile {
    quantile: F64,
    value: F64,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "json-encoder", derive(Serialize))]
#[serde(rename_all = "camelCase", default)]
struct Exemplar {
    #[serde(alias = "filtered_attributes")]
    filtered_attributes: Vec<KeyValue>,
    #[serde(alias = "time_unix_nano")]
    time_unix_nano: U64,
    #[serde(alias = "as_double", skip_serializing_if = "Option::is_none")]
    as_double: Option<F64>,
    #[serde(alias = "as_int", skip_serializing_if = "Option::is_none")]
    as_int: Option<I64>,
    #[serde(alias = "span_id")]
    span_id: HexId,
    #[serde(alias = "trace_id")]
    trace_id: HexId,
}

// ---------------------------------------------------------------------------
// Decoding: JSON -> mirror -> prost.

fn parse<T: DeserializeOwned>(signal: Signal, body: &[u8]) -> Result<T> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        // The fast path keeps no path; on failure, parse again to say where it went wrong.
        Err(_) => {
            let mut de = serde_json::Deserializer::from_slice(body);
            match serde_path_to_error::deserialize::<_, T>(&mut de) {
                Ok(v) => Ok(v),
                Err(e) => {
                    let path = e.path().to_string();
                    Err(Error::InvalidJson {
                        signal,
                        // serde_path_to_error says "." for the root and "?" before it
                        // has entered any value; both mean the document itself.
                        path: if path == "." || path == "?" {
                            "$".to_string()
                        } else {
                            path
                        },
                        message: e.into_inner().to_string(),
                    })
                }
            }
        }
    }
}

pub(super) fn decode(signal: Signal, body: &[u8]) -> Result<ExportRequest> {
    // serde lets a struct be written as a JSON array of its fields; an export
    // request written as `[...]` is a client bug, not a request to accept.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|&b| b != b'{') {
        return Err(Error::InvalidJson {
            signal,
            path: "$".to_string(),
            message: "an export request must be a JSON object".to_string(),
        });
    }
    Ok(match signal {
        Signal::Logs => ExportRequest::Logs(parse::<LogsRequest>(signal, body)?.into()),
        Signal::Traces => ExportRequest::Traces(parse::<TracesRequest>(signal, body)?.into()),
        Signal::Metrics => ExportRequest::Metrics(parse::<MetricsRequest>(signal, body)?.into()),
    })
}

fn vec_into<A, B: From<A>>(v: Vec<A>) -> Vec<B> {
    v.into_iter().map(B::from).collect()
}

#[cfg(feature = "json-encoder")]
fn vec_from<'a, A: 'a, B: From<&'a A>>(v: &'a [A]) -> Vec<B> {
    v.iter().map(B::from).collect()
}

impl From<AnyValue> for pc::AnyValue {
    fn from(v: AnyValue) -> Self {
        use pc::any_value::Value;
        let value = if let Some(s) = v.string_value {
            Some(Value::StringValue(s))
        } else if let Some(b) = v.bool_value {
            Some(Value::BoolValue(b))
        } else if let Some(i) = v.int_value {
            Some(Value::IntValue(i.0))
        } else if let Some(d) = v.double_value {
            Some(Value::DoubleValue(d.0))
        } else if let Some(a) = v.array_value {
            Some(Value::ArrayValue(pc::ArrayValue {
                values: vec_into(a.values),
            }))
        } else if let Some(kv) = v.kvlist_value {
            Some(Value::KvlistValue(pc::KeyValueList {
                values: vec_into(kv.values),
            }))
        } else {
            v.bytes_value.map(|b| Value::BytesValue(b.0))
        };
        pc::AnyValue { value }
    }
}

#[cfg(feature = "json-encoder")]
impl From<&pc::AnyValue> for AnyValue {
    fn from(v: &pc::AnyValue) -> Self {
        use pc::any_value::Value;
        let mut out = AnyValue::default();
        match &v.value {
            Some(Value::StringValue(s)) => out.string_value = Some(s.clone()),
            Some(Value::BoolValue(b)) => out.bool_value = Some(*b),
            Some(Value::IntValue(i)) => out.int_value = Some(I64(*i)),
            Some(Value::DoubleValue(d)) => out.double_value = Some(F64(*d)),
            Some(Value::ArrayValue(a)) => {
                out.array_value = Some(ArrayValue {
                    values: vec_from(&a.values),
                })
            }
            Some(Value::KvlistValue(kv)) => {
                out.kvlist_value = Some(KeyValueList {
                    values: vec_from(&kv.values),
                })
            }
            Some(Value::BytesValue(b)) => out.bytes_value = Some(Base64Bytes(b.clone())),
            // A string-table index only means something inside a profiles message.
            Some(Value::StringValueStrindex(_)) | None => {}
        }
        out
    }
}

impl From<KeyValue> for pc::KeyValue {
    fn from(kv: KeyValue) -> Self {
        pc::KeyValue {
            key: kv.key,
            value: kv.value.map(Into::into),
            ..Default::default()
        }
    }
}

#[cfg(feature = "json-encoder")]
impl From<&pc::KeyValue> for KeyValue {
    fn from(kv: &pc::KeyValue) -> Self {
        KeyValue {
            key: kv.key.clone(),
            value: kv.value.as_ref().map(Into::into),
        }
    }
}

impl From<Resource> for pr::Resource {
    fn from(r: Resource) -> Self {
        pr::Resource {
            attributes: vec_into(r.attributes),
            dropped_attributes_count: r.dropped_attributes_count.0,
            ..Default::default()
        }
    }
}

#[cfg(feature = "json-encoder")]
impl From<&pr::Resource> for Resource {
    fn from(r: &pr::Resource) -> Self {
        Resource {
            attributes: vec_from(&r.attributes),
            dropped_attributes_count: U32(r.dropped_attributes_count),
        }
    }
}

impl From<InstrumentationScope> for pc::InstrumentationScope {
    fn from(s: InstrumentationScope) -> Self {
        pc::InstrumentationScope {
            name: s.name,
            version: s.version,
            attributes: vec_into(s.attributes),
            dropped_attributes_count: s.dropped_attributes_count.0,
        }
    }
}

#[cfg(feature = "json-encoder")]
impl From<&pc::InstrumentationScope> for InstrumentationScope {
    fn from(s: &pc::InstrumentationScope) -> Self {
        InstrumentationScope {
            name: s.name.clone(),
            version: s.version.clone(),
            attributes: vec_from(&s.attributes),
            dropped_attributes_count: U32(s.dropped_attributes_count),
        }
    }
}

impl From<LogsRequest> for ExportLogsServiceRequest {
    fn from(r: LogsRequest) -> Self {
        ExportLogsServiceRequest {
            resource_logs: r
                .resource_logs
                .into_iter()
                .map(|rl| pl::ResourceLogs {
                    resource: rl.resource.map(Into::into),
                    schema_url: rl.schema_url,
                    scope_logs: rl
                        .scope_logs
                        .into_iter()
                        .map(|sl| pl::ScopeLogs {
                            scope: sl.scope.map(Into::into),
                            schema_url: sl.schema_url,
                            log_records: vec_into(sl.log_records),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl From<LogRecord> for pl::LogRecord {
    fn from(l: LogRecord) -> Self {
        pl::LogRecord {
            time_unix_nano: l.time_unix_nano.0,
            observed_time_unix_nano: l.observed_time_unix_nano.0,
            severity_number: l.severity_number.0,
            severity_text: l.severity_text,
            body: l.body.map(Into::into),
            attributes: vec_into(l.attributes),
            dropped_attributes_count: l.dropped_attributes_count.0,
            flags: l.flags.0,
            trace_id: l.trace_id.0,
            span_id: l.span_id.0,
            event_name: l.event_name,
        }
    }
}

#[cfg(feature = "json-encoder")]
impl From<&pl::LogRecord> for LogRecord {
    fn from(l: &pl::LogRecord) -> Self {
        LogRecord {
            time_unix_nano: U64(l.time_unix_nano),
            observed_time_unix_nano: U64(l.observed_time_unix_nano),
            severity_number: l.severity_number.into(),
            severity_text: l.severity_text.clone(),
            body: l.body.as_ref().map(Into::into),
            attributes: vec_from(&l.attributes),
            dropped_attributes_count: U32(l.dropped_attributes_count),
            flags: U32(l.flags),
            trace_id: HexId(l.trace_id.clone()),
            span_id: HexId(l.span_id.clone()),
            event_name: l.event_name.clone(),
        }
    }
}

impl From<TracesRequest> for ExportTraceServiceRequest {
    fn from(r: TracesRequest) -> Self {
        ExportTraceServiceRequest {
            resource_spans: r
                .resource_spans
                .into_iter()
                .map(|rs| pt::ResourceSpans {
                    resource: rs.resource.map(Into::into),
                    schema_url: rs.schema_url,
                    scope_spans: rs
                        .scope_spans
                        .into_iter()
                        .map(|ss| pt::ScopeSpans {
                            scope: ss.scope.map(Into::into),
                            schema_url: ss.schema_url,
                            spans: vec_into(ss.spans),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl From<Span> for pt::Span {
    fn from(s: Span) -> Self {
        pt::Span {
            trace_id: s.trace_id.0,
            span_id: s.span_id.0,
            trace_state: s.trace_state,
            parent_span_id: s.parent_span_id.0,
            flags: s.flags.0,
            name: s.name,
            kind: s.kind.0,
            start_time_unix_nano: s.start_time_unix_nano.0,
            end_time_unix_nano: s.end_time_unix_nano.0,
            attributes: vec_into(s.attributes),
            dropped_attributes_count: s.dropped_attributes_count.0,
            events: s
                .events
                .into_iter()
                .map(|e| pt::span::Event {
                    time_unix_nano: e.time_unix_nano.0,
                    name: e.name,
                    attributes: vec_into(e.attributes),
                    dropped_attributes_count: e.dropped_attributes_count.0,
                })
                .collect(),
            dropped_events_count: s.dropped_events_count.0,
            links: s
                .links
                .into_iter()
                .map(|l| pt::span::Link {
                    trace_id: l.trace_id.0,
                    span_id: l.span_id.0,
                    trace_state: l.trace_state,
                    attributes: vec_into(l.attributes),
                    dropped_attributes_count: l.dropped_attributes_count.0,
                    flags: l.flags.0,
                })
                .collect(),
            dropped_links_count: s.dropped_links_count.0,
            status: s.status.map(|st| pt::Status {
                message: st.message,
                code: st.code.0,
            }),
        }
    }
}

#[cfg(feature = "json-encoder")]
impl From<&pt::Span> for Span {
    fn from(s: &pt::Span) -> Self {
        Span {
            trace_id: HexId(s.trace_id.clone()),
            span_id: HexId(s.span_id.clone()),
            trace_state: s.trace_state.clone(),
            parent_span_id: HexId(s.parent_span_id.clone()),
            flags: U32(s.flags),
            name: s.name.clone(),
            kind: s.kind.into(),
            start_time_unix_nano: U64(s.start_time_unix_nano),
            end_time_unix_nano: U64(s.end_time_unix_nano),
            attributes: vec_from(&s.attributes),
            dropped_attributes_count: U32(s.dropped_attributes_count),
            events: s
                .events
                .iter()
                .map(|e| Event {
                    time_unix_nano: U64(e.time_unix_nano),
                    name: e.name.clone(),
                    attributes: vec_from(&e.attributes),
                    dropped_attributes_count: U32(e.dropped_attributes_count),
                })
                .collect(),
            dropped_events_count: U32(s.dropped_events_count),
            links: s
                .links
                .iter()
                .map(|l| Link {
                    trace_id: HexId(l.trace_id.clone()),
                    span_id: HexId(l.span_id.clone()),
                    trace_state: l.trace_state.clone(),
                    attributes: vec_from(&l.attributes),
                    dropped_attributes_count: U32(l.dropped_attributes_count),
                    flags: U32(l.flags),
                })
                .collect(),
            dropped_links_count: U32(s.dropped_links_count),
            status: s.status.as_ref().map(|st| Status {
                message: st.message.clone(),
                code: st.code.into(),
            }),
        }
    }
}

impl From<MetricsRequest> for ExportMetricsServiceRequest {
    fn from(r: MetricsRequest) -> Self {
        ExportMetricsServiceRequest {
            resource_metrics: r
                .resource_metrics
                .into_iter()
                .map(|rm| pm::ResourceMetrics {
                    resource: rm.resource.map(Into::into),
                    schema_url: rm.schema_url,
                    scope_metrics: rm
                        .scope_metrics
                        .into_iter()
                        .map(|sm| pm::ScopeMetrics {
                            scope: sm.scope.map(Into::into),
                            schema_url: sm.schema_url,
                            metrics: vec_into(sm.metrics),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

fn number_value(
    as_double: Option<F64>,
    as_int: Option<I64>,
) -> Option<pm::number_data_point::Value> {
    use pm::number_data_point::Value;
    as_double
        .map(|d| Value::AsDouble(d.0))
        .or(as_int.map(|i| Value::AsInt(i.0)))
}

fn buckets(b: Option<Buckets>) -> Option<pm::exponential_histogram_data_point::Buckets> {
    b.map(|b| pm::exponential_histogram_data_point::Buckets {
        offset: b.offset.0,
        bucket_counts: b.bucket_counts.into_iter().map(|c| c.0).collect(),
    })
}

impl From<Metric> for pm::Metric {
    fn from(m: Metric) -> Self {
        use pm::metric::Data;
        // The protobuf `data` is a oneof; a JSON object naming several is malformed,
        // and the first in declaration order wins, as in the protobuf JSON parsers.
        let data = if let Some(g) = m.gauge {
            Some(Data::Gauge(pm::Gauge {
                data_points: vec_into(g.data_points),
            }))
        } else if let Some(s) = m.sum {
            Some(Data::Sum(pm::Sum {
                data_points: vec_into(s.data_points),
                aggregation_temporality: s.aggregation_temporality.0,
                is_monotonic: s.is_monotonic,
            }))
        } else if let Some(h) = m.histogram {
            Some(Data::Histogram(pm::Histogram {
                data_points: vec_into(h.data_points),
                aggregation_temporality: h.aggregation_temporality.0,
            }))
        } else if let Some(h) = m.exponential_histogram {
            Some(Data::ExponentialHistogram(pm::ExponentialHistogram {
                data_points: vec_into(h.data_points),
                aggregation_temporality: h.aggregation_temporality.0,
            }))
        } else {
            m.summary.map(|s| {
                Data::Summary(pm::Summary {
                    data_points: vec_into(s.data_points),
                })
            })
        };
        pm::Metric {
            name: m.name,
            description: m.description,
            unit: m.unit,
            metadata: vec_into(m.metadata),
            data,
        }
    }
}

impl From<NumberDataPoint> for pm::NumberDataPoint {
    fn from(p: NumberDataPoint) -> Self {
        pm::NumberDataPoint {
            attributes: vec_into(p.attributes),
            start_time_unix_nano: p.start_time_unix_nano.0,
            time_unix_nano: p.time_unix_nano.0,
            exemplars: vec_into(p.exemplars),
            flags: p.flags.0,
            value: number_value(p.as_double, p.as_int),
        }
    }
}

impl From<HistogramDataPoint> for pm::HistogramDataPoint {
    fn from(p: HistogramDataPoint) -> Self {
        pm::HistogramDataPoint {
            attributes: vec_into(p.attributes),
            start_time_unix_nano: p.start_time_unix_nano.0,
            time_unix_nano: p.time_unix_nano.0,
            count: p.count.0,
            sum: p.sum.map(|s| s.0),
            bucket_counts: p.bucket_counts.into_iter().map(|c| c.0).collect(),
            explicit_bounds: p.explicit_bounds.into_iter().map(|b| b.0).collect(),
            exemplars: vec_into(p.exemplars),
            flags: p.flags.0,
            min: p.min.map(|m| m.0),
            max: p.max.map(|m| m.0),
        }
    }
}

impl From<ExponentialHistogramDataPoint> for pm::ExponentialHistogramDataPoint {
    fn from(p: ExponentialHistogramDataPoint) -> Self {
        pm::ExponentialHistogramDataPoint {
            attributes: vec_into(p.attributes),
            start_time_unix_nano: p.start_time_unix_nano.0,
            time_unix_nano: p.time_unix_nano.0,
            count: p.count.0,
            sum: p.sum.map(|s| s.0),
            scale: p.scale.0,
            zero_count: p.zero_count.0,
            positive: buckets(p.positive),
            negative: buckets(p.negative),
            flags: p.flags.0,
            exemplars: vec_into(p.exemplars),
            min: p.min.map(|m| m.0),
            max: p.max.map(|m| m.0),
            zero_threshold: p.zero_threshold.0,
        }
    }
}

impl From<SummaryDataPoint> for pm::SummaryDataPoint {
    fn from(p: SummaryDataPoint) -> Self {
        pm::SummaryDataPoint {
            attributes: vec_into(p.attributes),
            start_time_unix_nano: p.start_time_unix_nano.0,
            time_unix_nano: p.time_unix_nano.0,
            count: p.count.0,
            sum: p.sum.0,
            quantile_values: p
                .quantile_values
                .into_iter()
                .map(|q| pm::summary_data_point::ValueAtQuantile {
                    quantile: q.quantile.0,
                    value: q.value.0,
                })
                .collect(),
            flags: p.flags.0,
        }
    }
}

impl From<Exemplar> for pm::Exemplar {
    fn from(e: Exemplar) -> Self {
        use pm::exemplar::Value;
        pm::Exemplar {
            filtered_attributes: vec_into(e.filtered_attributes),
            time_unix_nano: e.time_unix_nano.0,
            span_id: e.span_id.0,
            trace_id: e.trace_id.0,
            value: e
                .as_double
                .map(|d| Value::AsDouble(d.0))
                .or(e.as_int.map(|i| Value::AsInt(i.0))),
        }
    }
}

#[cfg(feature = "json-encoder")]
impl From<&pm::Exemplar> for Exemplar {
    fn from(e: &pm::Exemplar) -> Self {
        use pm::exemplar::Value;
        Exemplar {
            filtered_attributes: vec_from(&e.filtered_attributes),
            time_unix_nano: U64(e.time_unix_nano),
            as_double: match e.value {
                Some(Value::AsDouble(d)) => Some(F64(d)),
                _ => None,
            },
            as_int: match e.value {
                Some(Value::AsInt(i)) => Some(I64(i)),
                _ => None,
            },
            span_id: HexId(e.span_id.clone()),
            trace_id: HexId(e.trace_id.clone()),
        }
    }
}

#[cfg(feature = "json-encoder")]
fn number_points(points: &[pm::NumberDataPoint]) -> Vec<NumberDataPoint> {
    use pm::number_data_point::Value;
    points
        .iter()
        .map(|p| NumberDataPoint {
            attributes: vec_from(&p.attributes),
            start_time_unix_nano: U64(p.start_time_unix_nano),
            time_unix_nano: U64(p.time_unix_nano),
            as_double: match p.value {
                Some(Value::AsDouble(d)) => Some(F64(d)),
                _ => None,
            },
            as_int: match p.value {
                Some(Value::AsInt(i)) => Some(I64(i)),
                _ => None,
            },
            exemplars: vec_from(&p.exemplars),
            flags: U32(p.flags),
        })
        .collect()
}

#[cfg(feature = "json-encoder")]
fn json_buckets(b: &Option<pm::exponential_histogram_data_point::Buckets>) -> Option<Buckets> {
    b.as_ref().map(|b| Buckets {
        offset: I32(b.offset),
        bucket_counts: b.bucket_counts.iter().map(|&c| U64(c)).collect(),
    })
}

#[cfg(feature = "json-encoder")]
impl From<&pm::Metric> for Metric {
    fn from(m: &pm::Metric) -> Self {
        use pm::metric::Data;
        let mut out = Metric {
            name: m.name.clone(),
            description: m.description.clone(),
            unit: m.unit.clone(),
            metadata: vec_from(&m.metadata),
            ..Default::default()
        };
        match &m.data {
            Some(Data::Gauge(g)) => {
                out.gauge = Some(Gauge {
                    data_points: number_points(&g.data_points),
                })
            }
            Some(Data::Sum(s)) => {
                out.sum = Some(Sum {
                    data_points: number_points(&s.data_points),
                    aggregation_temporality: s.aggregation_temporality.into(),
                    is_monotonic: s.is_monotonic,
                })
            }
            Some(Data::Histogram(h)) => {
                out.histogram = Some(Histogram {
                    aggregation_temporality: h.aggregation_temporality.into(),
                    data_points: h
                        .data_points
                        .iter()
                        .map(|p| HistogramDataPoint {
                            attributes: vec_from(&p.attributes),
                            start_time_unix_nano: U64(p.start_time_unix_nano),
                            time_unix_nano: U64(p.time_unix_nano),
                            count: U64(p.count),
                            sum: p.sum.map(F64),
                            bucket_counts: p.bucket_counts.iter().map(|&c| U64(c)).collect(),
                            explicit_bounds: p.explicit_bounds.iter().map(|&b| F64(b)).collect(),
                            exemplars: vec_from(&p.exemplars),
                            flags: U32(p.flags),
                            min: p.min.map(F64),
                            max: p.max.map(F64),
                        })
                        .collect(),
                })
            }
            Some(Data::ExponentialHistogram(h)) => {
                out.exponential_histogram = Some(ExponentialHistogram {
                    aggregation_temporality: h.aggregation_temporality.into(),
                    data_points: h
                        .data_points
                        .iter()
                        .map(|p| ExponentialHistogramDataPoint {
                            attributes: vec_from(&p.attributes),
                            start_time_unix_nano: U64(p.start_time_unix_nano),
                            time_unix_nano: U64(p.time_unix_nano),
                            count: U64(p.count),
                            sum: p.sum.map(F64),
                            scale: I32(p.scale),
                            zero_count: U64(p.zero_count),
                            positive: json_buckets(&p.positive),
                            negative: json_buckets(&p.negative),
                            flags: U32(p.flags),
                            exemplars: vec_from(&p.exemplars),
                            min: p.min.map(F64),
                            max: p.max.map(F64),
                            zero_threshold: F64(p.zero_threshold),
                        })
                        .collect(),
                })
            }
            Some(Data::Summary(s)) => {
                out.summary = Some(Summary {
                    data_points: s
                        .data_points
                        .iter()
                        .map(|p| SummaryDataPoint {
                            attributes: vec_from(&p.attributes),
                            start_time_unix_nano: U64(p.start_time_unix_nano),
                            time_unix_nano: U64(p.time_unix_nano),
                            count: U64(p.count),
                            sum: F64(p.sum),
                            quantile_values: p
                                .quantile_values
                                .iter()
                                .map(|q| ValueAtQuantile {
                                    quantile: F64(q.quantile),
                                    value: F64(q.value),
                                })
                                .collect(),
                            flags: U32(p.flags),
                        })
                        .collect(),
                })
            }
            None => {}
        }
        out
    }
}

// ---------------------------------------------------------------------------
// Encoding: prost -> mirror -> JSON.

#[cfg(feature = "json-encoder")]
pub(super) fn encode(request: &ExportRequest) -> Vec<u8> {
    let result = match request {
        ExportRequest::Logs(r) => serde_json::to_vec(&LogsRequest {
            resource_logs: r
                .resource_logs
                .iter()
                .map(|rl| ResourceLogs {
                    resource: rl.resource.as_ref().map(Into::into),
                    schema_url: rl.schema_url.clone(),
                    scope_logs: rl
                        .scope_logs
                        .iter()
                        .map(|sl| ScopeLogs {
                            scope: sl.scope.as_ref().map(Into::into),
                            schema_url: sl.schema_url.clone(),
                            log_records: vec_from(&sl.log_records),
                        })
                        .collect(),
                })
                .collect(),
        }),
        ExportRequest::Traces(r) => serde_json::to_vec(&TracesRequest {
            resource_spans: r
                .resource_spans
                .iter()
                .map(|rs| ResourceSpans {
                    resource: rs.resource.as_ref().map(Into::into),
                    schema_url: rs.schema_url.clone(),
                    scope_spans: rs
                        .scope_spans
                        .iter()
                        .map(|ss| ScopeSpans {
                            scope: ss.scope.as_ref().map(Into::into),
                            schema_url: ss.schema_url.clone(),
                            spans: vec_from(&ss.spans),
                        })
                        .collect(),
                })
                .collect(),
        }),
        ExportRequest::Metrics(r) => serde_json::to_vec(&MetricsRequest {
            resource_metrics: r
                .resource_metrics
                .iter()
                .map(|rm| ResourceMetrics {
                    resource: rm.resource.as_ref().map(Into::into),
                    schema_url: rm.schema_url.clone(),
                    scope_metrics: rm
                        .scope_metrics
                        .iter()
                        .map(|sm| ScopeMetrics {
                            scope: sm.scope.as_ref().map(Into::into),
                            schema_url: sm.schema_url.clone(),
                            metrics: vec_from(&sm.metrics),
                        })
                        .collect(),
                })
                .collect(),
        }),
    };
    // Serializing these plain structs into memory cannot fail: every map key is a
    // string and every custom Serialize impl writes a scalar.
    result.expect("OTLP JSON serialization into memory is infallible")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(body: &str) -> Result<ExportLogsServiceRequest> {
        match decode(Signal::Logs, body.as_bytes())? {
            ExportRequest::Logs(r) => Ok(r),
            _ => unreachable!(),
        }
    }

    #[test]
    fn spec_example_shape() {
        let r = logs(
            r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeLogs":[{"scope":{"name":"s","version":"1"},"logRecords":[{"timeUnixNano":"1544712660300000000",
            "observedTimeUnixNano":1544712660300000001,"severityNumber":10,"severityText":"Information",
            "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
            "body":{"stringValue":"Example log record"},
            "attributes":[{"key":"int","value":{"intValue":"-42"}},{"key":"d","value":{"doubleValue":"NaN"}},
            {"key":"b","value":{"bytesValue":"aGk"}}]}]}]}]}"#,
        )
        .unwrap();
        let rec = &r.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.time_unix_nano, 1544712660300000000);
        assert_eq!(rec.observed_time_unix_nano, 1544712660300000001);
        assert_eq!(rec.severity_number, 10);
        assert_eq!(
            hex::encode(&rec.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(rec.span_id.len(), 8);
        use pc::any_value::Value;
        assert_eq!(
            rec.attributes[0].value.as_ref().unwrap().value,
            Some(Value::IntValue(-42))
        );
        assert!(
            matches!(rec.attributes[1].value.as_ref().unwrap().value, Some(Value::DoubleValue(d)) if d.is_nan())
        );
        assert_eq!(
            rec.attributes[2].value.as_ref().unwrap().value,
            Some(Value::BytesValue(b"hi".to_vec()))
        );
    }

    #[test]
    fn snake_case_keys_and_enum_names_are_accepted() {
        let r = logs(
            r#"{"resource_logs":[{"scope_logs":[{"log_records":[{"time_unix_nano":5,"severity_number":"SEVERITY_NUMBER_WARN"}]}]}]}"#,
        )
        .unwrap();
        let rec = &r.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.time_unix_nano, 5);
        assert_eq!(rec.severity_number, 13);
    }

    #[test]
    fn errors_say_where() {
        let err =
            logs(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{},{"traceId":"zz"}]}]}]}"#)
                .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("resourceLogs[0].scopeLogs[0].logRecords[1].traceId"),
            "{text}"
        );

        let err = logs(r#"{"resourceSpans":[]}"#).unwrap_err();
        assert!(err.to_string().contains("resourceSpans"), "{err}");

        let err =
            logs(r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"-1"}]}]}]}"#)
                .unwrap_err();
        assert!(err.to_string().contains("timeUnixNano"), "{err}");

        let err = logs(
            r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"LOUD"}]}]}]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("severityNumber"), "{err}");
    }

    // Ids in base64 (protobuf's JSON printers write bytes so) are accepted at
    // the lengths only base64 ids have; every other string must be hex.
    #[test]
    fn ids_in_hex_or_unambiguous_base64() {
        let trace = hex::decode("5b8efff798038103d269b633813fc60c").unwrap();
        assert_eq!(
            decode_id("5b8efff798038103d269b633813fc60c").unwrap(),
            trace
        );
        assert_eq!(decode_id("W47/95gDgQPSabYzgT/GDA==").unwrap(), trace);
        let span = hex::decode("eee19b7ec3c1b174").unwrap();
        assert_eq!(decode_id("eee19b7ec3c1b174").unwrap(), span);
        assert_eq!(decode_id("7uGbfsPBsXQ=").unwrap(), span);
        assert_eq!(decode_id("").unwrap(), Vec::<u8>::new());
        // 24 characters that are not base64 of 16 bytes, unpadded base64, other lengths.
        assert!(decode_id("W47/95gDgQPSabYzgT/GDA=!").is_err());
        assert!(decode_id("W47/95gDgQPSabYzgT/GDA").is_err());
        assert!(decode_id("W47/95gDgQPSabYzgT/G").is_err());
        assert!(decode_id("zz").is_err());
    }
}
