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

fn main() -> ExitCode {
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
