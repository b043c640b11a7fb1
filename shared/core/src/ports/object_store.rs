//! Where files go: a flat key space of immutable objects, like S3.
//!
//! The stages only ever put whole objects, read them (whole, or a byte range:
//! a Parquet footer without the file), look at their size, list them by prefix
//! and delete them, which is what S3 offers and what a local directory can
//! offer durably. `put` returns once
//! the object survives a crash (fsync'd locally; a completed PUT on S3): ingest
//! acknowledges a client only after that.

use async_trait::async_trait;
use bytes::Bytes;

/// Errors of an object store backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectStoreError {
    /// The object does not exist.
    #[error("object {key} not found")]
    NotFound {
        /// The key looked up.
        key: String,
    },
    /// A conditional write found its condition false (S3's 412: the object
    /// exists, or changed since it was read).
    #[error("object {key}: precondition failed")]
    PreconditionFailed {
        /// The key written.
        key: String,
    },
    /// The backend asked us to slow down (S3's 503 SlowDown); retry later.
    #[error("object {key}: throttled: {message}")]
    Throttled {
        /// The key involved.
        key: String,
        /// What the backend said.
        message: String,
    },
    /// The backend failed (disk, network); the operation may succeed later.
    #[error("object {key}: {message}")]
    Backend {
        /// The key involved.
        key: String,
        /// What went wrong.
        message: String,
    },
}

impl ObjectStoreError {
    /// Whether the same operation may succeed when tried again.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ObjectStoreError::Throttled { .. } | ObjectStoreError::Backend { .. }
        )
    }
}

/// What [`ObjectStore::head`] tells about an object without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
}

/// An object store: see the module docs.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Writes `bytes` at `key` durably, replacing any object there.
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), ObjectStoreError>;

    /// Writes `bytes` at `key` durably only if no object is there; returns
    /// whether it did (S3 `PUT` with `If-None-Match: *`). The object appears
    /// whole or not at all, so a claim written this way is never seen half done.
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<bool, ObjectStoreError>;

    /// Stores the finished local file at `path` as `key`, durably, consuming the
    /// file. Large outputs go this way so they never have to sit in memory whole
    /// (a rename locally; a multipart upload on S3).
    async fn put_file(&self, key: &str, path: &std::path::Path) -> Result<(), ObjectStoreError>;

    /// The object at `key`'s size, or `None` when there is none (S3 `HEAD`).
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, ObjectStoreError>;

    /// Whether an object exists at `key`.
    async fn exists(&self, key: &str) -> Result<bool, ObjectStoreError> {
        Ok(self.head(key).await?.is_some())
    }

    /// Reads the whole object at `key`.
    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError>;

    /// Reads the bytes `range` of the object at `key` (S3 `GET` with `Range`).
    /// A range past the end of the object is cut at the end.
    async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, ObjectStoreError>;

    /// The keys that start with `prefix`, in no particular order. Only stores
    /// that allow listing (a directory, a general-purpose bucket; not an S3
    /// Tables bucket) are ever asked.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError>;

    /// Deletes the object at `key`; deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError>;

    /// Deletes every object of `keys`, missing ones included. S3 deletes up to
    /// a thousand keys a request; the default deletes them one by one.
    async fn delete_many(&self, keys: &[String]) -> Result<(), ObjectStoreError> {
        for key in keys {
            self.delete(key).await?;
        }
        Ok(())
    }

    /// The URI readers use for `key` (`file:///…`, `s3://…`), as recorded in catalogs.
    fn uri(&self, key: &str) -> String;
}

/// Reads the JSON record at `key`: `None` when there is none. The stages keep
/// their plans, results and pending commits this way.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    store: &dyn ObjectStore,
    key: &str,
) -> crate::Result<Option<T>> {
    match store.get(key).await {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| crate::Error::Record {
                    key: key.to_string(),
                    source,
                })
        }
        Err(ObjectStoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// How much of a file's end [`parquet_metadata`] reads first: enough for the
/// footer of the files this project writes (a few KiB), so one ranged read
/// usually does.
const FOOTER_PREFETCH_BYTES: u64 = 64 * 1024;

/// Reads the Parquet footer of the object at `key` with ranged reads only:
/// the metadata (row counts, column statistics, field ids) without fetching
/// the file, as an Iceberg `DataFile` needs.
pub async fn parquet_metadata(
    store: &dyn ObjectStore,
    key: &str,
) -> crate::Result<parquet::file::metadata::ParquetMetaData> {
    use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
    let invalid = |message: String| {
        crate::Error::ObjectStore(ObjectStoreError::Backend {
            key: key.to_string(),
            message: format!("not a Parquet file: {message}"),
        })
    };
    let size = store
        .head(key)
        .await?
        .ok_or_else(|| ObjectStoreError::NotFound {
            key: key.to_string(),
        })?
        .size;
    if size < 8 {
        return Err(invalid(format!("{size} bytes")));
    }
    let start = size.saturating_sub(FOOTER_PREFETCH_BYTES);
    let mut tail = store.get_range(key, start..size).await?;
    if tail.len() < 8 {
        return Err(invalid("short read".into()));
    }
    let footer =
        FooterTail::try_from(&tail[tail.len() - 8..]).map_err(|e| invalid(e.to_string()))?;
    let metadata_len = footer.metadata_length() as u64;
    if metadata_len + 8 > size {
        return Err(invalid(format!(
            "a footer of {metadata_len} bytes in a file of {size}"
        )));
    }
    if metadata_len + 8 > tail.len() as u64 {
        tail = store.get_range(key, size - 8 - metadata_len..size).await?;
    }
    let end = tail.len() - 8;
    let metadata = &tail[end - metadata_len as usize..end];
    ParquetMetaDataReader::decode_metadata(metadata).map_err(|e| invalid(e.to_string()))
}
