//! An object store for fault-injection tests: every operation passes through
//! a hook first, which may fail it or hold it, then goes to the real store.
//!
//! Tests that need a store whose puts fail, or whose first output waits for a
//! signal, write only the hook, not a whole `ObjectStore` that forwards eight
//! methods.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use otlp2parquet_core::ports::{ObjectMeta, ObjectStore, ObjectStoreError};

/// Which operation a hook is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `put`.
    Put,
    /// `put_if_absent`.
    PutIfAbsent,
    /// `put_file`.
    PutFile,
    /// `head` (and `exists`, which asks it).
    Head,
    /// `get`.
    Get,
    /// `get_range`.
    GetRange,
    /// `list`.
    List,
    /// `delete`.
    Delete,
}

/// Decides, before each operation, whether it goes ahead.
#[async_trait]
pub trait Hook: Send + Sync {
    /// Called before `op` on `key`; an error fails the operation.
    async fn before(&self, op: Op, key: &str) -> Result<(), ObjectStoreError>;
}

/// A store whose operations pass through a [`Hook`]; see the module docs.
pub struct HookedStore<H> {
    inner: Arc<dyn ObjectStore>,
    /// The hook, for the test to arm and release.
    pub hook: H,
}

impl<H: Hook> HookedStore<H> {
    /// `inner`'s operations, each asked of `hook` first.
    pub fn new(inner: Arc<dyn ObjectStore>, hook: H) -> Self {
        HookedStore { inner, hook }
    }
}

#[async_trait]
impl<H: Hook> ObjectStore for HookedStore<H> {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), ObjectStoreError> {
        self.hook.before(Op::Put, key).await?;
        self.inner.put(key, bytes).await
    }
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<bool, ObjectStoreError> {
        self.hook.before(Op::PutIfAbsent, key).await?;
        self.inner.put_if_absent(key, bytes).await
    }
    async fn put_file(&self, key: &str, path: &Path) -> Result<(), ObjectStoreError> {
        self.hook.before(Op::PutFile, key).await?;
        self.inner.put_file(key, path).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, ObjectStoreError> {
        self.hook.before(Op::Head, key).await?;
        self.inner.head(key).await
    }
    async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, ObjectStoreError> {
        self.hook.before(Op::GetRange, key).await?;
        self.inner.get_range(key, range).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        self.hook.before(Op::Get, key).await?;
        self.inner.get(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError> {
        self.hook.before(Op::List, prefix).await?;
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        self.hook.before(Op::Delete, key).await?;
        self.inner.delete(key).await
    }
    fn uri(&self, key: &str) -> String {
        self.inner.uri(key)
    }
}

/// The error a hook returns to fail an operation, naming what was injected.
pub fn injected(key: &str, what: &str) -> ObjectStoreError {
    ObjectStoreError::Backend {
        key: key.to_string(),
        message: format!("injected {what}"),
    }
}
