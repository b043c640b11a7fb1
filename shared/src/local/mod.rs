//! Local implementations of the ports, for the embedded single-process mode.

pub mod fs_store;
pub mod sqlite_queue;

pub use fs_store::LocalFsStore;
pub use sqlite_queue::{SqliteQueue, SqliteQueues};
