//! `otlp2parquet dlq show|replay`: the embedded pipeline's dead-letter queue.
//!
//! A message lands in a dead-letter queue after failing five times: in
//! `raw-files-dlq` when it could not be compacted (an unreadable message, a
//! scratch disk that kept failing), in `data-files-dlq` when it could not be
//! committed (a catalog that kept refusing). Replay moves everything back once
//! the cause is fixed; raw-file claims and the compaction ids recorded in
//! snapshots keep a replay from adding anything twice.

use std::time::Duration;

use anyhow::Context;
use otlp2parquet_core::ports::Queue;
use otlp2parquet_local::SqliteQueues;

use crate::flags::{DlqAction, DlqArgs};
use crate::serve::{DATA_FILES_DLQ, DATA_FILES_QUEUE, QUEUE_FILE, RAW_FILES_DLQ, RAW_FILES_QUEUE};

/// Each dead-letter queue and the queue its messages go back to.
const DEAD_LETTER_QUEUES: [(&str, &str); 2] = [
    (RAW_FILES_DLQ, RAW_FILES_QUEUE),
    (DATA_FILES_DLQ, DATA_FILES_QUEUE),
];

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
                for (name, _) in DEAD_LETTER_QUEUES {
                    let dlq = queues.dead_letter_queue(name);
                    // Receive with no visibility timeout: looking must not hide them.
                    let messages = dlq.receive(10_000, Duration::ZERO).await?;
                    println!("{} message(s) in {name}", messages.len());
                    for m in messages {
                        println!("{}  {}", m.id, String::from_utf8_lossy(&m.body));
                    }
                }
            }
            DlqAction::Replay => {
                for (name, back_to) in DEAD_LETTER_QUEUES {
                    let moved = queues.redrive(name, back_to).await?;
                    println!("moved {moved} message(s) from {name} back to {back_to}");
                }
                println!("a running serve takes them at its next flush");
            }
        }
        Ok(())
    })
}
