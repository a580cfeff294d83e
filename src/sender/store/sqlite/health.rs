//! The health rollup in SQLite: written with each attempt, read by
//! [`destination_health`](crate::sender::DeliveryStore::destination_health).

use rusqlite::{Connection, Row, params};

use super::db_err;
use crate::sender::delivery::DeliveryAttempt;
use crate::sender::error::DeliveryStoreError;
use crate::sender::health::{
    AttemptCounts, BUCKETS, DestinationHealth, HealthWindow, LastError, QueueHealth, SLOTS,
    assemble, bucket_columns, bucket_of, minute_of,
};

/// Counts `a` in its destination's minute and keeps it as the
/// destination's last error when it failed (and is not older than it).
pub(super) fn record(conn: &Connection, a: &DeliveryAttempt) -> Result<(), DeliveryStoreError> {
    let sql = format!(
        "INSERT INTO attempt_minutes (destination_id, minute_ms, attempts, successes, max_ms, {}) \
         SELECT destination_id, ?2, 1, ?3, ?4, {} FROM deliveries WHERE id = ?1 \
         ON CONFLICT (destination_id, minute_ms) DO UPDATE SET attempts = attempts + 1, \
         successes = successes + excluded.successes, max_ms = MAX(max_ms, excluded.max_ms), {}",
        bucket_columns(|i| format!("b{i}")),
        bucket_columns(|i| format!("?5 = {i}")),
        bucket_columns(|i| format!("b{i} = b{i} + excluded.b{i}")),
    );
    let duration = i64::try_from(a.duration_ms).unwrap_or(i64::MAX);
    let bucket = i64::try_from(bucket_of(a.duration_ms)).unwrap_or(i64::MAX);
    conn.prepare_cached(&sql)
        .map_err(db_err)?
        .execute(params![
            a.delivery_id,
            minute_of(a.started_at_ms),
            a.succeeded(),
            duration,
            bucket
        ])
        .map_err(db_err)?;
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

/// The window's rollup rows of each destination of `ids`, added up per
/// hourly slot here rather than by a `GROUP BY` (which sorted every row of
/// the day): one primary-key range per destination, however long the
/// history, at most 1,440 rows each.
fn read_slots(
    conn: &Connection,
    ids: &[String],
    window: HealthWindow,
) -> Result<Vec<(String, usize, AttemptCounts)>, DeliveryStoreError> {
    let sql = format!(
        "SELECT minute_ms, attempts, successes, max_ms, {} FROM attempt_minutes \
         WHERE destination_id = ?1 AND minute_ms >= ?2 AND minute_ms < ?3",
        bucket_columns(|i| format!("b{i}")),
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let mut slots = Vec::new();
    for id in ids {
        let mut day = [AttemptCounts::default(); SLOTS];
        let mut rows = stmt
            .query(params![id, window.start_ms, window.end_ms])
            .map_err(db_err)?;
        while let Some(r) = rows.next().map_err(db_err)? {
            let minute: i64 = r.get(0).map_err(db_err)?;
            if let Some(slot) = window.slot_of(minute).and_then(|s| day.get_mut(s)) {
                slot.merge(&counts(r).map_err(db_err)?);
            }
        }
        slots.extend(day.into_iter().enumerate().map(|(i, c)| (id.clone(), i, c)));
    }
    Ok(slots)
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
