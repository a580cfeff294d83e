//! The health rollup in SQLite: written with each attempt, read by
//! [`destination_health`](crate::sender::DeliveryStore::destination_health).

use std::sync::OnceLock;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::db_err;
use crate::sender::delivery::DeliveryAttempt;
use crate::sender::error::DeliveryStoreError;
use crate::sender::health::{
    AttemptCounts, BUCKETS, DestinationHealth, HealthWindow, LastError, MINUTE_ROWS_KEPT_MS,
    QueueHealth, WindowPart, assemble, bucket_columns, bucket_of, hour_of, minute_of,
};

/// The upsert counting one attempt in a rollup `table` keyed by `period`:
/// `?1` the delivery, `?2` the period's start, `?3` success, `?4` the
/// duration, `?5` the bucket. Returns the row's attempts.
fn rollup_upsert(table: &str, period: &str) -> String {
    format!(
        "INSERT INTO {table} (destination_id, {period}, attempts, successes, max_ms, {}) \
         SELECT destination_id, ?2, 1, ?3, ?4, {} FROM deliveries WHERE id = ?1 \
         ON CONFLICT (destination_id, {period}) DO UPDATE SET attempts = attempts + 1, \
         successes = successes + excluded.successes, max_ms = MAX(max_ms, excluded.max_ms), {} \
         RETURNING destination_id, attempts",
        bucket_columns(|i| format!("b{i}")),
        bucket_columns(|i| format!("?5 = {i}")),
        bucket_columns(|i| format!("b{i} = b{i} + excluded.b{i}")),
    )
}

/// The upserts of the minute and the hour rollup, built once: each
/// attempt runs both.
fn rollup_upserts() -> &'static [String; 2] {
    static SQL: OnceLock<[String; 2]> = OnceLock::new();
    SQL.get_or_init(|| {
        [
            rollup_upsert("attempt_minutes", "minute_ms"),
            rollup_upsert("attempt_hours", "hour_ms"),
        ]
    })
}

/// Counts `a` in its destination's minute and hour, and keeps it as the
/// destination's last error when it failed (and is not older than it).
/// The first attempt of an hour deletes the destination's minute rows
/// older than [`MINUTE_ROWS_KEPT_MS`], which the health no longer reads.
pub(super) fn record(conn: &Connection, a: &DeliveryAttempt) -> Result<(), DeliveryStoreError> {
    let duration = i64::try_from(a.duration_ms).unwrap_or(i64::MAX);
    let bucket = i64::try_from(bucket_of(a.duration_ms)).unwrap_or(i64::MAX);
    let minute = minute_of(a.started_at_ms);
    let [minutes, hours] = rollup_upserts();
    for (sql, start, is_hour) in [
        (minutes, minute, false),
        (hours, hour_of(a.started_at_ms), true),
    ] {
        let row: Option<(String, i64)> = conn
            .prepare_cached(sql)
            .map_err(db_err)?
            .query_row(
                params![a.delivery_id, start, a.succeeded(), duration, bucket],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_err)?;
        if let (Some((destination, 1)), true) = (row, is_hour) {
            conn.prepare_cached(
                "DELETE FROM attempt_minutes WHERE destination_id = ?1 AND minute_ms < ?2",
            )
            .map_err(db_err)?
            .execute(params![destination, minute - MINUTE_ROWS_KEPT_MS])
            .map_err(db_err)?;
        }
    }
    let Some(e) = LastError::of(a) else {
        return Ok(());
    };
    conn.prepare_cached(
        "INSERT INTO destination_errors (destination_id, at_ms, status_code, message) \
         SELECT destination_id, ?2, ?3, ?4 FROM deliveries WHERE id = ?1 \
         ON CONFLICT (destination_id) DO UPDATE SET at_ms = excluded.at_ms, \
         status_code = excluded.status_code, message = excluded.message \
         WHERE excluded.at_ms >= destination_errors.at_ms",
    )
    .map_err(db_err)?
    .execute(params![a.delivery_id, e.at_ms, e.status_code, e.message])
    .map_err(db_err)?;
    Ok(())
}

