//! Durable queues in a SQLite file.
//!
//! The embedded mode must not lose a message acknowledged to a client when the
//! process is killed, so its queues live in SQLite (WAL, `synchronous = FULL`):
//! a sent message is on disk when `send` returns. Receiving is one `UPDATE …
//! RETURNING` statement, which makes handing out a message and hiding it atomic
//! even with several consumers.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row};

use otlp2parquet_core::ports::{
    FAILURE_REASON_ATTRIBUTE, Queue, QueueError, ReceivedMessage, SendOptions,
};

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS queue_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    visible_at_ms INTEGER NOT NULL,
    receipt TEXT,
    attributes TEXT,
    dedup_id TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_visible ON queue_messages (queue, visible_at_ms, seq);
CREATE UNIQUE INDEX IF NOT EXISTS queue_messages_receipt ON queue_messages (receipt);";

/// Databases made before messages carried attributes and deduplication ids
/// get the two columns, and the failure reasons they kept in a side table are
/// moved into them. Each step is a no-op on a current database.
const MIGRATIONS: [&str; 4] = [
    "ALTER TABLE queue_messages ADD COLUMN attributes TEXT",
    "ALTER TABLE queue_messages ADD COLUMN dedup_id TEXT",
    "UPDATE queue_messages SET attributes = json_object(a.name, a.value)
     FROM queue_message_attributes AS a WHERE a.id = queue_messages.id;
     DROP TABLE queue_message_attributes",
    "CREATE UNIQUE INDEX IF NOT EXISTS queue_messages_dedup
     ON queue_messages (queue, dedup_id) WHERE dedup_id IS NOT NULL",
];

/// Creates the tables, or brings those of an older layout up to date.
async fn migrate(db: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(SCHEMA).execute(&mut *db).await?;
    let columns: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('queue_messages')")
        .fetch_all(&mut *db)
        .await?
        .iter()
        .map(|row| row.get("name"))
        .collect();
    let side_table = sqlx::query(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'queue_message_attributes'",
    )
    .fetch_optional(&mut *db)
    .await?
    .is_some();
    let needed = [
        !columns.iter().any(|c| c == "attributes"),
        !columns.iter().any(|c| c == "dedup_id"),
        side_table,
        true,
    ];
    for (migration, needed) in MIGRATIONS.iter().zip(needed) {
        if needed {
            sqlx::raw_sql(migration).execute(&mut *db).await?;
        }
    }
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A database error, attributed to `queue`.
fn backend(queue: impl Into<String>, e: sqlx::Error) -> QueueError {
    QueueError::Backend {
        queue: queue.into(),
        message: e.to_string(),
    }
}

/// The SQLite database holding every queue of one deployment.
#[derive(Debug, Clone)]
pub struct SqliteQueues {
    pool: SqlitePool,
}

impl SqliteQueues {
    /// Opens (creating if needed) the queue database at `path`.
    pub async fn open(path: &Path) -> Result<Self, QueueError> {
        let open_error = |e: sqlx::Error| backend(path.display().to_string(), e);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(open_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed send survives a power cut, not only a process kill.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        // The schema is settled on one connection before the pool opens any:
        // a pooled connection that had read the schema before an index was
        // created would refuse statements that need the index.
        let mut setup = SqliteConnection::connect_with(&options)
            .await
            .map_err(open_error)?;
        migrate(&mut setup).await.map_err(open_error)?;
        setup.close().await.map_err(open_error)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        Ok(SqliteQueues { pool })
    }

    /// Makes every in-flight message visible again at once.
    ///
    /// For a process that is the only consumer of these queues, starting up: any
    /// message hidden now was received by its previous incarnation, which died
    /// before deleting it. Waiting out the visibility timeout would only delay
    /// recovery. The receive counts stay, so poison messages still reach the DLQ.
    pub async fn release_in_flight(&self) -> Result<u64, QueueError> {
        let done = sqlx::query(
            "UPDATE queue_messages SET visible_at_ms = 0, receipt = NULL WHERE visible_at_ms > ?",
        )
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|e| backend("*", e))?;
        Ok(done.rows_affected())
    }

    /// Moves every message of the dead-letter queue `from` back to `to`, with a
    /// fresh receive count, and returns how many moved (DLQ replay, after the
    /// cause of the failures was fixed).
    pub async fn redrive(&self, from: &str, to: &str) -> Result<u64, QueueError> {
        let done = sqlx::query(
            "UPDATE queue_messages SET queue = ?, receive_count = 0, visible_at_ms = 0, receipt = NULL
             WHERE queue = ?",
        )
        .bind(to)
        .bind(from)
        .execute(&self.pool)
        .await
        .map_err(|e| backend(from, e))?;
        Ok(done.rows_affected())
    }

    /// A queue named `name` whose messages move to `dead_letter` after
    /// `max_receives` receives.
    pub fn queue(&self, name: &str, dead_letter: &str, max_receives: u32) -> SqliteQueue {
        SqliteQueue {
            pool: self.pool.clone(),
            name: name.to_string(),
            dead_letter: Some(dead_letter.to_string()),
            max_receives,
            max_message_bytes: usize::MAX,
        }
    }

    /// A queue without a dead-letter queue (a dead-letter queue itself).
    pub fn dead_letter_queue(&self, name: &str) -> SqliteQueue {
        SqliteQueue {
            pool: self.pool.clone(),
            name: name.to_string(),
            dead_letter: None,
            max_receives: u32::MAX,
            max_message_bytes: usize::MAX,
        }
    }
}

/// One queue in a [`SqliteQueues`] database.
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    pool: SqlitePool,
    name: String,
    dead_letter: Option<String>,
    max_receives: u32,
    max_message_bytes: usize,
}

