//! An object store in a local directory, durable against crashes.
//!
//! `put` writes to a temporary file, fsyncs it, renames it into place and fsyncs
//! the directory: after it returns, the object is complete on disk, and a crash
//! at any point leaves either no object or the whole one, never a torn file.

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use otlp2parquet_core::ports::{ObjectMeta, ObjectStore, ObjectStoreError};

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

/// A temporary name beside `path`, for writing before the object appears.
fn temporary_beside(path: &Path) -> std::io::Result<(PathBuf, &Path)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object"),
        uuid::Uuid::new_v4()
    ));
    Ok((tmp, dir))
}

/// How a finished temporary file becomes the object.
#[derive(Clone, Copy)]
enum Publish {
    /// Replace whatever is there.
    Replace,
    /// Only if nothing is there: a hard link fails atomically when the name exists.
    IfAbsent,
}

/// Writes `bytes` at `path` through a temporary file; returns false if `publish`
/// is [`Publish::IfAbsent`] and the object existed.
fn write_durably(path: &Path, bytes: &[u8], publish: Publish) -> std::io::Result<bool> {
    let (tmp, dir) = temporary_beside(path)?;
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        let created = match publish {
            Publish::Replace => std::fs::rename(&tmp, path).map(|()| true)?,
            Publish::IfAbsent => match std::fs::hard_link(&tmp, path) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(e),
            },
        };
        // The new name is durable only once the directory entry is.
        std::fs::File::open(dir)?.sync_all()?;
        Ok(created)
    })();
    // After a rename there is nothing left to remove; after a link the temporary
    // name goes, the object stays.
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Moves the finished file `from` to `path` durably (copying if it is on
/// another file system).
fn move_durably(from: &Path, path: &Path) -> std::io::Result<()> {
    std::fs::File::open(from)?.sync_all()?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    if std::fs::rename(from, path).is_err() {
        let (tmp, _) = temporary_beside(path)?;
        let copied = std::fs::copy(from, &tmp)
            .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path));
        if copied.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        copied?;
        std::fs::remove_file(from)?;
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Keys of the files under `dir` whose names start with `name_prefix`, as
/// `base` + their path below `dir`; temporary files of unfinished writes are
/// not objects.
fn list_below(dir: &Path, base: &str, name_prefix: &str) -> std::io::Result<Vec<String>> {
    let mut keys = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(keys),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !name.starts_with(name_prefix) || name.starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            keys.extend(list_below(&entry.path(), &format!("{base}{name}/"), "")?);
        } else {
            keys.push(format!("{base}{name}"));
        }
    }
    Ok(keys)
}

fn backend(key: &str, e: impl std::fmt::Display) -> ObjectStoreError {
    ObjectStoreError::Backend {
        key: key.to_string(),
        message: e.to_string(),
    }
}

#[async_trait]
impl ObjectStore for LocalFsStore {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), ObjectStoreError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || write_durably(&path, &bytes, Publish::Replace))
            .await
            .map_err(|e| backend(key, e))?
            .map_err(|e| backend(key, e))
            .map(drop)
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<bool, ObjectStoreError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || write_durably(&path, &bytes, Publish::IfAbsent))
            .await
            .map_err(|e| backend(key, e))?
            .map_err(|e| backend(key, e))
    }

    async fn put_file(&self, key: &str, from: &Path) -> Result<(), ObjectStoreError> {
        let path = self.path(key)?;
        let from = from.to_path_buf();
        tokio::task::spawn_blocking(move || move_durably(&from, &path))
            .await
            .map_err(|e| backend(key, e))?
            .map_err(|e| backend(key, e))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, ObjectStoreError> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(meta) => Ok(Some(ObjectMeta { size: meta.len() })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(backend(key, e)),
        }
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectStoreError> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.path(key)?;
        let owned_key = key.to_string();
        let read = move || -> std::io::Result<Vec<u8>> {
            let mut file = std::fs::File::open(&path)?;
            let size = file.metadata()?.len();
            let end = range.end.min(size);
            let start = range.start.min(end);
            file.seek(SeekFrom::Start(start))?;
            let mut out = vec![0; (end - start) as usize];
            file.read_exact(&mut out)?;
            Ok(out)
        };
        match tokio::task::spawn_blocking(read).await {
            Ok(Ok(data)) => Ok(Bytes::from(data)),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ObjectStoreError::NotFound { key: owned_key })
            }
            Ok(Err(e)) => Err(backend(key, e)),
            Err(e) => Err(backend(key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError> {
        // The prefix's directory part names the one directory to read; its last
        // part filters the names there (and below, for nested keys).
        let (dir, name_prefix) = match prefix.rsplit_once('/') {
            Some((dir, name)) => (self.path(dir)?, name.to_string()),
            None => (self.root.clone(), prefix.to_string()),
        };
        let base = prefix[..prefix.len() - name_prefix.len()].to_string();
        let key = prefix.to_string();
        tokio::task::spawn_blocking(move || list_below(&dir, &base, &name_prefix))
            .await
            .map_err(|e| backend(&key, e))?
            .map_err(|e| backend(&key, e))
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ObjectStoreError::NotFound {
                key: key.to_string(),
            }),
            Err(e) => Err(backend(key, e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(backend(key, e)),
        }
    }

    fn uri(&self, key: &str) -> String {
        format!("file://{}", self.root.join(key).display())
    }
}
