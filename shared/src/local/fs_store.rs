//! An object store in a local directory, durable against crashes.
//!
//! `put` writes to a temporary file, fsyncs it, renames it into place and fsyncs
//! the directory: after it returns, the object is complete on disk, and a crash
//! at any point leaves either no object or the whole one, never a torn file.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use crate::ports::object_store::{ObjectStore, ObjectStoreError};

/// Objects as files under a root directory; keys are relative paths.
#[derive(Debug, Clone)]
pub struct LocalFsStore {
    root: PathBuf,
}

impl LocalFsStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalFsStore { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, ObjectStoreError> {
        // Keys come from our own layout, but a key must never escape the root.
        if key.split('/').any(|part| part == ".." || part.is_empty()) || key.starts_with('/') {
            return Err(ObjectStoreError::Backend {
                key: key.to_string(),
                message: "invalid key".to_string(),
            });
        }
        Ok(self.root.join(key))
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object"),
        uuid::Uuid::new_v4()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[async_trait]
impl ObjectStore for LocalFsStore {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), ObjectStoreError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || write_durably(&path, &bytes))
            .await
            .map_err(|e| ObjectStoreError::Backend {
                key: key.to_string(),
                message: e.to_string(),
            })?
            .map_err(|e| ObjectStoreError::Backend {
                key: key.to_string(),
                message: e.to_string(),
            })
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ObjectStoreError::NotFound {
                key: key.to_string(),
            }),
            Err(e) => Err(ObjectStoreError::Backend {
                key: key.to_string(),
                message: e.to_string(),
            }),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ObjectStoreError::Backend {
                key: key.to_string(),
                message: e.to_string(),
            }),
        }
    }

    fn uri(&self, key: &str) -> String {
        format!("file://{}", self.root.join(key).display())
    }
}
