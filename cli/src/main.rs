//! The `otlp2parquet` command.
//!
//! `main` only parses flags, sets up logging and turns an error into a message
//! and a non-zero exit code; each subcommand lives in its own module and does its
//! work through the `otlp2parquet-shared` crate.

mod config;
mod convert;
mod dlq;
mod flags;
mod generate;
mod ingest_stage;
mod input;
mod query;
mod serve;
mod tables;
mod worker;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use flags::{Cli, Command};

/// mimalloc rather than glibc's malloc: `serve` allocates and frees small
/// blocks by the million (every request's decoded messages, Arrow builders,
/// log records), and glibc's malloc was a sixth of its CPU under load (perf,
/// traces load); with mimalloc it answered 10% (traces) to 23% (logs) more
/// requests per second (README, "`serve` under load").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (include/mimalloc.h;
/// libmimalloc-sys names no constant for it). The test below checks that the
/// option at this index has purge_delay's default (1000, src/options.c).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed memory before giving it back to the system.
/// With its default, 1 s, the pages of the write-ahead log drainer's and the
/// compactor's large buffers went back to the system between uses and came
/// back zeroed: `clear_page` was a quarter of the drainer's CPU (perf, logs
/// load), and the drainer fell behind until requests were refused. With 10 s,
/// memory churned faster than that is reused and an idle server still shrinks
/// (logs load, 30 s runs: 98–102k requests answered, none refused, against
/// 70–98k with 0.5–22k refused). `MIMALLOC_PURGE_DELAY` takes precedence.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

fn tune_mimalloc() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set only stores an option value; mimalloc reads
        // options on each use, from any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

fn main() -> ExitCode {
    tune_mimalloc();
    // Rust's heap is mimalloc's; this still governs what C libraries (zstd,
    // SQLite) allocate through glibc.
    otlp2parquet_core::tune_allocator();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(cli, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    match cli.command {
        Command::Convert(args) => convert::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Tables(args) => tables::run(args),
        Command::Query(args) => query::run(args),
        Command::Serve(args) => {
            let serve_matches = matches
                .subcommand_matches("serve")
                .ok_or_else(|| anyhow::anyhow!("serve arguments missing"))?;
            serve::run(config::apply_file(args, serve_matches)?)
        }
        Command::Dlq(args) => dlq::run(args),
        Command::Worker(args) => worker::run(args),
        Command::Schema(args) => {
            if args.markdown {
                print!("{}", otlp2parquet_core::schema::markdown());
            } else {
                for table in otlp2parquet_core::Table::ALL {
                    let def = otlp2parquet_core::schema::TableDefinition::get(table);
                    println!("{table}:");
                    for field in def.schema.as_struct().fields() {
                        println!("  {:>3}  {:<32} {}", field.id, field.name, field.field_type);
                    }
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_defaulting_to_1000_ms() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads an option value.
        let default = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            default, 1000,
            "mimalloc's option {MI_OPTION_PURGE_DELAY} is not purge_delay"
        );
        tune_mimalloc();
        // SAFETY: as above.
        let set = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(set, PURGE_DELAY_MS);
    }
}
