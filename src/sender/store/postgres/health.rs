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
    AttemptCounts, BUCKETS, DestinationHealth, HealthWindow, LastError, QueueHealth, SLOT_MS,
    assemble, bucket_columns, bucket_of, minute_of,
};

/// Two common table expressions for `record_attempt`'s statement: count
/// the attempt (`$1` delivery, `$3` start) in its destination's minute
/// (`$17`, success `$18`, duration `$4`, bucket `$19`) and keep it as the
/// last error (`$20` its message, `NULL` for a success, `$5` status code)
/// unless a later one is stored.
pub(super) fn record_ctes() -> String {
    format!(
        "rollup AS ( \
             INSERT INTO sender_attempt_minutes AS t (destination_id, minute_ms, attempts, \
             successes, max_ms, {}) \
             SELECT destination_id, $17::bigint, 1, CASE WHEN $18::bool THEN 1 ELSE 0 END, \
             $4::bigint, {} FROM sender_deliveries WHERE id = $1 \
             ON CONFLICT (destination_id, minute_ms) DO UPDATE SET attempts = t.attempts + 1, \
             successes = t.successes + excluded.successes, \
             max_ms = GREATEST(t.max_ms, excluded.max_ms), {}), \
         last_error AS ( \
             INSERT INTO sender_destination_errors AS t (destination_id, at_ms, status_code, message) \
             SELECT destination_id, $3::bigint, $5::int, $20::text FROM sender_deliveries \
             WHERE id = $1 AND $20::text IS NOT NULL \
             ON CONFLICT (destination_id) DO UPDATE SET at_ms = excluded.at_ms, \
             status_code = excluded.status_code, message = excluded.message \
             WHERE excluded.at_ms >= t.at_ms)",
        bucket_columns(|i| format!("b{i}")),
        bucket_columns(|i| format!("($19::int = {i})::int")),
        bucket_columns(|i| format!("b{i} = t.b{i} + excluded.b{i}")),
    )
}

/// The values of `$17..=$20` for [`record_ctes`].
pub(super) fn record_params(a: &DeliveryAttempt) -> (i64, bool, i32, Option<String>) {
    let bucket = i32::try_from(bucket_of(a.duration_ms)).unwrap_or(i32::MAX);
    let message = LastError::of(a).map(|e| e.message);
    (minute_of(a.started_at_ms), a.succeeded(), bucket, message)
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

/// The window's rollup rows summed per destination and hourly slot; one
/// primary-key range per destination, however long the history.
async fn read_slots(
    client: &impl GenericClient,
    window: HealthWindow,
) -> Result<Vec<(String, usize, AttemptCounts)>, DeliveryStoreError> {
    let sql = format!(
        "SELECT m.destination_id, (m.minute_ms - $1) / {SLOT_MS}, SUM(m.attempts)::bigint, \
         SUM(m.successes)::bigint, MAX(m.max_ms), {} \
         FROM sender_destinations d JOIN sender_attempt_minutes m ON m.destination_id = d.id \
         AND m.minute_ms >= $1 AND m.minute_ms < $2 GROUP BY 1, 2",
        bucket_columns(|i| format!("SUM(m.b{i})::bigint")),
    );
    let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
    client
        .query(&stmt, &[&window.start_ms, &window.end_ms])
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| {
            let slot: i64 = r.try_get(1)?;
            Ok((
                r.try_get(0)?,
                usize::try_from(slot).unwrap_or(usize::MAX),
                counts(r)?,
            ))
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
