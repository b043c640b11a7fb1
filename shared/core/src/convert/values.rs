//! Rendering OTLP values as strings: attribute values, log bodies, ids.
//!
//! Attributes become `map<string, string>` and log bodies a `string`, because a
//! column of one simple type is what every query engine reads well. A string value
//! is stored as it is; every other value is stored as JSON (numbers as numbers,
//! bytes as base64 strings, arrays and key-value lists as JSON arrays and objects,
//! NaN and infinities as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`), so that
//! `json_extract` and friends work on it.

use std::fmt::Write as _;

use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

/// Appends `v` rendered for a string column: a string as is, anything else as JSON.
pub fn render_value(v: Option<&AnyValue>, out: &mut String) {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => out.push_str(s),
        None => {}
        Some(_) => write_json(v, out),
    }
}

/// Appends `v` as JSON. An absent value is `null`.
pub fn write_json(v: Option<&AnyValue>, out: &mut String) {
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(Value::StringValueStrindex(_)) => out.push_str("null"),
        Some(Value::StringValue(s)) => write_json_string(s, out),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(d)) => write_json_double(*d, out),
        Some(Value::BytesValue(b)) => {
            out.push('"');
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
            out.push('"');
        }
        Some(Value::ArrayValue(a)) => {
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(Some(item), out);
            }
            out.push(']');
        }
        Some(Value::KvlistValue(kv)) => {
            out.push('{');
            for (i, item) in kv.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(&item.key, out);
                out.push(':');
                write_json(item.value.as_ref(), out);
            }
            out.push('}');
        }
    }
}

fn write_json_double(d: f64, out: &mut String) {
    if d.is_nan() {
        out.push_str("\"NaN\"");
    } else if d == f64::INFINITY {
        out.push_str("\"Infinity\"");
    } else if d == f64::NEG_INFINITY {
        out.push_str("\"-Infinity\"");
    } else {
        // `{:?}` is the shortest representation that round-trips (`1.0`, `1e-7`).
        let _ = write!(out, "{d:?}");
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Calls `f` with each attribute whose key no later attribute has, in order:
/// OTLP requires unique keys, and where a sender breaks that rule the last
/// value wins, as when building a map in code.
///
/// Linear in the number of attributes: a request of one record with 200,000
/// distinct keys must not cost 200,000² comparisons. Short lists (the usual
/// case) are compared pairwise, which needs no allocation.
pub fn for_each_distinct<'a>(attrs: &'a [KeyValue], mut f: impl FnMut(&'a KeyValue)) {
    const PAIRWISE: usize = 16;
    if attrs.len() <= PAIRWISE {
        for (i, kv) in attrs.iter().enumerate() {
            if !attrs[i + 1..].iter().any(|later| later.key == kv.key) {
                f(kv);
            }
        }
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(attrs.len());
    let mut last = vec![false; attrs.len()];
    for (i, kv) in attrs.iter().enumerate().rev() {
        last[i] = seen.insert(kv.key.as_str());
    }
    for (kv, is_last) in attrs.iter().zip(last) {
        if is_last {
            f(kv);
        }
    }
}

/// An id of at most 16 bytes as lowercase hex, written into `buf`.
pub fn hex<'a>(id: &[u8], buf: &'a mut [u8; 32]) -> &'a str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let id = &id[..id.len().min(16)];
    for (i, byte) in id.iter().enumerate() {
        buf[2 * i] = DIGITS[usize::from(byte >> 4)];
        buf[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
    }
    // Only ASCII hex digits were written.
    std::str::from_utf8(&buf[..id.len() * 2]).unwrap_or_default()
}

/// Checks that an id is unset (empty) or exactly `expected` bytes long.
pub fn check_id(id: &[u8], expected: usize, what: &str) -> Result<(), String> {
    if id.is_empty() || id.len() == expected {
        Ok(())
    } else {
        Err(format!("{what} must be {expected} bytes, got {}", id.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn v(value: Value) -> AnyValue {
        AnyValue { value: Some(value) }
    }

    #[test]
    fn renders_nested_values_as_json() {
        let value = v(Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "a\"b".into(),
                value: Some(v(Value::ArrayValue(ArrayValue {
                    values: vec![
                        v(Value::IntValue(-1)),
                        v(Value::DoubleValue(0.5)),
                        v(Value::DoubleValue(f64::NAN)),
                        v(Value::BoolValue(true)),
                        v(Value::BytesValue(vec![0, 255])),
                        v(Value::StringValue("é\n\u{1}".into())),
                        AnyValue { value: None },
                    ],
                }))),
                ..Default::default()
            }],
        }));
        let mut out = String::new();
        render_value(Some(&value), &mut out);
        assert_eq!(
            out,
            r#"{"a\"b":[-1,0.5,"NaN",true,"AP8=","é\n\u0001",null]}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["a\"b"][5], "é\n\u{1}");
    }

    #[test]
    fn strings_are_stored_as_is() {
        let mut out = String::new();
        render_value(
            Some(&v(Value::StringValue("plain \"text\"".into()))),
            &mut out,
        );
        assert_eq!(out, "plain \"text\"");
    }

    #[test]
    fn ids_are_checked() {
        let mut buf = [0u8; 32];
        assert_eq!(
            hex(&[0xab, 0x01, 0xff, 0, 0, 0, 0, 0x10], &mut buf),
            "ab01ff0000000010"
        );
        assert_eq!(hex(&[], &mut buf), "");
        assert!(check_id(&[], 8, "span_id").is_ok());
        assert!(check_id(&[1; 8], 8, "span_id").is_ok());
        assert_eq!(
            check_id(&[1; 7], 8, "span_id").unwrap_err(),
            "span_id must be 8 bytes, got 7"
        );
    }

    fn kv(key: &str, value: i64) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(v(Value::IntValue(value))),
            ..Default::default()
        }
    }

    fn distinct(attrs: &[KeyValue]) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for_each_distinct(attrs, |kv| {
            let Some(Value::IntValue(i)) = kv.value.as_ref().and_then(|v| v.value.as_ref()) else {
                panic!("{kv:?}")
            };
            out.push((kv.key.clone(), *i));
        });
        out
    }

    // The last value of a repeated key wins and order is kept, for short lists
    // (compared pairwise) and long ones (hashed) alike.
    #[test]
    fn repeated_keys_keep_their_last_value() {
        let short = [kv("a", 1), kv("b", 2), kv("a", 3)];
        assert_eq!(distinct(&short), [("b".into(), 2), ("a".into(), 3)]);
        let mut long: Vec<KeyValue> = (0..100).map(|i| kv(&format!("k{i}"), i)).collect();
        long.push(kv("k5", 1000));
        let got = distinct(&long);
        assert_eq!(got.len(), 100);
        assert!(!got.contains(&("k5".into(), 5)));
        assert_eq!(got.last(), Some(&("k5".into(), 1000)));
        assert_eq!(got[0], ("k0".into(), 0));
    }
}
