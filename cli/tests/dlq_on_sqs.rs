//! `otlp2parquet dlq inspect` and `dlq replay --from … --to …` against moto's
//! SQS: what a stage dead-lettered is described, then moved back with its
//! FIFO group and without its failure reason; a dry run moves nothing.

use std::process::Command;
use std::time::Duration;

use otlp2parquet_aws::{SqsQueue, sqs_client};
use otlp2parquet_core::ports::{FAILURE_REASON_ATTRIBUTE, Queue, SendOptions};
use otlp2parquet_testkit::moto::{Moto, queue_with_dead_letter_queue, sdk_config};

fn dlq(moto: &Moto, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_otlp2parquet"))
        .arg("dlq")
        .args(args)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "dlq {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn inspect_then_replay_a_fifo_dead_letter_queue() {
    let moto = Moto::start();
    let client = sqs_client(&sdk_config(&moto.endpoint).await);
    let (url, dead_letter_url) = queue_with_dead_letter_queue(&client, true, 5).await;
    let queue = SqsQueue::new(client, &url);
    for (n, table) in ["logs", "traces", "logs"].iter().enumerate() {
        let body = format!(r#"{{"table":"{table}","compaction":"c{n}","rows":1,"data_files":[]}}"#);
        let options = SendOptions::default()
            .with_group_id(*table)
            .with_deduplication_id(format!("c{n}"));
        queue.send_with(body.as_bytes(), &options).await.unwrap();
    }
    // The committer gives up on them, as it does on a table it cannot commit.
    let mut received = Vec::new();
    while received.len() < 3 {
        received.extend(queue.receive(10, Duration::from_secs(60)).await.unwrap());
    }
    for message in &received {
        assert!(
            queue
                .dead_letter(message, "the catalog refused the commit")
                .await
                .unwrap()
        );
    }

    let inspected = dlq(&moto, &["inspect", &dead_letter_url]);
    assert!(inspected.starts_with("3 message(s) in "), "{inspected}");
    assert!(inspected.contains("oldest sent"), "{inspected}");
    assert_eq!(
        inspected
            .matches("reason: the catalog refused the commit")
            .count(),
        3,
        "{inspected}"
    );
    assert_eq!(inspected.matches("table logs").count(), 2, "{inspected}");
    assert_eq!(inspected.matches("table traces").count(), 1, "{inspected}");

    let dry = dlq(
        &moto,
        &[
            "replay",
            "--from",
            &dead_letter_url,
            "--to",
            &url,
            "--dry-run",
        ],
    );
    assert!(dry.contains("would move 3 message(s)"), "{dry}");
    assert!(
        queue
            .receive(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );

    let replayed = dlq(
        &moto,
        &[
            "replay",
            "--from",
            &dead_letter_url,
            "--to",
            &url,
            "--max",
            "2",
        ],
    );
    assert!(replayed.contains("moved 2 message(s)"), "{replayed}");
    let mut back = Vec::new();
    for _ in 0..10 {
        back.extend(queue.receive(10, Duration::from_secs(60)).await.unwrap());
        if back.len() >= 2 {
            break;
        }
    }
    assert_eq!(back.len(), 2);
    for message in &back {
        let body: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
        assert_eq!(
            message.group_id.as_deref(),
            body["table"].as_str(),
            "the FIFO group is kept"
        );
        assert!(!message.attributes.contains_key(FAILURE_REASON_ATTRIBUTE));
    }
    let rest = dlq(&moto, &["inspect", &dead_letter_url]);
    assert!(rest.starts_with("1 message(s) in "), "{rest}");
}
