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

use crate::flags::ServeArgs;

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
    /// See `serve --flush-interval`.
    flush_interval_secs: Option<f64>,
    /// See `serve --max-body-bytes`.
    max_body_bytes: Option<usize>,
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
    if let (Some(v), true) = (file.flush_interval_secs, defaulted("flush_interval_secs")) {
        args.flush_interval_secs = v;
    }
    if let (Some(v), true) = (file.max_body_bytes, defaulted("max_body_bytes")) {
        args.max_body_bytes = v;
    }
    Ok(args)
}
