//! What the SDK and signed halves share: how keys sit under a prefix, how a
//! queue is named from its URL, how SQS sizes a message.

use otlp2parquet_core::ports::SendOptions;

/// `prefix` as keys are joined to it: without leading or trailing slashes,
/// then one `/` (empty for the whole bucket).
pub(crate) fn key_prefix(prefix: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    }
}

/// The queue's name: the last segment of its URL.
pub(crate) fn queue_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_string()
}

/// The size SQS holds against its limit: the body and, as SQS counts them,
/// the attributes' names, values and data type.
pub(crate) fn message_bytes(body: &[u8], options: &SendOptions) -> usize {
    let attribute_bytes: usize = options
        .attributes
        .iter()
        .map(|(name, value)| name.len() + value.len() + "String".len())
        .sum();
    body.len() + attribute_bytes
}
