//! The SQL of each store operation, and the mapping between rows and the
//! sender's types (destinations, events, deliveries, attempts, dead
//! letters). Every function runs inside the store thread's current commit
//! group and may run twice (see the engine), so it only touches the
//! database.

use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::super::seal::{SecretSeal, decode_secrets};
use super::super::{EventContent, NewDelivery, NextStep, QueueStats, not_stored, page_of};
use super::db_err;
use crate::scheme::SchemeName;
use crate::sender::delivery::{
    Delivery, DeliveryAttempt, DeliveryQuery, DeliveryStatus, ErrorClass, OutgoingEvent, Page,
};
use crate::sender::destination::{Destination, EventFilter};
use crate::sender::error::{DeliveryStoreError, SenderError};
use crate::trace_context::TraceParent;

/// A column whose stored text does not read back as its type.
fn bad_column(
    column: usize,
    error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, error.into())
}

/// Inserts or updates a destination; a new one goes last in registration
/// order. `events` is the filter as JSON, `secrets` the encoded keys.
pub(super) fn save_destination(
    conn: &Connection,
    d: &Destination,
    events: &str,
    secrets: &str,
) -> Result<(), DeliveryStoreError> {
    conn.execute(
        "INSERT INTO destinations (id, url, scheme, events, enabled, disabled_reason, \
         created_at_ms, secrets, position) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, \
         (SELECT COALESCE(MAX(position), 0) + 1 FROM destinations)) \
         ON CONFLICT(id) DO UPDATE SET url = excluded.url, scheme = excluded.scheme, \
         events = excluded.events, enabled = excluded.enabled, \
         disabled_reason = excluded.disabled_reason, secrets = excluded.secrets",
        params![
            d.id,
            d.url,
            d.scheme.as_str(),
            events,
            d.enabled,
            d.disabled_reason,
            d.created_at_ms,
            secrets
        ],
    )
    .map_err(db_err)?;
    Ok(())
}

const DESTINATION_COLUMNS: &str =
    "id, url, scheme, events, enabled, disabled_reason, created_at_ms, secrets";

/// A destination row, with its keys still encoded (see
/// [`finish_destination`]).
fn destination_from_row(row: &Row<'_>) -> rusqlite::Result<(Destination, String)> {
    let scheme: String = row.get(2)?;
    let scheme: SchemeName = scheme.parse().map_err(|e| bad_column(2, e))?;
    let events: String = row.get(3)?;
    let events: EventFilter = serde_json::from_str(&events).map_err(|e| bad_column(3, e))?;
    Ok((
        Destination {
            id: row.get(0)?,
            url: row.get(1)?,
            scheme,
            events,
            enabled: row.get(4)?,
            disabled_reason: row.get(5)?,
            created_at_ms: row.get(6)?,
            secrets: Vec::new(),
        },
        row.get(7)?,
    ))
}

fn finish_destination(
    (mut d, secrets): (Destination, String),
    seal: Option<&dyn SecretSeal>,
) -> Result<Destination, DeliveryStoreError> {
    d.secrets = decode_secrets(&secrets, seal)?;
    Ok(d)
}

/// The destination with this id, its keys opened with `seal`.
pub(super) fn load_destination(
    conn: &Connection,
    id: &str,
    seal: Option<&dyn SecretSeal>,
) -> Result<Option<Destination>, DeliveryStoreError> {
    conn.query_row(
        &format!("SELECT {DESTINATION_COLUMNS} FROM destinations WHERE id = ?1"),
        [id],
        destination_from_row,
    )
    .optional()
    .map_err(db_err)?
    .map(|row| finish_destination(row, seal))
    .transpose()
}

/// Every destination in registration order, keys opened with `seal`.
pub(super) fn list_destinations(
    conn: &Connection,
    seal: Option<&dyn SecretSeal>,
) -> Result<Vec<Destination>, DeliveryStoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {DESTINATION_COLUMNS} FROM destinations ORDER BY position"
        ))
        .map_err(db_err)?;
    let rows = stmt
        .query_map([], destination_from_row)
        .map_err(db_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    rows.into_iter()
        .map(|row| finish_destination(row, seal))
        .collect()
}

