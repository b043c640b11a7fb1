//! The `serve` configuration file: TOML, below flags and environment variables.
//!
//! Precedence is flag > environment variable > file > built-in default. clap
//! already resolves flags, variables and defaults; a value from the file replaces
//! only what clap filled in from a default.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;

use crate::flags::{CatalogKind, ServeArgs};

/// Every setting `serve` reads from a file; all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeFile {
    /// See `serve --listen`.
    listen: Option<SocketAddr>,
    /// See `serve --warehouse`.
    warehouse: Option<PathBuf>,
    /// See `serve --namespace`.
    namespace: Option<String>,
    /// See `serve --catalog`.
    catalog: Option<CatalogKind>,
    /// See `serve --flush-interval`.
    flush_interval_secs: Option<f64>,
    /// See `serve --flush-bytes`.
    flush_bytes: Option<u64>,
    /// See `serve --target-file-mib`.
    target_file_mib: Option<u64>,
    /// See `serve --compaction-memory-mib`.
    compaction_memory_mib: Option<usize>,
    /// See `serve --max-body-bytes`.
    max_body_bytes: Option<usize>,
    /// See `serve --max-attributes`.
    max_attributes: Option<usize>,
    /// See `serve --max-attribute-values`.
    max_attribute_values: Option<usize>,
}

/// Fills `args` from `--config` where neither a flag nor a variable set a value.
pub fn apply_file(mut args: ServeArgs, matches: &ArgMatches) -> anyhow::Result<ServeArgs> {
    let Some(path) = args.config.clone() else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    let file: ServeFile = toml::from_str(&text)
        .with_context(|| format!("in the configuration file {}", path.display()))?;
    let defaulted = |id: &str| matches.value_source(id) == Some(ValueSource::DefaultValue);
    if let (Some(v), true) = (file.listen, defaulted("listen")) {
        args.listen = v;
    }
    if let (Some(v), true) = (file.warehouse, defaulted("warehouse")) {
        args.warehouse = v;
    }
    if let (Some(v), true) = (file.namespace, defaulted("namespace")) {
        args.namespace = v;
    }
    if let (Some(v), true) = (file.catalog, defaulted("catalog")) {
        args.catalog = v;
    }
    if let (Some(v), true) = (file.flush_interval_secs, defaulted("flush_interval_secs")) {
        args.flush_interval_secs = v;
    }
    if let (Some(v), true) = (file.flush_bytes, defaulted("flush_bytes")) {
        args.flush_bytes = v;
    }
    if let (Some(v), true) = (file.target_file_mib, defaulted("target_file_mib")) {
        args.target_file_mib = v;
    }
    if let (Some(v), true) = (
        file.compaction_memory_mib,
        defaulted("compaction_memory_mib"),
    ) {
        args.compaction_memory_mib = v;
    }
    if let (Some(v), true) = (file.max_body_bytes, defaulted("max_body_bytes")) {
        args.max_body_bytes = v;
    }
    if let (Some(v), true) = (file.max_attributes, defaulted("max_attributes")) {
        args.attribute_limits.max_attributes = v;
    }
    if let (Some(v), true) = (file.max_attribute_values, defaulted("max_attribute_values")) {
        args.attribute_limits.max_attribute_values = v;
    }
    Ok(args)
}
