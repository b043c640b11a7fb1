//! The small traits the pipeline stages are written against.
//!
//! Each stage (ingest, compact, commit) is a plain async function over these
//! ports, so the same code runs in one process on a laptop (local
//! implementations in the `otlp2parquet-local` crate) and as AWS Lambdas (SQS, S3).

pub mod memory;
pub mod object_store;
pub mod queue;
pub mod sink;

pub use memory::{MemoryQueue, MemoryQueues, MemoryStore};
pub use object_store::{ObjectMeta, ObjectStore, ObjectStoreError, get_json, parquet_metadata};
pub use queue::{FAILURE_REASON_ATTRIBUTE, Queue, QueueError, ReceivedMessage, SendOptions};
pub use sink::{MessageSink, ObjectSink};