/// Disables a destination that is enabled; whether it was.
pub(super) fn disable_destination(
    conn: &Connection,
    id: &str,
    reason: &str,
) -> Result<bool, DeliveryStoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE destinations SET enabled = 0, disabled_reason = ?2 \
             WHERE id = ?1 AND enabled = 1",
        )
        .map_err(db_err)?
        .execute(params![id, reason])
        .map_err(db_err)?;
    Ok(changed == 1)
}

/// The queue's depth and its oldest claimable due time (both read from the
/// partial index of pending deliveries; the second stops at the first row
/// in due order that a claim could take).
pub(super) fn queue_stats(
    conn: &Connection,
    now_ms: i64,
) -> Result<QueueStats, DeliveryStoreError> {
    let pending: i64 = conn
        .prepare_cached("SELECT count(*) FROM deliveries WHERE status = 'pending'")
        .map_err(db_err)?
        .query_row([], |r| r.get(0))
        .map_err(db_err)?;
    let oldest: Option<i64> = conn
        .prepare_cached(
            "SELECT d.next_attempt_at_ms FROM deliveries d \
             JOIN destinations t ON t.id = d.destination_id \
             WHERE d.status = 'pending' AND d.next_attempt_at_ms IS NOT NULL \
               AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= ?1) AND t.enabled = 1 \
             ORDER BY d.next_attempt_at_ms",
        )
        .map_err(db_err)?
        .query_row([now_ms], |r| r.get(0))
        .optional()
        .map_err(db_err)?;
    Ok(QueueStats::new(u64::try_from(pending).unwrap_or(0), oldest))
}

/// Deletes a destination and dead-letters its pending deliveries with
/// `reason`; whether it existed.
pub(super) fn delete_destination(
    conn: &Connection,
    id: &str,
    now_ms: i64,
    reason: &str,
) -> Result<bool, DeliveryStoreError> {
    let n = conn
        .execute("DELETE FROM destinations WHERE id = ?1", [id])
        .map_err(db_err)?;
    dead_letter_pending(conn, DeadLetterTarget::Destination(id), now_ms, reason)?;
    Ok(n > 0)
}

/// Stores the event once, then its deliveries.
pub(super) fn enqueue(
    conn: &Connection,
    event: &OutgoingEvent,
    created_at_ms: i64,
    deliveries: &[NewDelivery],
) -> Result<Vec<Delivery>, SenderError> {
    let content = EventContent::of(event);
    let inserted = conn
        .prepare_cached(
            "INSERT INTO events (id, event_type, body, created_at_ms, traceparent) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(id) DO NOTHING",
        )
        .map_err(db_err)?
        .execute(params![
            event.id(),
            event.event_type(),
            event.body(),
            created_at_ms,
            event.traceparent().map(TraceParent::as_str)
        ])
        .map_err(db_err)?;
    if inserted == 0 {
        return Err(SenderError::DuplicateEvent {
            id: event.id().to_owned(),
        });
    }
    let mut out = Vec::with_capacity(deliveries.len());
    for new in deliveries {
        out.push(insert_delivery(conn, new, &content)?);
    }
    Ok(out)
}

