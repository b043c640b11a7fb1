//! Iceberg's file IO over the pipeline's own object stores.
//!
//! The `iceberg` crate reads and writes table metadata and manifests through
//! a `Storage` its `FileIO` builds from a `StorageFactory`. Its S3 storage
//! (OpenDAL) is a second S3 client with its own configuration keys and
//! endpoint rules, and a second HTTP stack. [`PortStorageFactory`] instead
//! hands iceberg the stores the stages already use — for `s3://bucket/…`
//! the AWS SDK client built once from the standard `AWS_*` variables — so
//! one configuration (credentials, region, `AWS_ENDPOINT_URL`) covers every
//! byte the pipeline moves, and a table bucket's location is reached like any
//! other bucket.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig,
    StorageFactory,
};
use iceberg::{Error as IcebergError, ErrorKind};
use otlp2parquet_core::ports::{ObjectStore, ObjectStoreError};
use serde::{Deserialize, Serialize};

/// The object store of one bucket, keys relative to the bucket's root.
pub type BucketStores = Arc<dyn Fn(&str) -> Arc<dyn ObjectStore> + Send + Sync>;

/// Builds [`PortStorage`]s over the stores `bucket_store` gives for each
/// bucket named in an `s3://` location.
#[derive(Clone, Serialize, Deserialize)]
pub struct PortStorageFactory {
    // A FileIO is serialisable (for engines that ship it to workers); these
    // stores are not, and nothing here ships one: one deserialised refuses
    // every operation with a message saying why.
    #[serde(skip, default = "unavailable")]
    bucket_store: Option<BucketStores>,
}

fn unavailable() -> Option<BucketStores> {
    None
}

impl PortStorageFactory {
    /// A factory whose storage reaches bucket `b` through `bucket_store(b)`.
    pub fn new(
        bucket_store: impl Fn(&str) -> Arc<dyn ObjectStore> + Send + Sync + 'static,
    ) -> Self {
        PortStorageFactory {
            bucket_store: Some(Arc::new(bucket_store)),
        }
    }

    /// A factory whose storage reaches every bucket through the S3 client
    /// `s3` (one [`otlp2parquet_aws::S3Store`] per bucket).
    pub fn over_s3(s3: aws_sdk_s3::Client) -> Self {
        Self::new(move |bucket| {
            Arc::new(otlp2parquet_aws::S3Store::new(s3.clone(), bucket, "")) as Arc<dyn ObjectStore>
        })
    }
}

impl fmt::Debug for PortStorageFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortStorageFactory").finish_non_exhaustive()
    }
}

#[typetag::serde]
impl StorageFactory for PortStorageFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(PortStorage {
            bucket_store: self.bucket_store.clone(),
            buckets: Default::default(),
        }))
    }
}

/// An iceberg `Storage` over the pipeline's object stores; see the module docs.
#[derive(Clone, Serialize, Deserialize)]
pub struct PortStorage {
    #[serde(skip, default = "unavailable")]
    bucket_store: Option<BucketStores>,
    /// Stores already built, by bucket.
    #[serde(skip)]
    buckets: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
}

impl fmt::Debug for PortStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortStorage").finish_non_exhaustive()
    }
}

/// The bucket and key of an `s3://bucket/key` (or `s3a://`) location.
fn split(location: &str) -> iceberg::Result<(&str, &str)> {
    let rest = location
        .strip_prefix("s3://")
        .or_else(|| location.strip_prefix("s3a://"))
        .ok_or_else(|| {
            IcebergError::new(
                ErrorKind::FeatureUnsupported,
                format!("{location}: this storage reaches s3:// locations only"),
            )
        })?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok((bucket, key)),
        _ => Err(IcebergError::new(
            ErrorKind::DataInvalid,
            format!("{location}: not an s3://bucket/key location"),
        )),
    }
}

/// The port's error as iceberg's, keeping whether a retry may help.
fn converted(location: &str, e: ObjectStoreError) -> IcebergError {
    let kind = match e {
        ObjectStoreError::PreconditionFailed { .. } => ErrorKind::PreconditionFailed,
        _ => ErrorKind::Unexpected,
    };
    let retryable = e.retryable();
    IcebergError::new(kind, format!("{location}: {e}"))
        .with_retryable(retryable)
        .with_source(e)
}

