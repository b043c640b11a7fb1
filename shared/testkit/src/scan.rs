//! Reading a table back the way a query engine would, for tests.

use arrow::array::RecordBatch;
use futures_util::TryStreamExt;

/// Every row of `table`'s current snapshot, read by the `iceberg` crate's own
/// scan (not by our code), as Arrow batches.
pub async fn current_rows(table: &iceberg::table::Table) -> Vec<RecordBatch> {
    table
        .scan()
        .build()
        .expect("planning a scan")
        .to_arrow()
        .await
        .expect("opening the scan")
        .try_collect()
        .await
        .expect("reading the scan")
}
