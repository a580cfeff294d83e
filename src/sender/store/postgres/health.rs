//! The health rollup in PostgreSQL: written by `record_attempt` (the SQL
//! here joins its statement), read by
//! [`destination_health`](crate::sender::DeliveryStore::destination_health).
//! Every node writes the same rows, so every node reads the same figures.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::pg_err;
use crate::sender::delivery::DeliveryAttempt;
use crate::sender::error::DeliveryStoreError;
use crate::sender::health::{
    AttemptCounts, BUCKETS, DestinationHealth, HealthWindow, LastError, MINUTE_ROWS_KEPT_MS,
    QueueHealth, SLOT_MS, WindowPart, assemble, bucket_columns, bucket_of, hour_of, minute_of,
};

/// A common table expression named `name` counting the attempt (`$1`
/// delivery) in a rollup `table` keyed by `period` (its start `param`,
/// success `$18`, duration `$4`, bucket `$19`), returning the row's
/// destination and attempts.
fn rollup_cte(name: &str, table: &str, period: &str, param: &str) -> String {
    format!(
        "{name} AS ( \
             INSERT INTO {table} AS t (destination_id, {period}, attempts, successes, max_ms, {}) \
             SELECT destination_id, {param}::bigint, 1, CASE WHEN $18::bool THEN 1 ELSE 0 END, \
             $4::bigint, {} FROM sender_deliveries WHERE id = $1 \
             ON CONFLICT (destination_id, {period}) DO UPDATE SET attempts = t.attempts + 1, \
             successes = t.successes + excluded.successes, \
             max_ms = GREATEST(t.max_ms, excluded.max_ms), {} \
             RETURNING t.destination_id, t.attempts)",
        bucket_columns(|i| format!("b{i}")),
        bucket_columns(|i| format!("($19::int = {i})::int")),
        bucket_columns(|i| format!("b{i} = t.b{i} + excluded.b{i}")),
    )
}

/// Common table expressions for `record_attempt`'s statement: count the
/// attempt (`$1` delivery, `$3` start) in its destination's minute (`$17`)
/// and hour (`$21`); on the hour's first attempt delete the destination's
/// minute rows older than [`MINUTE_ROWS_KEPT_MS`], which the health no
/// longer reads; keep it as the last error (`$20` its message, `NULL` for
/// a success, `$5` status code) unless a later one is stored.
pub(super) fn record_ctes() -> String {
    format!(
        "{}, {}, \
         pruned AS ( \
             DELETE FROM sender_attempt_minutes m USING hour_rollup h \
             WHERE h.attempts = 1 AND m.destination_id = h.destination_id \
             AND m.minute_ms < $17::bigint - {MINUTE_ROWS_KEPT_MS}), \
         last_error AS ( \
             INSERT INTO sender_destination_errors AS t (destination_id, at_ms, status_code, message) \
             SELECT destination_id, $3::bigint, $5::int, $20::text FROM sender_deliveries \
             WHERE id = $1 AND $20::text IS NOT NULL \
             ON CONFLICT (destination_id) DO UPDATE SET at_ms = excluded.at_ms, \
             status_code = excluded.status_code, message = excluded.message \
             WHERE excluded.at_ms >= t.at_ms)",
        rollup_cte(
            "minute_rollup",
            "sender_attempt_minutes",
            "minute_ms",
            "$17"
        ),
        rollup_cte("hour_rollup", "sender_attempt_hours", "hour_ms", "$21"),
    )
}

/// The values of `$17..=$21` for [`record_ctes`].
pub(super) fn record_params(a: &DeliveryAttempt) -> (i64, bool, i32, Option<String>, i64) {
    let bucket = i32::try_from(bucket_of(a.duration_ms)).unwrap_or(i32::MAX);
    let message = LastError::of(a).map(|e| e.message);
    let (minute, hour) = (minute_of(a.started_at_ms), hour_of(a.started_at_ms));
    (minute, a.succeeded(), bucket, message, hour)
}

/// Every destination's health at `now_ms`, in registration order.
pub(super) async fn read(
    client: &impl GenericClient,
    now_ms: i64,
) -> Result<Vec<DestinationHealth>, DeliveryStoreError> {
    let window = HealthWindow::at(now_ms);
    let ids = client
        .query("SELECT id FROM sender_destinations ORDER BY position", &[])
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()
        .map_err(pg_err)?;
    let slots = read_slots(client, window).await?;
    let errors = client
        .query(
            "SELECT destination_id, at_ms, status_code, message FROM sender_destination_errors",
            &[],
        )
        .await
        .map_err(pg_err)?
        .iter()
        .map(last_error)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pg_err)?;
    let queues = read_queues(client, now_ms).await?;
    Ok(assemble(ids, slots, errors, queues, window))
}

