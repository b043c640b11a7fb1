//! DataFusion reads the raw files through the pipeline's own object store.
//!
//! DataFusion reads through the `object_store` crate's trait. Rather than a
//! second S3 client of that crate's own (configured apart, with its own
//! endpoint and credential rules), [`DataFusionStore`] lends DataFusion the
//! port the stage already holds: the local directory for `serve`, the AWS SDK
//! client for the Lambda, one configuration for both. It only reads: a
//! compaction writes its outputs through the port itself, where writes are
//! durable and create-only as the stage needs.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use otlp2parquet_core::ports::{ObjectStore, ObjectStoreError};

/// The URL scheme and host the store is registered under.
const STORE_URL: &str = "otlp2parquet://data/";

/// The URL DataFusion's session knows the store by.
pub(crate) fn store_url() -> url::Url {
    // A constant that parses.
    url::Url::parse(STORE_URL).expect("a valid URL")
}

/// The URL DataFusion reads the object at `key` by.
pub(crate) fn data_url(key: &str) -> String {
    format!("{STORE_URL}{key}")
}

/// A read-only `object_store::ObjectStore` over one of the pipeline's stores.
pub(crate) struct DataFusionStore {
    inner: Arc<dyn ObjectStore>,
}

impl DataFusionStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> Self {
        DataFusionStore { inner }
    }
}

impl fmt::Display for DataFusionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "otlp2parquet store at {}", self.inner.uri(""))
    }
}

impl fmt::Debug for DataFusionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

const STORE: &str = "otlp2parquet";

fn not_supported(what: &str) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!("{what}: compaction reads its inputs only").into(),
    }
}

fn converted(location: &Path, e: ObjectStoreError) -> object_store::Error {
    match e {
        ObjectStoreError::NotFound { .. } => object_store::Error::NotFound {
            path: location.to_string(),
            source: Box::new(e),
        },
        ObjectStoreError::PreconditionFailed { .. } => object_store::Error::Precondition {
            path: location.to_string(),
            source: Box::new(e),
        },
        _ => object_store::Error::Generic {
            store: STORE,
            source: Box::new(e),
        },
    }
}

fn meta(location: &Path, size: u64) -> ObjectMeta {
    ObjectMeta {
        location: location.clone(),
        // The port keeps no times, and nothing DataFusion does here uses them.
        last_modified: Default::default(),
        size,
        e_tag: None,
        version: None,
    }
}

fn payload(bytes: Bytes) -> GetResultPayload {
    GetResultPayload::Stream(stream::once(async move { Ok(bytes) }).boxed())
}

impl DataFusionStore {
    async fn size(&self, location: &Path) -> object_store::Result<u64> {
        match self.inner.head(location.as_ref()).await {
            Ok(Some(meta)) => Ok(meta.size),
            Ok(None) => Err(converted(
                location,
                ObjectStoreError::NotFound {
                    key: location.to_string(),
                },
            )),
            Err(e) => Err(converted(location, e)),
        }
    }

    async fn range(&self, location: &Path, range: Range<u64>) -> object_store::Result<Bytes> {
        self.inner
            .get_range(location.as_ref(), range)
            .await
            .map_err(|e| converted(location, e))
    }
}

#[async_trait]
impl object_store::ObjectStore for DataFusionStore {
    async fn put_opts(
        &self,
        _location: &Path,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(not_supported("put"))
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(not_supported("multipart upload"))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let key = location.as_ref();
        let (bytes, range, size) = if options.head {
            let size = self.size(location).await?;
            (Bytes::new(), 0..size, size)
        } else {
            match options.range {
                None => {
                    let bytes = self
                        .inner
                        .get(key)
                        .await
                        .map_err(|e| converted(location, e))?;
                    let size = bytes.len() as u64;
                    (bytes, 0..size, size)
                }
                Some(requested) => {
                    // The object's size, for the answer's metadata and to
                    // resolve offsets and suffixes.
                    let size = self.size(location).await?;
                    let range =
                        requested
                            .as_range(size)
                            .map_err(|e| object_store::Error::Generic {
                                store: STORE,
                                source: Box::new(e),
                            })?;
                    let bytes = self.range(location, range.clone()).await?;
                    (bytes, range, size)
                }
            }
        };
        Ok(GetResult {
            payload: payload(bytes),
            meta: meta(location, size),
            range,
            attributes: Default::default(),
        })
    }

    // Parquet readers ask for a file's column chunks together: fetch them
    // without a HEAD per range (the default goes through `get_opts`).
    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        object_store::coalesce_ranges(
            ranges,
            |range| self.range(location, range),
            object_store::OBJECT_STORE_COALESCE_DEFAULT,
        )
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations.map(|_| Err(not_supported("delete"))).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        // DataFusion lists only to expand a directory; compaction names files.
        let _ = prefix;
        stream::once(async { Err(not_supported("list")) }).boxed()
    }

    async fn list_with_delimiter(
        &self,
        _prefix: Option<&Path>,
    ) -> object_store::Result<ListResult> {
        Err(not_supported("list"))
    }

    async fn copy_opts(
        &self,
        _from: &Path,
        _to: &Path,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        Err(not_supported("copy"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{GetRange, ObjectStore as _, ObjectStoreExt as _};
    use otlp2parquet_core::ports::MemoryStore;

    fn store() -> (Arc<MemoryStore>, DataFusionStore) {
        let memory = Arc::new(MemoryStore::default());
        (memory.clone(), DataFusionStore::new(memory))
    }

    #[tokio::test]
    async fn reads_whole_objects_ranges_and_sizes() {
        let (memory, store) = store();
        memory
            .put(
                "otel/logs/data/raw/a.parquet",
                Bytes::from_static(b"0123456789"),
            )
            .await
            .unwrap();
        let path = Path::from("otel/logs/data/raw/a.parquet");
        assert_eq!(store.head(&path).await.unwrap().size, 10);
        assert_eq!(store.get_range(&path, 2..5).await.unwrap(), "234");
        let suffix = store
            .get_opts(
                &path,
                GetOptions::new().with_range(Some(GetRange::Suffix(3))),
            )
            .await
            .unwrap();
        assert_eq!(suffix.range, 7..10);
        assert_eq!(suffix.bytes().await.unwrap(), "789");
        let ranges = store.get_ranges(&path, &[0..2, 8..10]).await.unwrap();
        assert_eq!(ranges, [Bytes::from("01"), Bytes::from("89")]);
        let whole = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(whole, "0123456789");
    }

    #[tokio::test]
    async fn missing_objects_are_not_found_and_writes_are_refused() {
        let (_, store) = store();
        let path = Path::from("otel/logs/data/raw/missing.parquet");
        assert!(matches!(
            store.head(&path).await,
            Err(object_store::Error::NotFound { .. })
        ));
        assert!(matches!(
            store.put(&path, PutPayload::from_static(b"x")).await,
            Err(object_store::Error::NotSupported { .. })
        ));
    }
}
