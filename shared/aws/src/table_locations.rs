//! [`TableLocations`]: one object store over the state bucket and the
//! locations S3 Tables gives each table.
//!
//! The compaction stage addresses everything by the keys of the warehouse
//! layout (`<namespace>/<table>/data/raw/…` for raw files,
//! `<namespace>/<table>/data/<day>/…` for compacted ones). In S3 Tables mode
//! those live in two places: raw files in the general-purpose state bucket,
//! where they can be listed and deleted once compacted; compacted files in
//! the table's own location (`s3://<id>--table-s3/data/<day>/…`), where a
//! committed file must be. This store routes each key to its place, so the
//! stage runs unchanged.
//!
//! A table bucket refuses DeleteObject. Deleting in a table location is
//! therefore a no-op here: what the stage deletes there are outputs of
//! compaction attempts that lost, which no snapshot references, and S3
//! Tables' unreferenced-file removal deletes those itself (after 3 + 10 days
//! by default).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use otlp2parquet_core::ports::{ObjectMeta, ObjectStore, ObjectStoreError};
use tracing::debug;

use crate::S3Store;

/// See the module docs.
pub struct TableLocations {
    namespace: String,
    state: Arc<dyn ObjectStore>,
    /// By table name: the store of the table's location.
    tables: BTreeMap<String, Arc<dyn ObjectStore>>,
}

/// Where a key goes.
enum Route<'a> {
    /// The state bucket, under the same key.
    State,
    /// A table's location, under the key's part after `<namespace>/<table>/`.
    Table(&'a Arc<dyn ObjectStore>, &'a str),
}

impl TableLocations {
    /// Raw files and everything but compacted files in `state`; the
    /// compacted files of each table of `locations` (table name →
    /// `s3://bucket[/prefix]`) in that location, through `client`.
    pub fn new(
        namespace: impl Into<String>,
        state: Arc<dyn ObjectStore>,
        client: aws_sdk_s3::Client,
        locations: &BTreeMap<String, String>,
    ) -> Result<Self, ObjectStoreError> {
        let mut tables = BTreeMap::new();
        for (table, location) in locations {
            let store = S3Store::from_uri(client.clone(), location).ok_or_else(|| {
                ObjectStoreError::Backend {
                    key: location.clone(),
                    message: format!("the location of table {table} is not an s3:// URI"),
                }
            })?;
            tables.insert(table.clone(), Arc::new(store) as Arc<dyn ObjectStore>);
        }
        Ok(TableLocations {
            namespace: namespace.into(),
            state,
            tables,
        })
    }

    fn route<'a>(&'a self, key: &'a str) -> Route<'a> {
        let Some(rest) = key
            .strip_prefix(self.namespace.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            return Route::State;
        };
        let Some((table, in_table)) = rest.split_once('/') else {
            return Route::State;
        };
        match self.tables.get(table) {
            Some(store) if in_table.starts_with("data/") && !in_table.starts_with("data/raw/") => {
                Route::Table(store, in_table)
            }
            _ => Route::State,
        }
    }
}

#[async_trait]
impl ObjectStore for TableLocations {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), ObjectStoreError> {
        match self.route(key) {
            Route::State => self.state.put(key, bytes).await,
            Route::Table(store, key) => store.put(key, bytes).await,
        }
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<bool, ObjectStoreError> {
        match self.route(key) {
            Route::State => self.state.put_if_absent(key, bytes).await,
            Route::Table(store, key) => store.put_if_absent(key, bytes).await,
        }
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), ObjectStoreError> {
        match self.route(key) {
            Route::State => self.state.put_file(key, path).await,
            Route::Table(store, key) => store.put_file(key, path).await,
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, ObjectStoreError> {
        match self.route(key) {
            Route::State => self.state.head(key).await,
            Route::Table(store, key) => store.head(key).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, ObjectStoreError> {
        match self.route(key) {
            Route::State => self.state.get(key).await,
            Route::Table(store, key) => store.get(key).await,
        }
    }

    async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, ObjectStoreError> {
        match self.route(key) {
            Route::State => self.state.get_range(key, range).await,
            Route::Table(store, key) => store.get_range(key, range).await,
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, ObjectStoreError> {
        match self.route(prefix) {
            Route::State => self.state.list(prefix).await,
            // A table bucket cannot list; the stages never ask it to.
            Route::Table(..) => Err(ObjectStoreError::Backend {
                key: prefix.to_string(),
                message: "an S3 Tables location cannot be listed".into(),
            }),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectStoreError> {
        match self.route(key) {
            Route::State => self.state.delete(key).await,
            Route::Table(_, in_table) => {
                debug!(
                    key,
                    in_table, "left to S3 Tables' unreferenced-file removal"
                );
                Ok(())
            }
        }
    }

    fn uri(&self, key: &str) -> String {
        match self.route(key) {
            Route::State => self.state.uri(key),
            Route::Table(store, key) => store.uri(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otlp2parquet_core::ports::MemoryStore;

    fn locations() -> (Arc<MemoryStore>, Arc<MemoryStore>, TableLocations) {
        let state = Arc::new(MemoryStore::new());
        let table = Arc::new(MemoryStore::new());
        let store = TableLocations {
            namespace: "otel".into(),
            state: state.clone(),
            tables: BTreeMap::from([("logs".to_string(), table.clone() as Arc<dyn ObjectStore>)]),
        };
        (state, table, store)
    }

    #[tokio::test]
    async fn raw_files_and_records_stay_in_state_compacted_files_go_to_the_table() {
        let (state, table, store) = locations();
        for key in [
            "otel/logs/data/raw/a.parquet",
            "otel/logs/compaction/x.plan.json",
            "otel/traces/data/Timestamp_day=2026-01-01/b.parquet",
        ] {
            store.put(key, Bytes::from_static(b"s")).await.unwrap();
            assert!(state.exists(key).await.unwrap(), "{key}");
        }
        let compacted = "otel/logs/data/Timestamp_day=2026-01-01/c.parquet";
        store
            .put(compacted, Bytes::from_static(b"t"))
            .await
            .unwrap();
        assert!(
            table
                .exists("data/Timestamp_day=2026-01-01/c.parquet")
                .await
                .unwrap()
        );
        assert!(!state.exists(compacted).await.unwrap());
        assert_eq!(store.get(compacted).await.unwrap(), "t");
        // Deleting in a table location is left to S3 Tables.
        store.delete(compacted).await.unwrap();
        assert!(store.exists(compacted).await.unwrap());
        store.delete("otel/logs/data/raw/a.parquet").await.unwrap();
        assert!(!state.exists("otel/logs/data/raw/a.parquet").await.unwrap());
    }
}