fn last_error(r: &Row) -> Result<(String, LastError), tokio_postgres::Error> {
    let code: Option<i32> = r.try_get(2)?;
    let error = LastError {
        at_ms: r.try_get(1)?,
        status_code: code.and_then(|c| u16::try_from(c).ok()),
        message: r.try_get(3)?,
    };
    Ok((r.try_get(0)?, error))
}

/// The window's rollup rows per destination and part of the window: the
/// hourly slots from at most 24 hour rows each, the last hour and the
/// day's edge summed from at most 118 minute rows each. The lateral join
/// makes each a primary-key range per destination, however long the
/// history; a plain join on the time ranges scanned the whole minute table
/// (65 ms with a week of minutes for 20 destinations, 5.5 ms this way).
async fn read_slots(
    client: &impl GenericClient,
    window: HealthWindow,
) -> Result<Vec<(String, WindowPart, AttemptCounts)>, DeliveryStoreError> {
    let minutes = |part: i32, from: &str, to: &str| {
        format!(
            "SELECT {part}::bigint, SUM(m.attempts)::bigint, SUM(m.successes)::bigint, \
                 MAX(m.max_ms), {} \
             FROM sender_attempt_minutes m WHERE m.destination_id = d.id \
                 AND m.minute_ms >= {from} AND m.minute_ms < {to}",
            bucket_columns(|i| format!("SUM(m.b{i})::bigint")),
        )
    };
    let sql = format!(
        "SELECT d.id, p.* FROM sender_destinations d CROSS JOIN LATERAL ( \
             SELECT (h.hour_ms - $1) / {SLOT_MS}, h.attempts, h.successes, h.max_ms, {} \
             FROM sender_attempt_hours h WHERE h.destination_id = d.id \
                 AND h.hour_ms >= $1 AND h.hour_ms < $2 \
             UNION ALL {} UNION ALL {}) p",
        bucket_columns(|i| format!("h.b{i}")),
        minutes(-1, "$3", "$4"),
        minutes(-2, "$5", "$6"),
    );
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        &window.first_hour_ms,
        &window.slots_end_ms(),
        &window.start_ms,
        &window.first_hour_ms,
        &window.hour_start_ms,
        &window.end_ms,
    ];
    let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
    client
        .query(&stmt, &params)
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| {
            let part = match r.try_get::<_, i64>(1)? {
                -1 => WindowPart::DayEdge,
                -2 => WindowPart::LastHour,
                slot => WindowPart::Slot(usize::try_from(slot).unwrap_or(usize::MAX)),
            };
            Ok((r.try_get(0)?, part, counts(r)?))
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map_err(pg_err)
}

/// Counts from columns 2.. of a slot row.
fn counts(r: &Row) -> Result<AttemptCounts, tokio_postgres::Error> {
    let columns = (2..5 + BUCKETS)
        .map(|i| r.try_get(i))
        .collect::<Result<Vec<Option<i64>>, _>>()?;
    Ok(AttemptCounts::from_columns(&columns))
}

/// Pending deliveries per destination: all, due, the oldest due time.
async fn read_queues(
    client: &impl GenericClient,
    now_ms: i64,
) -> Result<Vec<(String, QueueHealth)>, DeliveryStoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT destination_id, COUNT(*), COUNT(*) FILTER (WHERE next_attempt_at_ms <= $1), \
             MIN(next_attempt_at_ms) FILTER (WHERE next_attempt_at_ms <= $1) \
             FROM sender_deliveries WHERE status = 'pending' GROUP BY destination_id",
        )
        .await
        .map_err(pg_err)?;
    client
        .query(&stmt, &[&now_ms])
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| {
            let (pending, due): (i64, i64) = (r.try_get(1)?, r.try_get(2)?);
            let queue = QueueHealth {
                pending: u64::try_from(pending).unwrap_or(0),
                due: u64::try_from(due).unwrap_or(0),
                oldest_due_at_ms: r.try_get(3)?,
            };
            Ok((r.try_get(0)?, queue))
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map_err(pg_err)
}