/// Every destination's health at `now_ms`, in registration order.
pub(super) fn read(
    conn: &Connection,
    now_ms: i64,
) -> Result<Vec<DestinationHealth>, DeliveryStoreError> {
    let window = HealthWindow::at(now_ms);
    let ids = conn
        .prepare_cached("SELECT id FROM destinations ORDER BY position")
        .map_err(db_err)?
        .query_map([], |r| r.get(0))
        .map_err(db_err)?
        .collect::<Result<Vec<String>, _>>()
        .map_err(db_err)?;
    let slots = read_slots(conn, &ids, window)?;
    let errors = conn
        .prepare_cached(
            "SELECT destination_id, at_ms, status_code, message FROM destination_errors",
        )
        .map_err(db_err)?
        .query_map([], |r| {
            let error = LastError {
                at_ms: r.get(1)?,
                status_code: r.get(2)?,
                message: r.get(3)?,
            };
            Ok((r.get(0)?, error))
        })
        .map_err(db_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    let queues = read_queues(conn, now_ms)?;
    Ok(assemble(ids, slots, errors, queues, window))
}

/// The window's rollup rows of each destination of `ids`: its hourly
/// slots from at most 24 hour rows, its last hour and the day's edge from
/// at most 118 minute rows, each a primary-key range however long the
/// history. Rows are added up here rather than by a `GROUP BY`, which
/// would sort them.
fn read_slots(
    conn: &Connection,
    ids: &[String],
    window: HealthWindow,
) -> Result<Vec<(String, WindowPart, AttemptCounts)>, DeliveryStoreError> {
    let columns = bucket_columns(|i| format!("b{i}"));
    let mut hours = conn
        .prepare_cached(&format!(
            "SELECT hour_ms, attempts, successes, max_ms, {columns} FROM attempt_hours \
             WHERE destination_id = ?1 AND hour_ms >= ?2 AND hour_ms < ?3"
        ))
        .map_err(db_err)?;
    let mut minutes = conn
        .prepare_cached(&format!(
            "SELECT minute_ms, attempts, successes, max_ms, {columns} FROM attempt_minutes \
             WHERE destination_id = ?1 AND minute_ms >= ?2 AND minute_ms < ?3"
        ))
        .map_err(db_err)?;
    let mut read = Vec::new();
    for id in ids {
        let mut rows = hours
            .query(params![id, window.first_hour_ms, window.slots_end_ms()])
            .map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let hour: i64 = r.get(0).map_err(db_err)?;
            if let Some(slot) = window.slot_of(hour) {
                read.push((
                    id.clone(),
                    WindowPart::Slot(slot),
                    counts(r).map_err(db_err)?,
                ));
            }
        }
        for (part, from, to) in [
            (WindowPart::DayEdge, window.start_ms, window.first_hour_ms),
            (WindowPart::LastHour, window.hour_start_ms, window.end_ms),
        ] {
            let mut sum = AttemptCounts::default();
            let mut rows = minutes.query(params![id, from, to]).map_err(db_err)?;
            while let Some(r) = rows.next().map_err(db_err)? {
                sum.merge(&counts(r).map_err(db_err)?);
            }
            read.push((id.clone(), part, sum));
        }
    }
    Ok(read)
}

/// Counts from columns 1.. of a rollup row.
fn counts(r: &Row<'_>) -> rusqlite::Result<AttemptCounts> {
    let mut columns = [None; 3 + BUCKETS];
    for (i, c) in columns.iter_mut().enumerate() {
        *c = Some(r.get::<_, i64>(i + 1)?);
    }
    Ok(AttemptCounts::from_columns(&columns))
}

/// Pending deliveries per destination: all, due, the oldest due time.
fn read_queues(
    conn: &Connection,
    now_ms: i64,
) -> Result<Vec<(String, QueueHealth)>, DeliveryStoreError> {
    conn.prepare_cached(
        "SELECT destination_id, COUNT(*), COALESCE(SUM(next_attempt_at_ms <= ?1), 0), \
         MIN(CASE WHEN next_attempt_at_ms <= ?1 THEN next_attempt_at_ms END) \
         FROM deliveries WHERE status = 'pending' GROUP BY destination_id",
    )
    .map_err(db_err)?
    .query_map([now_ms], |r| {
        let (pending, due): (i64, i64) = (r.get(1)?, r.get(2)?);
        let queue = QueueHealth {
            pending: u64::try_from(pending).unwrap_or(0),
            due: u64::try_from(due).unwrap_or(0),
            oldest_due_at_ms: r.get(3)?,
        };
        Ok((r.get(0)?, queue))
    })
    .map_err(db_err)?
    .collect::<Result<Vec<_>, _>>()
    .map_err(db_err)
}
