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
