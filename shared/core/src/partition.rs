//! Day partitions: how rows are split into files and where those files go.
//!
//! Every table is partitioned by `day(<time column>)`. A data file must hold a
//! single day (Iceberg's partition value is per file), so ingest splits each
//! request's rows by day before writing, and every file lands under the
//! directory Iceberg writers use for that day (`Timestamp_day=2026-01-01`).

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::TimestampMicrosecondType;

use crate::schema::time_column;
use crate::{Error, Result, Table};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The day (days since the epoch) of a `timestamptz` value in microseconds.
pub fn day_of(micros: i64) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

/// Splits `batch` by the day of its time column, the tables' partition: one
/// batch per day (`None` for rows without a time), days in ascending order.
pub fn split_by_day(table: Table, batch: &RecordBatch) -> Result<Vec<(Option<i32>, RecordBatch)>> {
    let arrow = |source| Error::Arrow {
        table: table.name(),
        source,
    };
    let column = batch
        .column_by_name(time_column(table))
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| {
            arrow(arrow::error::ArrowError::SchemaError(format!(
                "{table} has no timestamp column {}",
                time_column(table)
            )))
        })?;
    let mut rows: std::collections::BTreeMap<Option<i32>, Vec<u32>> = Default::default();
    for i in 0..column.len() {
        let day = column.is_valid(i).then(|| day_of(column.value(i)));
        rows.entry(day).or_default().push(i as u32);
    }
    if rows.len() == 1 {
        let day = *rows.keys().next().unwrap_or(&None);
        return Ok(vec![(day, batch.clone())]);
    }
    rows.into_iter()
        .map(|(day, indices)| {
            let taken = take_record_batch(batch, &UInt32Array::from(indices)).map_err(arrow)?;
            Ok((day, taken))
        })
        .collect()
}

/// The partition directory of a day, as Iceberg writers name it (`Timestamp_day=2026-01-01`).
pub fn partition_path(table: Table, day: Option<i32>) -> String {
    let name = format!("{}_day", time_column(table));
    match day.and_then(civil_date) {
        Some(date) => format!("{name}={date}"),
        None => format!("{name}=null"),
    }
}

/// `YYYY-MM-DD` of a day number, without pulling in a date library for one format.
fn civil_date(days: i32) -> Option<String> {
    // Howard Hinnant's civil_from_days.
    let z = i64::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (0..=9999)
        .contains(&y)
        .then(|| format!("{y:04}-{m:02}-{d:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_days() {
        assert_eq!(civil_date(0).unwrap(), "1970-01-01");
        assert_eq!(civil_date(20_454).unwrap(), "2026-01-01");
        assert_eq!(civil_date(-1).unwrap(), "1969-12-31");
        assert_eq!(civil_date(11_016).unwrap(), "2000-02-29");
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_of(MICROS_PER_DAY), 1);
    }
}
