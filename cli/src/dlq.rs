//! `otlp2parquet dlq show|inspect|replay`: dead-letter queues.
//!
//! A message lands in a dead-letter queue after failing too often, or at
//! once when a stage finds it can never succeed (it then records why, in the
//! message's `otlp2parquet-failure-reason` attribute). Raw-file messages end
//! there when they could not be compacted (an unreadable message, a scratch
//! disk that kept failing), data-file messages when they could not be
//! committed (a catalog that kept refusing). Replay moves them back once the
//! cause is fixed; raw-file claims and the commit records keep a replay from
//! adding anything twice.
//!
//! `show` and `replay` without `--from` work on the embedded pipeline's
//! queues (`otlp2parquet serve`); `inspect` and `replay --from … --to …` on
//! SQS queues, through the AWS SDK's standard configuration.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use otlp2parquet_aws::SqsQueue;
use otlp2parquet_core::dead_letters::{self, DeadLetter, ReplayOptions};
use otlp2parquet_core::ports::Queue;
use otlp2parquet_local::SqliteQueues;

use crate::flags::{DlqAction, DlqArgs, DlqWarehouse};
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
        match args.action {
            DlqAction::Show(warehouse) => show_local(&warehouse).await,
            DlqAction::Inspect {
                queue_url,
                max,
                bodies,
            } => inspect(&queue_url, max, bodies).await,
            DlqAction::Replay {
                from: Some(from),
                to: Some(to),
                max,
                dry_run,
                ..
            } => replay(&from, &to, max, dry_run).await,
            DlqAction::Replay { warehouse, .. } => replay_local(&warehouse).await,
        }
    })
}

async fn local_queues(warehouse: &DlqWarehouse) -> anyhow::Result<SqliteQueues> {
    let path = warehouse.warehouse.join(QUEUE_FILE);
    anyhow::ensure!(
        path.exists(),
        "no queue database at {}: is --warehouse the directory `otlp2parquet serve` uses?",
        path.display()
    );
    SqliteQueues::open(&path)
        .await
        .with_context(|| format!("opening {}", path.display()))
}

async fn show_local(warehouse: &DlqWarehouse) -> anyhow::Result<()> {
    let queues = local_queues(warehouse).await?;
    for (name, _) in DEAD_LETTER_QUEUES {
        let dlq = queues.dead_letter_queue(name);
        // Receive with no visibility timeout: looking must not hide them.
        let messages = dlq.receive(10_000, Duration::ZERO).await?;
        println!("{} message(s) in {name}", messages.len());
        for m in messages {
            println!("{}  {}", m.id, String::from_utf8_lossy(&m.body));
        }
    }
    Ok(())
}

async fn replay_local(warehouse: &DlqWarehouse) -> anyhow::Result<()> {
    let queues = local_queues(warehouse).await?;
    for (name, back_to) in DEAD_LETTER_QUEUES {
        let moved = queues.redrive(name, back_to).await?;
        println!("moved {moved} message(s) from {name} back to {back_to}");
    }
    println!("a running serve takes them at its next flush");
    Ok(())
}

async fn sqs_queue(url: &str) -> SqsQueue {
    let sdk = otlp2parquet_aws::load_sdk_config().await;
    SqsQueue::new(otlp2parquet_aws::sqs_client(&sdk), url)
}

/// "3h 12m" of a duration, to the two largest units.
fn age(since: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(since)
        .unwrap_or_default()
        .as_secs();
    let (days, hours, minutes) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

fn describe(letter: &DeadLetter, bodies: bool) {
    let tables = if letter.tables.is_empty() {
        "-".to_string()
    } else {
        letter.tables.join(",")
    };
    let age = letter.sent_at.map(age).unwrap_or_else(|| "-".into());
    let reason = letter
        .reason
        .as_deref()
        .unwrap_or("(none recorded: moved by the redrive policy after its last receive)");
    println!(
        "{}  age {age}  received {}x  table {tables}{}  reason: {reason}",
        letter.id,
        letter.receive_count,
        letter
            .group_id
            .as_deref()
            .map(|g| format!("  group {g}"))
            .unwrap_or_default(),
    );
    if bodies {
        println!("    {}", letter.body);
    }
}

async fn inspect(queue_url: &str, max: usize, bodies: bool) -> anyhow::Result<()> {
    let queue = sqs_queue(queue_url).await;
    let letters = dead_letters::inspect(&queue, max)
        .await
        .with_context(|| format!("looking into {queue_url}"))?;
    let oldest = letters.iter().filter_map(|l| l.sent_at).min();
    println!(
        "{} message(s) in {}{}{}",
        letters.len(),
        queue.name(),
        if letters.len() >= max {
            format!(" (looked at the first {max}; --max to see more)")
        } else {
            String::new()
        },
        oldest
            .map(|t| format!(", oldest sent {} ago", age(t)))
            .unwrap_or_default(),
    );
    for letter in &letters {
        describe(letter, bodies);
    }
    Ok(())
}

async fn replay(from: &str, to: &str, max: Option<usize>, dry_run: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        from != to,
        "--from and --to are the same queue: replay moves messages from a dead-letter queue to \
         the queue it serves"
    );
    let source = sqs_queue(from).await;
    let target = sqs_queue(to).await;
    let total = source.depth().await.ok();
    let bar = match total.map(|t| max.map_or(t, |m| t.min(m as u64))) {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::no_length(),
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos}/{len} [{bar:30}] {per_sec}, {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(if dry_run { "counting" } else { "replaying" });
    let options = ReplayOptions {
        max,
        dry_run,
        run_id: uuid::Uuid::new_v4().simple().to_string(),
    };
    let result =
        dead_letters::replay(&source, &target, &options, |n| bar.set_position(n as u64)).await;
    bar.finish_and_clear();
    let moved = result.with_context(|| format!("replaying {from} to {to}"))?;
    if dry_run {
        println!(
            "would move {moved} message(s) from {} to {} (dry run: nothing moved)",
            source.name(),
            target.name()
        );
    } else {
        println!(
            "moved {moved} message(s) from {} to {}",
            source.name(),
            target.name()
        );
    }
    Ok(())
}
