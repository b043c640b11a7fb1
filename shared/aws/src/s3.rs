//! [`S3Store`]: objects under a prefix of an S3 bucket.

use std::ops::Range;
use std::path::Path;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use bytes::Bytes;

use otlp2parquet_core::ports::{ObjectMeta, ObjectStore, ObjectStoreError};

use crate::ErrorReport;

/// Files up to this size are uploaded with one `PutObject`; larger ones in
/// parts of this size (S3 wants at least 5 MiB for every part but the last).
const DEFAULT_PART_BYTES: u64 = 16 * 1024 * 1024;

/// S3's limit of keys per `DeleteObjects`.
const DELETE_BATCH: usize = 1000;

/// Objects under `prefix` in `bucket`; keys are relative to the prefix.
///
/// A completed `PutObject` is durable, which is what [`ObjectStore::put`]
/// promises. [`ObjectStore::put_if_absent`] is a `PutObject` with
/// `If-None-Match: *` (S3's conditional writes; 412 when the key exists).
/// Listing and deleting work in a general-purpose bucket only: an S3 Tables
/// bucket refuses both, and the stages never ask it to.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    part_bytes: u64,
}

impl S3Store {
    /// A store over `bucket`, with keys under `prefix` (no leading or trailing
    /// slash needed; empty for the whole bucket).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl AsRef<str>) -> Self {
        S3Store {
            client,
            bucket: bucket.into(),
            prefix: crate::common::key_prefix(prefix.as_ref()),
            part_bytes: DEFAULT_PART_BYTES,
        }
    }

    /// A store at `uri`, `s3://bucket[/prefix]`; `None` for anything else.
    pub fn from_uri(client: Client, uri: &str) -> Option<Self> {
        let rest = uri.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        (!bucket.is_empty()).then(|| S3Store::new(client, bucket, prefix))
    }

    /// Uploads files larger than `bytes` in parts of `bytes` (at least 5 MiB).
    pub fn with_part_bytes(mut self, bytes: u64) -> Self {
        self.part_bytes = bytes.max(5 * 1024 * 1024);
        self
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn put_multipart(
        &self,
        key: &str,
        path: &Path,
        size: u64,
    ) -> Result<(), ObjectStoreError> {
        let full = self.full_key(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| error(key, ErrorReport::of(&e)))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let uploaded = async {
            let mut parts = Vec::new();
            let mut offset = 0;
            let mut number = 1;
            while offset < size {
                let length = self.part_bytes.min(size - offset);
                let body = ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(Length::Exact(length))
                    .build()
                    .await
                    .map_err(|e| backend(key, format!("reading {}: {e}", path.display())))?;
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| error(key, ErrorReport::of(&e)))?;
                parts.push(
                    CompletedPart::builder()
                        .set_e_tag(part.e_tag().map(str::to_string))
                        .part_number(number)
                        .build(),
                );
                offset += length;
                number += 1;
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| error(key, ErrorReport::of(&e)))?;
            Ok(())
        }
        .await;
        if uploaded.is_err() {
            // Parts of an abandoned upload are billed until aborted (or until a
            // lifecycle rule does it); a failed abort is left to that rule.
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&full)
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(e) = aborted {
                tracing::warn!(key, error = %ErrorReport::of(&e).message, "could not abort a failed multipart upload");
            }
        }
        uploaded
    }
}

fn backend(key: &str, message: String) -> ObjectStoreError {
    ObjectStoreError::Backend {
        key: key.to_string(),
        message,
    }
}

/// The port's error for what S3 answered about `key`.
fn error(key: &str, report: ErrorReport) -> ObjectStoreError {
    let key = key.to_string();
    if report.status == Some(404)
        || matches!(report.code.as_deref(), Some("NoSuchKey" | "NotFound"))
    {
        ObjectStoreError::NotFound { key }
    } else if report.status == Some(412) || report.code.as_deref() == Some("PreconditionFailed") {
        ObjectStoreError::PreconditionFailed { key }
    } else if report.throttled() {
        ObjectStoreError::Throttled {
            key,
            message: report.message,
        }
    } else {
        ObjectStoreError::Backend {
            key,
            message: report.message,
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), ObjectStoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| error(key, ErrorReport::of(&e)))?;
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<bool, ObjectStoreError> {
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .if_none_match("*")
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) => match error(key, ErrorReport::of(&e)) {
                ObjectStoreError::PreconditionFailed { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), ObjectStoreError> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| backend(key, format!("reading {}: {e}", path.display())))?
            .len();
        if size > self.part_bytes {
            self.put_multipart(key, path, size).await?;
        } else {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| backend(key, format!("reading {}: {e}", path.display())))?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .body(body)
                .send()
                .await
                .map_err(|e| error(key, ErrorReport::of(&e)))?;
        }
        // The port consumes the file: a local scratch file, now stored.
        if let Err(e) = tokio::fs::remove_file(path).await {
            tracing::warn!(path = %path.display(), error = %e, "could not remove an uploaded scratch file");
        }
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, ObjectStoreError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await;
        match head {
            Ok(output) => Ok(Some(ObjectMeta {
                size: output.content_length().unwrap_or(0).max(0) as u64,
            })),
            Err(e) => match error(key, ErrorReport::of(&e)) {
                ObjectStoreError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| error(key, ErrorReport::of(&e)))?;
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| backend(key, format!("reading the object: {e}")))?;
        Ok(body.into_bytes())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        let output = match output {
            Ok(output) => output,
            // 416: the range starts at or past the end; the port cuts it there.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return Ok(Bytes::new());
            }
            Err(e) => return Err(error(key, ErrorReport::of(&e))),
        };
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| backend(key, format!("reading the object: {e}")))?;
        Ok(body.into_bytes())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full_key(prefix))
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| error(prefix, ErrorReport::of(&e)))?;
            keys.extend(page.contents().iter().filter_map(|object| {
                object
                    .key()
                    .and_then(|key| key.strip_prefix(&self.prefix))
                    .map(str::to_string)
            }));
        }
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        // S3 answers 204 for a missing key too: deleting is idempotent.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| error(key, ErrorReport::of(&e)))?;
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), ObjectStoreError> {
        for chunk in keys.chunks(DELETE_BATCH) {
            let objects = chunk
                .iter()
                .map(|key| {
                    ObjectIdentifier::builder()
                        .key(self.full_key(key))
                        .build()
                        .map_err(|e| backend(key, e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| backend(&chunk[0], e.to_string()))?;
            let output = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| error(&chunk[0], ErrorReport::of(&e)))?;
            // A batch delete answers 200 and lists the keys it failed on.
            if let Some(failed) = output.errors().first() {
                let key = failed.key().unwrap_or(&chunk[0]);
                return Err(backend(
                    key,
                    format!(
                        "delete failed: {} {}",
                        failed.code().unwrap_or("?"),
                        failed.message().unwrap_or("")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn uri(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }
}