/// Creates `new` for a stored event; a dead-lettered `original` becomes
/// replayed, pointing at it. `None` when `original` was replayed already.
pub(super) fn replay(
    conn: &Connection,
    original: &str,
    new: &NewDelivery,
) -> Result<Option<Delivery>, DeliveryStoreError> {
    let status: Option<String> = conn
        .query_row(
            "SELECT status FROM deliveries WHERE id = ?1",
            [original],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    let Some(status) = status else {
        return Err(not_stored(original));
    };
    if status == DeliveryStatus::Replayed.as_str() {
        return Ok(None);
    }
    let content = conn
        .query_row(
            "SELECT event_type, body, traceparent FROM events WHERE id = ?1",
            [&new.event_id],
            |r| {
                Ok(EventContent {
                    event_type: r.get(0)?,
                    body: Bytes::from(r.get::<_, Vec<u8>>(1)?),
                    traceparent: EventContent::stored_traceparent(r.get(2)?),
                })
            },
        )
        .map_err(db_err)?;
    let created = insert_delivery(conn, new, &content)?;
    if status == DeliveryStatus::DeadLettered.as_str() {
        conn.execute(
            "UPDATE deliveries SET status = 'replayed', replayed_as = ?2, updated_at_ms = ?3 \
             WHERE id = ?1",
            params![original, created.id, new.created_at_ms],
        )
        .map_err(db_err)?;
    }
    Ok(Some(created))
}

const DELIVERY_SELECT: &str = "SELECT d.seq, d.id, d.event_id, e.event_type, d.destination_id, \
    d.status, d.attempts, d.next_attempt_at_ms, d.lease_until_ms, d.created_at_ms, \
    d.updated_at_ms, d.delivered_at_ms, d.dead_lettered_at_ms, d.last_error, d.replay_of, \
    d.replayed_as, e.body, e.traceparent FROM deliveries d JOIN events e ON e.id = d.event_id";

/// A row of [`DELIVERY_SELECT`].
fn delivery_from_row(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let status: String = row.get(5)?;
    let status = DeliveryStatus::from_name(&status)
        .ok_or_else(|| bad_column(5, format!("unknown delivery status `{status}`")))?;
    let body: Vec<u8> = row.get(16)?;
    Ok(Delivery {
        seq: row.get(0)?,
        id: row.get(1)?,
        event_id: row.get(2)?,
        event_type: row.get(3)?,
        destination_id: row.get(4)?,
        status,
        attempts: row.get(6)?,
        next_attempt_at_ms: row.get(7)?,
        lease_until_ms: row.get(8)?,
        created_at_ms: row.get(9)?,
        updated_at_ms: row.get(10)?,
        delivered_at_ms: row.get(11)?,
        dead_lettered_at_ms: row.get(12)?,
        last_error: row.get(13)?,
        replay_of: row.get(14)?,
        replayed_as: row.get(15)?,
        body: Bytes::from(body),
        traceparent: EventContent::stored_traceparent(row.get(17)?),
    })
}

/// The delivery with this id.
pub(super) fn load_delivery(
    conn: &Connection,
    id: &str,
) -> Result<Option<Delivery>, DeliveryStoreError> {
    conn.query_row(
        &format!("{DELIVERY_SELECT} WHERE d.id = ?1"),
        [id],
        delivery_from_row,
    )
    .optional()
    .map_err(db_err)
}

fn insert_delivery(
    conn: &Connection,
    new: &NewDelivery,
    event: &EventContent,
) -> Result<Delivery, DeliveryStoreError> {
    conn.prepare_cached(
        "INSERT INTO deliveries (id, event_id, destination_id, status, next_attempt_at_ms, \
         created_at_ms, updated_at_ms, replay_of, lease_until_ms) \
         VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?5, ?6, ?7)",
    )
    .map_err(db_err)?
    .execute(params![
        new.id,
        new.event_id,
        new.destination_id,
        new.next_attempt_at_ms,
        new.created_at_ms,
        new.replay_of,
        new.lease_until_ms
    ])
    .map_err(db_err)?;
    Ok(new.pending(conn.last_insert_rowid(), event))
}

/// Leases up to `limit` due deliveries of enabled destinations until
/// `lease_until_ms`, earliest due first.
pub(super) fn claim_due(
    conn: &Connection,
    now_ms: i64,
    limit: usize,
    lease_until_ms: i64,
) -> Result<Vec<Delivery>, DeliveryStoreError> {
    // No `LIMIT ?`: a bound LIMIT makes SQLite prepare the statement
    // again on every call. The due index yields rows in order, so
    // stepping stops after `limit` of them.
    let mut out: Vec<Delivery> = {
        let mut stmt = conn
            .prepare_cached(&format!(
                "{DELIVERY_SELECT} JOIN destinations t ON t.id = d.destination_id \
                 WHERE d.status = 'pending' AND d.next_attempt_at_ms <= ?1 \
                   AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= ?1) \
                   AND t.enabled = 1 \
                 ORDER BY d.next_attempt_at_ms, d.seq"
            ))
            .map_err(db_err)?;
        stmt.query_map([now_ms], delivery_from_row)
            .map_err(db_err)?
            .take(limit)
            .collect::<Result<_, _>>()
            .map_err(db_err)?
    };
    let mut lease = conn
        .prepare_cached("UPDATE deliveries SET lease_until_ms = ?2 WHERE seq = ?1")
        .map_err(db_err)?;
    for d in &mut out {
        lease
            .execute(params![d.seq, lease_until_ms])
            .map_err(db_err)?;
        d.lease_until_ms = Some(lease_until_ms);
    }
    Ok(out)
}

/// Appends the attempt; moves the delivery on when it is still pending
/// under `lease_until_ms`.
pub(super) fn record_attempt(
    conn: &Connection,
    a: &DeliveryAttempt,
    lease_until_ms: i64,
    next: &NextStep,
) -> Result<(), DeliveryStoreError> {
    insert_attempt(conn, a)?;
    super::health::record(conn, a)?;
    let outcome = next.outcome(a);
    conn.prepare_cached(
        "UPDATE deliveries SET status = ?2, attempts = MAX(attempts, ?3), \
         next_attempt_at_ms = ?4, lease_until_ms = NULL, updated_at_ms = ?5, \
         delivered_at_ms = COALESCE(?6, delivered_at_ms), \
         dead_lettered_at_ms = COALESCE(?7, dead_lettered_at_ms), last_error = ?8 \
         WHERE id = ?1 AND status = 'pending' AND lease_until_ms = ?9",
    )
    .map_err(db_err)?
    .execute(params![
        a.delivery_id,
        outcome.status.as_str(),
        a.attempt,
        outcome.next_attempt_at_ms,
        outcome.at_ms,
        outcome.delivered_at_ms,
        outcome.dead_lettered_at_ms,
        outcome.last_error,
        lease_until_ms
    ])
    .map_err(db_err)?;
    Ok(())
}

/// Appends an attempt to its delivery's history.
fn insert_attempt(conn: &Connection, a: &DeliveryAttempt) -> Result<(), DeliveryStoreError> {
    conn.prepare_cached(
        "INSERT INTO attempts (delivery_id, n, attempt, started_at_ms, duration_ms, \
         status_code, error_class, error, response_body) VALUES (?1, \
         (SELECT COALESCE(MAX(n), 0) + 1 FROM attempts WHERE delivery_id = ?1), \
         ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .map_err(db_err)?
    .execute(params![
        a.delivery_id,
        a.attempt,
        a.started_at_ms,
        i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
        a.status_code,
        a.error_class.map(ErrorClass::as_str),
        a.error,
        a.response_body
    ])
    .map_err(db_err)?;
    Ok(())
}

/// Releases the lease `lease_until_ms` and makes the delivery due at
/// `at_ms`, if it is still pending under that lease.
pub(super) fn reschedule(
    conn: &Connection,
    id: &str,
    lease_until_ms: i64,
    at_ms: i64,
) -> Result<(), DeliveryStoreError> {
    conn.prepare_cached(
        "UPDATE deliveries SET lease_until_ms = NULL, next_attempt_at_ms = ?2 \
         WHERE id = ?1 AND status = 'pending' AND lease_until_ms = ?3",
    )
    .map_err(db_err)?
    .execute(params![id, at_ms, lease_until_ms])
    .map_err(db_err)?;
    Ok(())
}

/// Dead-letters the delivery `id` with `reason`, if it is pending under
/// the lease `lease_until_ms`.
pub(super) fn dead_letter(
    conn: &Connection,
    id: &str,
    lease_until_ms: i64,
    now_ms: i64,
    reason: &str,
) -> Result<(), DeliveryStoreError> {
    let target = DeadLetterTarget::Leased {
        id,
        lease: lease_until_ms,
    };
    dead_letter_pending(conn, target, now_ms, reason)?;
    Ok(())
}

/// Which pending deliveries [`dead_letter_pending`] moves to the dead
/// letter queue.
enum DeadLetterTarget<'a> {
    /// Every pending delivery of this destination.
    Destination(&'a str),
    /// This delivery, if it is pending under the lease `lease`.
    Leased { id: &'a str, lease: i64 },
}

/// Dead-letters the pending deliveries of a destination, or one pending
/// delivery held under the lease `lease`.
fn dead_letter_pending(
    conn: &Connection,
    target: DeadLetterTarget<'_>,
    now_ms: i64,
    reason: &str,
) -> Result<usize, DeliveryStoreError> {
    const SET: &str = "UPDATE deliveries SET status = 'dead_lettered', next_attempt_at_ms = NULL, \
         lease_until_ms = NULL, dead_lettered_at_ms = ?2, updated_at_ms = ?2, last_error = ?3";
    match target {
        DeadLetterTarget::Destination(id) => conn.execute(
            &format!("{SET} WHERE destination_id = ?1 AND status = 'pending'"),
            params![id, now_ms, reason],
        ),
        DeadLetterTarget::Leased { id, lease } => conn.execute(
            &format!("{SET} WHERE id = ?1 AND status = 'pending' AND lease_until_ms = ?4"),
            params![id, now_ms, reason, lease],
        ),
    }
    .map_err(db_err)
}

/// The `WHERE` clause of a delivery query (empty when it matches every
/// delivery) and its parameters.
fn query_filter(q: &DeliveryQuery) -> (String, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(x) = q.status {
        // A literal (one of four fixed names), not a parameter, so
        // that the planner can use the dead letter index.
        clauses.push(format!("d.status = '{}'", x.as_str()));
    }
    let mut push = |clause: &str, v: Value| {
        args.push(v);
        clauses.push(format!("{clause} ?{}", args.len()));
    };
    if let Some(x) = &q.destination_id {
        push("d.destination_id =", Value::Text(x.clone()));
    }
    if let Some(x) = &q.event_id {
        push("d.event_id =", Value::Text(x.clone()));
    }
    if let Some(x) = &q.event_type {
        push("e.event_type =", Value::Text(x.clone()));
    }
    if let Some(x) = q.since_ms {
        push("d.created_at_ms >=", Value::Integer(x));
    }
    if let Some(x) = q.until_ms {
        push("d.created_at_ms <", Value::Integer(x));
    }
    if let Some(x) = q.before_seq {
        push("d.seq <", Value::Integer(x));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (where_sql, args)
}

/// One page of the deliveries matching `q`, newest first.
pub(super) fn query_deliveries(
    conn: &Connection,
    q: &DeliveryQuery,
) -> Result<Page<Delivery>, DeliveryStoreError> {
    let (where_sql, args) = query_filter(q);
    let size = q.page_size();
    let sql = format!(
        "{DELIVERY_SELECT}{where_sql} ORDER BY d.seq DESC LIMIT {}",
        size + 1
    );
    let mut stmt = conn.prepare(&sql).map_err(db_err)?;
    let items = stmt
        .query_map(rusqlite::params_from_iter(args), delivery_from_row)
        .map_err(db_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    Ok(page_of(items, size))
}

/// Every attempt of a delivery, in order.
pub(super) fn load_attempts(
    conn: &Connection,
    delivery_id: &str,
) -> Result<Vec<DeliveryAttempt>, DeliveryStoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT delivery_id, attempt, started_at_ms, duration_ms, status_code, \
             error_class, error, response_body FROM attempts WHERE delivery_id = ?1 ORDER BY n",
        )
        .map_err(db_err)?;
    stmt.query_map([delivery_id], attempt_from_row)
        .map_err(db_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)
}

fn attempt_from_row(r: &Row<'_>) -> rusqlite::Result<DeliveryAttempt> {
    let class: Option<String> = r.get(5)?;
    let duration: i64 = r.get(3)?;
    Ok(DeliveryAttempt {
        delivery_id: r.get(0)?,
        attempt: r.get(1)?,
        started_at_ms: r.get(2)?,
        duration_ms: u64::try_from(duration).unwrap_or(0),
        status_code: r.get(4)?,
        error_class: class.as_deref().and_then(ErrorClass::from_name),
        error: r.get(6)?,
        response_body: r.get(7)?,
    })
}
