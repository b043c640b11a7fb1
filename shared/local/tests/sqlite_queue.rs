//! The local SQLite queue behaves like SQS: at-least-once delivery, visibility
//! timeouts, receipts that go stale, a dead-letter queue, and durability.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use otlp2parquet_core::ports::Queue;
use otlp2parquet_local::SqliteQueues;

const HIDE: Duration = Duration::from_secs(60);

// A received message stays hidden until its visibility timeout ends, then comes
// back with a higher receive count and a new receipt; the old receipt is stale.
#[tokio::test]
async fn visibility_timeout_and_receipts() {
    let dir = tempfile::tempdir().unwrap();
    let queues = SqliteQueues::open(&dir.path().join("q.db")).await.unwrap();
    let queue = queues.queue("work", "work-dlq", 5);
    let id = queue.send(b"hello").await.unwrap();

    // A visibility timeout long enough for the next check even on a loaded machine.
    let first = queue.receive(10, Duration::from_millis(700)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (
            first[0].id.as_str(),
            first[0].body.as_slice(),
            first[0].receive_count
        ),
        (id.as_str(), &b"hello"[..], 1)
    );
    assert!(
        queue.receive(10, HIDE).await.unwrap().is_empty(),
        "hidden while in flight"
    );

    tokio::time::sleep(Duration::from_millis(800)).await;
    let second = queue.receive(10, HIDE).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, id);
    assert_eq!(second[0].receive_count, 2);
    assert_ne!(second[0].receipt, first[0].receipt);

    assert!(
        !queue.delete(&first[0].receipt).await.unwrap(),
        "stale receipt"
    );
    assert_eq!(queue.depth().await.unwrap(), 1);
    assert!(queue.delete(&second[0].receipt).await.unwrap());
    assert_eq!(queue.depth().await.unwrap(), 0);
}

// After max_receives deliveries without a delete, the message goes to the DLQ.
#[tokio::test]
async fn poison_messages_end_in_the_dead_letter_queue() {
    let dir = tempfile::tempdir().unwrap();
    let queues = SqliteQueues::open(&dir.path().join("q.db")).await.unwrap();
    let queue = queues.queue("work", "work-dlq", 2);
    let dlq = queues.dead_letter_queue("work-dlq");
    queue.send(b"poison").await.unwrap();
    queue.send(b"fine").await.unwrap();
    for attempt in 1..=2 {
        let got = queue.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(got.len(), 2, "attempt {attempt}");
        // The second message is handled; the first keeps failing.
        if attempt == 1 {
            assert!(queue.delete(&got[1].receipt).await.unwrap());
            queue.send(b"fine again").await.unwrap();
        }
    }
    let got = queue.receive(10, HIDE).await.unwrap();
    let bodies: Vec<_> = got.iter().map(|m| m.body.as_slice()).collect();
    assert!(
        !bodies.contains(&&b"poison"[..]),
        "moved to the DLQ, not delivered"
    );
    let dead = dlq.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, b"poison");

    // Replaying the DLQ puts it back in line with a fresh receive count.
    assert_eq!(queues.redrive("work-dlq", "work").await.unwrap(), 1);
    assert_eq!(dlq.depth().await.unwrap(), 0);
    let replayed = queue.receive(10, HIDE).await.unwrap();
    let poison = replayed.iter().find(|m| m.body == b"poison").unwrap();
    assert_eq!(poison.receive_count, 1);
}

// A sent message survives closing and reopening the database (a process restart).
#[tokio::test]
async fn messages_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    {
        let queues = SqliteQueues::open(&path).await.unwrap();
        let queue = queues.queue("work", "work-dlq", 3);
        queue.send(b"durable").await.unwrap();
        // Received but never deleted: a consumer that crashed.
        assert_eq!(
            queue
                .receive(1, Duration::from_millis(50))
                .await
                .unwrap()
                .len(),
            1
        );
    }
    tokio::time::sleep(Duration::from_millis(80)).await;
    let queues = SqliteQueues::open(&path).await.unwrap();
    assert_eq!(
        queues.release_in_flight().await.unwrap(),
        0,
        "its timeout had passed already"
    );
    let got = queues
        .queue("work", "work-dlq", 3)
        .receive(10, HIDE)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, b"durable");
    assert_eq!(got[0].receive_count, 2);
}

