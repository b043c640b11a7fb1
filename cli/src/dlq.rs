//! `otlp2parquet dlq show|replay`: the embedded pipeline's dead-letter queue.
//!
//! A message lands there after failing to commit five times (an unreadable
//! message, a raw file that went missing, a catalog that kept refusing). Replay
//! moves everything back once the cause is fixed; the committer's message-id
//! check keeps a replay from adding anything twice.

use std::time::Duration;

use anyhow::Context;
use otlp2parquet_shared::local::SqliteQueues;
use otlp2parquet_shared::ports::Queue;

use crate::flags::{DlqAction, DlqArgs};
use crate::serve::{QUEUE_FILE, RAW_FILES_DLQ, RAW_FILES_QUEUE};

pub fn run(args: DlqArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let path = args.warehouse.join(QUEUE_FILE);
        anyhow::ensure!(
            path.exists(),
            "no queue database at {}: is --warehouse the directory `otlp2parquet serve` uses?",
            path.display()
        );
        let queues = SqliteQueues::open(&path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        match args.action {
            DlqAction::Show => {
                let dlq = queues.dead_letter_queue(RAW_FILES_DLQ);
                // Receive with no visibility timeout: looking must not hide them.
                let messages = dlq.receive(10_000, Duration::ZERO).await?;
                println!("{} message(s) in {RAW_FILES_DLQ}", messages.len());
                for m in messages {
                    println!("{}  {}", m.id, String::from_utf8_lossy(&m.body));
                }
            }
            DlqAction::Replay => {
                let moved = queues.redrive(RAW_FILES_DLQ, RAW_FILES_QUEUE).await?;
                println!(
                    "moved {moved} message(s) from {RAW_FILES_DLQ} back to {RAW_FILES_QUEUE}; \
                     a running serve commits them at its next flush"
                );
            }
        }
        Ok(())
    })
}