impl PortStorage {
    fn store(&self, location: &str) -> iceberg::Result<(Arc<dyn ObjectStore>, String)> {
        let (bucket, key) = split(location)?;
        let bucket_store = self.bucket_store.as_ref().ok_or_else(|| {
            IcebergError::new(
                ErrorKind::FeatureUnsupported,
                "this file IO was deserialised without its object stores",
            )
        })?;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let store = buckets
            .entry(bucket.to_string())
            .or_insert_with(|| bucket_store(bucket))
            .clone();
        Ok((store, key.to_string()))
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for PortStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        let (store, key) = self.store(path)?;
        store.exists(&key).await.map_err(|e| converted(path, e))
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let (store, key) = self.store(path)?;
        match store.head(&key).await.map_err(|e| converted(path, e))? {
            Some(meta) => Ok(FileMetadata { size: meta.size }),
            None => Err(IcebergError::new(
                ErrorKind::Unexpected,
                format!("{path}: no such object"),
            )),
        }
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let (store, key) = self.store(path)?;
        store.get(&key).await.map_err(|e| converted(path, e))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let (store, key) = self.store(path)?;
        Ok(Box::new(RangeReader {
            store,
            key,
            location: path.to_string(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        let (store, key) = self.store(path)?;
        store.put(&key, bs).await.map_err(|e| converted(path, e))
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let (store, key) = self.store(path)?;
        Ok(Box::new(BufferedWriter {
            store,
            key,
            location: path.to_string(),
            buffer: Vec::new(),
        }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        let (store, key) = self.store(path)?;
        store.delete(&key).await.map_err(|e| converted(path, e))
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let (store, prefix) = self.store(path)?;
        let keys = store.list(&prefix).await.map_err(|e| converted(path, e))?;
        store
            .delete_many(&keys)
            .await
            .map_err(|e| converted(path, e))
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        split(path)?;
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        split(path)?;
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Ranged reads of one object (a Parquet footer without the file).
struct RangeReader {
    store: Arc<dyn ObjectStore>,
    key: String,
    location: String,
}

#[async_trait]
impl FileRead for RangeReader {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store
            .get_range(&self.key, range)
            .await
            .map_err(|e| converted(&self.location, e))
    }
}

/// What iceberg writes through a writer is metadata and manifests (KiBs):
/// gathered, then stored whole on close, so a reader never sees half a file.
struct BufferedWriter {
    store: Arc<dyn ObjectStore>,
    key: String,
    location: String,
    buffer: Vec<u8>,
}

#[async_trait]
impl FileWrite for BufferedWriter {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        self.buffer.extend_from_slice(&bs);
        Ok(())
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        let bytes = Bytes::from(std::mem::take(&mut self.buffer));
        self.store
            .put(&self.key, bytes)
            .await
            .map_err(|e| converted(&self.location, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::io::FileIOBuilder;
    use otlp2parquet_core::ports::MemoryStore;

    fn file_io() -> (
        Arc<Mutex<Vec<String>>>,
        Arc<MemoryStore>,
        iceberg::io::FileIO,
    ) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::new(MemoryStore::new());
        let (asked_by, store_of) = (asked.clone(), store.clone());
        let factory = PortStorageFactory::new(move |bucket| {
            asked_by.lock().unwrap().push(bucket.to_string());
            store_of.clone() as Arc<dyn ObjectStore>
        });
        (asked, store, FileIOBuilder::new(Arc::new(factory)).build())
    }

    #[tokio::test]
    async fn writes_and_reads_through_the_bucket_store() {
        let (asked, store, io) = file_io();
        let output = io
            .new_output("s3://table-bucket/metadata/00000.metadata.json")
            .unwrap();
        let mut writer = output.writer().await.unwrap();
        writer
            .write(Bytes::from_static(b"{\"format"))
            .await
            .unwrap();
        writer
            .write(Bytes::from_static(b"-version\":2}"))
            .await
            .unwrap();
        writer.close().await.unwrap();
        assert_eq!(
            store.get("metadata/00000.metadata.json").await.unwrap(),
            "{\"format-version\":2}"
        );
        let input = io
            .new_input("s3://table-bucket/metadata/00000.metadata.json")
            .unwrap();
        assert!(input.exists().await.unwrap());
        assert_eq!(input.metadata().await.unwrap().size, 20);
        assert_eq!(
            input.reader().await.unwrap().read(1..7).await.unwrap(),
            "\"forma"
        );
        io.delete("s3://table-bucket/metadata/00000.metadata.json")
            .await
            .unwrap();
        assert!(!input.exists().await.unwrap());
        // One store per bucket, built once.
        assert_eq!(*asked.lock().unwrap(), ["table-bucket"]);
    }

    #[test]
    fn other_locations_are_refused_with_a_reason() {
        let (_, _, io) = file_io();
        let err = io.new_input("file:///tmp/x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::FeatureUnsupported);
        assert!(io.new_input("s3://bucket-only").is_err());
    }
}