// At start-up the only consumer takes back what its previous run left in flight.
#[tokio::test]
async fn in_flight_messages_are_released_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let queues = SqliteQueues::open(&path).await.unwrap();
    let queue = queues.queue("work", "work-dlq", 3);
    queue.send(b"taken").await.unwrap();
    assert_eq!(queue.receive(1, HIDE).await.unwrap().len(), 1);
    assert!(queue.receive(1, HIDE).await.unwrap().is_empty());
    assert_eq!(queues.release_in_flight().await.unwrap(), 1);
    let again = queue.receive(1, HIDE).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
}

// Concurrent consumers never receive the same message while it is hidden.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_consumers_share_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let queues = SqliteQueues::open(&dir.path().join("q.db")).await.unwrap();
    let queue = Arc::new(queues.queue("work", "work-dlq", 3));
    for i in 0..200u32 {
        queue.send(&i.to_be_bytes()).await.unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let got = queue.receive(7, HIDE).await.unwrap();
                if got.is_empty() {
                    return seen;
                }
                seen.extend(got.into_iter().map(|m| m.id));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 200);
    assert_eq!(unique.len(), 200);
}

// Attributes travel with a message; a send with a deduplication id that a
// message in the queue already has is dropped (its id returned); the failure
// reason of a dead-lettered message joins its attributes; in the dead-letter
// queue it no longer blocks a new send with its id.
#[tokio::test]
async fn attributes_and_deduplication() {
    use otlp2parquet_core::ports::{FAILURE_REASON_ATTRIBUTE, SendOptions};
    let dir = tempfile::tempdir().unwrap();
    let queues = SqliteQueues::open(&dir.path().join("q.db")).await.unwrap();
    let queue = queues.queue("commit", "commit-dlq", 5);
    let options = SendOptions::default()
        .with_group_id("logs")
        .with_deduplication_id("compaction-7")
        .with_attribute("origin", "test");
    let first = queue.send_with(b"one", &options).await.unwrap();
    let again = queue.send_with(b"one", &options).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(queue.depth().await.unwrap(), 1);

    let received = queue.receive(10, HIDE).await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].attributes["origin"], "test");
    assert!(queue.dead_letter(&received[0], "bad table").await.unwrap());
    let dlq = queues.dead_letter_queue("commit-dlq");
    let dead = dlq.receive(10, HIDE).await.unwrap();
    assert_eq!(dead[0].attributes["origin"], "test");
    assert_eq!(dead[0].attributes[FAILURE_REASON_ATTRIBUTE], "bad table");

    let fresh = queue.send_with(b"one", &options).await.unwrap();
    assert_ne!(fresh, first);
    assert_eq!(queue.depth().await.unwrap(), 1);
}

// A database written before messages had attribute and deduplication columns
// (failure reasons in a side table) opens, keeps its messages and their
// reasons, and takes the new kinds of sends.
#[tokio::test]
async fn a_database_of_the_previous_layout_is_migrated() {
    use otlp2parquet_core::ports::{FAILURE_REASON_ATTRIBUTE, SendOptions};
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    use std::str::FromStr;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE queue_messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,
                id TEXT NOT NULL UNIQUE, body BLOB NOT NULL,
                receive_count INTEGER NOT NULL DEFAULT 0, visible_at_ms INTEGER NOT NULL,
                receipt TEXT);
             CREATE TABLE queue_message_attributes (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, value TEXT NOT NULL);
             INSERT INTO queue_messages (queue, id, body, visible_at_ms)
                VALUES ('work-dlq', 'm1', x'6869', 0), ('work', 'm2', x'6f6b', 0);
             INSERT INTO queue_message_attributes VALUES
                ('m1', 'otlp2parquet-failure-reason', 'unknown table');",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let queues = SqliteQueues::open(&path).await.unwrap();
    let dead = queues
        .dead_letter_queue("work-dlq")
        .receive(10, HIDE)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, b"hi");
    assert_eq!(
        dead[0].attributes[FAILURE_REASON_ATTRIBUTE],
        "unknown table"
    );
    let queue = queues.queue("work", "work-dlq", 5);
    let options = SendOptions::default().with_deduplication_id("d");
    queue.send_with(b"new", &options).await.unwrap();
    queue.send_with(b"new", &options).await.unwrap();
    let live = queue.receive(10, HIDE).await.unwrap();
    let bodies: Vec<_> = live.iter().map(|m| m.body.as_slice()).collect();
    assert_eq!(bodies, [&b"ok"[..], &b"new"[..]]);
    assert!(live[0].attributes.is_empty());
    // Opening again changes nothing.
    drop(queues);
    SqliteQueues::open(&path).await.unwrap();
}