impl SqliteQueue {
    /// This queue, refusing bodies over `bytes` as SQS does over its limit
    /// (to run the stages locally as they run against SQS).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    fn error(&self, e: sqlx::Error) -> QueueError {
        backend(self.name.as_str(), e)
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    async fn send_with(&self, body: &[u8], options: &SendOptions) -> Result<String, QueueError> {
        QueueError::check_size(&self.name, body.len(), self.max_message_bytes)?;
        // One consumer takes messages in send order, which keeps every
        // message group in order: the group id needs no column.
        let id = uuid::Uuid::now_v7().to_string();
        let attributes = (!options.attributes.is_empty())
            .then(|| serde_json::to_string(&options.attributes).unwrap_or_default());
        let stored = sqlx::query(
            "INSERT INTO queue_messages (queue, id, body, visible_at_ms, attributes, dedup_id)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (queue, dedup_id) WHERE dedup_id IS NOT NULL DO NOTHING
             RETURNING id",
        )
        .bind(&self.name)
        .bind(&id)
        .bind(body)
        .bind(now_ms())
        .bind(attributes)
        .bind(&options.deduplication_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        if stored.is_some() {
            return Ok(id);
        }
        // A duplicate of a message still in the queue: its id.
        sqlx::query("SELECT id FROM queue_messages WHERE queue = ? AND dedup_id = ?")
            .bind(&self.name)
            .bind(&options.deduplication_id)
            .fetch_one(&self.pool)
            .await
            .map(|row| row.get("id"))
            .map_err(|e| self.error(e))
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        if let Some(dead_letter) = &self.dead_letter {
            // As SQS does: a message already received max_receives times is moved
            // when it would be delivered once more.
            sqlx::query(
                "UPDATE queue_messages SET queue = ?, receive_count = 0, receipt = NULL, dedup_id = NULL
                 WHERE queue = ? AND visible_at_ms <= ? AND receive_count >= ?",
            )
            .bind(dead_letter)
            .bind(&self.name)
            .bind(now)
            .bind(i64::from(self.max_receives))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.error(e))?;
        }
        let rows = sqlx::query(
            "UPDATE queue_messages
             SET receive_count = receive_count + 1, visible_at_ms = ?,
                 receipt = lower(hex(randomblob(16)))
             WHERE seq IN (SELECT seq FROM queue_messages
                           WHERE queue = ? AND visible_at_ms <= ? ORDER BY seq LIMIT ?)
             RETURNING id, body, receive_count, receipt, seq, attributes",
        )
        .bind(now + visibility.as_millis() as i64)
        .bind(&self.name)
        .bind(now)
        .bind(max as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))?;
        let mut messages: Vec<(i64, ReceivedMessage)> = rows
            .into_iter()
            .map(|row| {
                (
                    row.get::<i64, _>("seq"),
                    ReceivedMessage {
                        id: row.get("id"),
                        receipt: row.get("receipt"),
                        body: row.get("body"),
                        receive_count: row.get::<i64, _>("receive_count") as u32,
                        attributes: row
                            .get::<Option<String>, _>("attributes")
                            .and_then(|a| serde_json::from_str(&a).ok())
                            .unwrap_or_default(),
                        // One process receives everything in order: groups
                        // matter to SQS FIFO consumers only.
                        group_id: None,
                        sent_at: None,
                    },
                )
            })
            .collect();
        messages.sort_by_key(|(seq, _)| *seq);
        let messages: Vec<ReceivedMessage> = messages.into_iter().map(|(_, m)| m).collect();
        Ok(messages)
    }

    async fn delete(&self, receipt: &str) -> Result<bool, QueueError> {
        let deleted = sqlx::query("DELETE FROM queue_messages WHERE queue = ? AND receipt = ?")
            .bind(&self.name)
            .bind(receipt)
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn dead_letter(
        &self,
        message: &ReceivedMessage,
        reason: &str,
    ) -> Result<bool, QueueError> {
        let Some(dead_letter) = &self.dead_letter else {
            // A dead-letter queue has none of its own: the message stays.
            return Ok(false);
        };
        // Deduplication is the live queue's business: a message in the DLQ
        // must not make a later send with its id vanish, nor clash on replay.
        let moved = sqlx::query(
            "UPDATE queue_messages SET queue = ?, receive_count = 0, visible_at_ms = 0, receipt = NULL,
                 dedup_id = NULL, attributes = json_set(coalesce(attributes, '{}'), ?, ?)
             WHERE queue = ? AND receipt = ?",
        )
        .bind(dead_letter)
        .bind(format!("$.\"{FAILURE_REASON_ATTRIBUTE}\""))
        .bind(reason)
        .bind(&self.name)
        .bind(&message.receipt)
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(moved.rows_affected() == 1)
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<bool, QueueError> {
        let done = sqlx::query(
            "UPDATE queue_messages SET visible_at_ms = ? WHERE queue = ? AND receipt = ?",
        )
        .bind(now_ms() + visibility.as_millis() as i64)
        .bind(&self.name)
        .bind(receipt)
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn depth(&self) -> Result<u64, QueueError> {
        let row = sqlx::query("SELECT count(*) AS n FROM queue_messages WHERE queue = ?")
            .bind(&self.name)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(row.get::<i64, _>("n") as u64)
    }
}
