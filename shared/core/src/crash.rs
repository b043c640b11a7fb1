//! Injectable crash points, for the crash-safety tests.
//!
//! Each stage calls [`crash_point`] at the boundaries where a real crash would
//! leave work half done (a raw file written but not queued, a snapshot committed
//! but its messages not deleted, …). When the environment variable
//! `OTLP2PARQUET_CRASH_AT` names that point, the process aborts there — no
//! destructors, no flushing, as with SIGKILL — so the tests hit every boundary
//! deterministically instead of by timing luck. Unset, a crash point costs one
//! load of a cached value.

use std::sync::OnceLock;

/// The environment variable naming the crash point to abort at.
pub const CRASH_AT_ENV: &str = "OTLP2PARQUET_CRASH_AT";

/// Every crash point, as named in `OTLP2PARQUET_CRASH_AT`.
pub const CRASH_POINTS: &[&str] = &[
    "ingest-after-wal-append",
    "ingest-after-raw-write",
    "ingest-after-enqueue",
    "compact-mid-way",
    "compact-after-write",
    "compact-after-send",
    "commit-before-catalog-commit",
    "commit-after-catalog-commit",
];

/// Aborts the process if `OTLP2PARQUET_CRASH_AT` is `name`.
pub fn crash_point(name: &str) {
    static CRASH_AT: OnceLock<Option<String>> = OnceLock::new();
    let at = CRASH_AT.get_or_init(|| std::env::var(CRASH_AT_ENV).ok());
    if at.as_deref() == Some(name) {
        eprintln!("{CRASH_AT_ENV}={name}: aborting here, as a crash would");
        std::process::abort();
    }
}
