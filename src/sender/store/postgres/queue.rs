//! The writes: enqueue and replay (which wake the fleet in the same
//! transaction), claims under `FOR UPDATE SKIP LOCKED`, and every later
//! write fenced by the lease (its expiry and its owner).

use std::sync::OnceLock;

use deadpool_postgres::GenericClient;

use super::outbox::EnqueueTx;
use super::rows::{DELIVERY_COLUMNS, delivery_from_row};
use super::{CHANNEL, pg_err};
use crate::sender::delivery::{
    Delivery, DeliveryAttempt, DeliveryStatus, ErrorClass, OutgoingEvent,
};
use crate::sender::error::DeliveryStoreError;
use crate::sender::store::{EventContent, NewDelivery, NextStep, QueueStats};
use crate::trace_context::TraceParent;

/// Wakes every listening node once this transaction commits.
pub(super) async fn notify(client: &impl EnqueueTx) -> Result<(), DeliveryStoreError> {
    let stmt = client
        .statement("SELECT pg_notify($1, '')")
        .await
        .map_err(pg_err)?;
    client
        .tx()
        .execute(&stmt, &[&CHANNEL])
        .await
        .map_err(pg_err)
        .map(drop)
}

/// Stores the event; `false` when its id is stored already.
pub(super) async fn insert_event(
    client: &impl EnqueueTx,
    event: &OutgoingEvent,
    created_at_ms: i64,
) -> Result<bool, DeliveryStoreError> {
    let stmt = client
        .statement(
            "INSERT INTO sender_events (id, event_type, body, created_at_ms, traceparent) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .await
        .map_err(pg_err)?;
    let traceparent = event.traceparent().map(TraceParent::as_str);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
        &event.id(),
        &event.event_type(),
        &event.body(),
        &created_at_ms,
        &traceparent,
    ];
    let inserted = client.tx().execute(&stmt, &params).await.map_err(pg_err)?;
    Ok(inserted > 0)
}

/// Inserts `news` (of events already stored, or stored in the same
/// transaction) in one statement; a delivery created leased belongs to
/// `owner`. Returns them pending, each with its sequence number.
pub(super) async fn insert_deliveries(
    client: &impl EnqueueTx,
    owner: &str,
    news: &[NewDelivery],
    event: &EventContent,
) -> Result<Vec<Delivery>, DeliveryStoreError> {
    let ids: Vec<&str> = news.iter().map(|n| n.id.as_str()).collect();
    let events: Vec<&str> = news.iter().map(|n| n.event_id.as_str()).collect();
    let dests: Vec<&str> = news.iter().map(|n| n.destination_id.as_str()).collect();
    let due: Vec<i64> = news.iter().map(|n| n.next_attempt_at_ms).collect();
    let created: Vec<i64> = news.iter().map(|n| n.created_at_ms).collect();
    let replays: Vec<Option<&str>> = news.iter().map(|n| n.replay_of.as_deref()).collect();
    let leases: Vec<Option<i64>> = news.iter().map(|n| n.lease_until_ms).collect();
    let stmt = client
        .statement(
            "INSERT INTO sender_deliveries (id, event_id, destination_id, status, \
             next_attempt_at_ms, created_at_ms, updated_at_ms, replay_of, lease_until_ms, \
             lease_owner) \
             SELECT u.id, u.event_id, u.destination_id, 'pending', u.due, u.created, u.created, \
             u.replay_of, u.lease, CASE WHEN u.lease IS NULL THEN NULL ELSE $8::text END \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], \
             $6::text[], $7::int8[]) WITH ORDINALITY \
             AS u(id, event_id, destination_id, due, created, replay_of, lease, ord) \
             ORDER BY u.ord RETURNING id, seq",
        )
        .await
        .map_err(pg_err)?;
    let rows = client
        .tx()
        .query(
            &stmt,
            &[
                &ids, &events, &dests, &due, &created, &replays, &leases, &owner,
            ],
        )
        .await
        .map_err(pg_err)?;
    let mut seqs = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get(0).map_err(pg_err)?;
        seqs.insert(id, row.try_get::<_, i64>(1).map_err(pg_err)?);
    }
    news.iter()
        .map(|n| {
            let seq = seqs.get(&n.id).copied().ok_or_else(|| {
                DeliveryStoreError::new(format!("delivery `{}` was not inserted", n.id))
            })?;
            Ok(n.pending(seq, event))
        })
        .collect()
}

/// Leases up to `limit` due deliveries of enabled destinations to `owner`
/// until `lease_until_ms`, earliest due first. Rows another claim holds
/// locked are skipped, not waited for; the statement is its own short
/// transaction.
pub(super) async fn claim_due(
    client: &impl GenericClient,
    owner: &str,
    now_ms: i64,
    limit: usize,
    lease_until_ms: i64,
) -> Result<Vec<Delivery>, DeliveryStoreError> {
    let sql = format!(
        "WITH due AS ( \
             SELECT d.seq FROM sender_deliveries d \
             JOIN sender_destinations t ON t.id = d.destination_id \
             WHERE d.status = 'pending' AND d.next_attempt_at_ms <= $1 \
               AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= $1) AND t.enabled \
             ORDER BY d.next_attempt_at_ms, d.seq LIMIT $2 \
             FOR UPDATE OF d SKIP LOCKED) \
         UPDATE sender_deliveries d SET lease_until_ms = $3, lease_owner = $4 \
         FROM due, sender_events e WHERE d.seq = due.seq AND e.id = d.event_id \
         RETURNING {DELIVERY_COLUMNS}"
    );
    let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(&stmt, &[&now_ms, &limit, &lease_until_ms, &owner])
        .await
        .map_err(pg_err)?;
    let mut out = rows
        .iter()
        .map(delivery_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|d| (d.next_attempt_at_ms, d.seq));
    Ok(out)
}

/// Appends the attempt and, in the same statement, moves the delivery on
/// when `owner` still holds it under `lease_until_ms`.
pub(super) async fn record_attempt(
    client: &impl GenericClient,
    owner: &str,
    a: &DeliveryAttempt,
    lease_until_ms: i64,
    next: &NextStep,
) -> Result<(), DeliveryStoreError> {
    static SQL: OnceLock<String> = OnceLock::new();
    // Built once: with the rollup's columns it is a few kilobytes.
    let sql = SQL.get_or_init(|| {
        format!(
            "WITH attempt AS ( \
             INSERT INTO sender_attempts (delivery_id, attempt, started_at_ms, duration_ms, \
             status_code, error_class, error, response_body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)), {} \
         UPDATE sender_deliveries SET status = $9, attempts = GREATEST(attempts, $2), \
             next_attempt_at_ms = $10, lease_until_ms = NULL, lease_owner = NULL, \
             updated_at_ms = $11, delivered_at_ms = COALESCE($12, delivered_at_ms), \
             dead_lettered_at_ms = COALESCE($13, dead_lettered_at_ms), last_error = $14 \
         WHERE id = $1 AND status = 'pending' AND lease_until_ms = $15 AND lease_owner = $16",
            super::health::record_ctes()
        )
    });
    let stmt = client.prepare_cached(sql).await.map_err(pg_err)?;
    let outcome = next.outcome(a);
    let (minute, ok, bucket, message, hour) = super::health::record_params(a);
    let attempt = i32::try_from(a.attempt).unwrap_or(i32::MAX);
    let duration = i64::try_from(a.duration_ms).unwrap_or(i64::MAX);
    let code = a.status_code.map(i32::from);
    let class = a.error_class.map(ErrorClass::as_str);
    client
        .execute(
            &stmt,
            &[
                &a.delivery_id,
                &attempt,
                &a.started_at_ms,
                &duration,
                &code,
                &class,
                &a.error,
                &a.response_body,
                &outcome.status.as_str(),
                &outcome.next_attempt_at_ms,
                &outcome.at_ms,
                &outcome.delivered_at_ms,
                &outcome.dead_lettered_at_ms,
                &outcome.last_error,
                &lease_until_ms,
                &owner,
                &minute,
                &ok,
                &bucket,
                &message,
                &hour,
            ],
        )
        .await
        .map_err(pg_err)
        .map(drop)
}

/// Releases `owner`'s lease `lease_until_ms` and makes the delivery due at
/// `at_ms`; wakes the fleet when it did. A half-open circuit's probe
/// released this way lets another probe go.
pub(super) async fn reschedule(
    client: &impl GenericClient,
    owner: &str,
    id: &str,
    lease_until_ms: i64,
    at_ms: i64,
) -> Result<(), DeliveryStoreError> {
    let stmt = client
        .prepare_cached(
            "WITH moved AS ( \
                 UPDATE sender_deliveries SET lease_until_ms = NULL, lease_owner = NULL, \
                 next_attempt_at_ms = $2 \
                 WHERE id = $1 AND status = 'pending' AND lease_until_ms = $3 \
                   AND lease_owner = $4 RETURNING destination_id), \
             probe AS ( \
                 UPDATE sender_destinations t SET probe_until_ms = NULL FROM moved \
                 WHERE t.id = moved.destination_id AND t.probe_until_ms = $3) \
             SELECT pg_notify($5, '') FROM moved",
        )
        .await
        .map_err(pg_err)?;
    client
        .query(&stmt, &[&id, &at_ms, &lease_until_ms, &owner, &CHANNEL])
        .await
        .map_err(pg_err)
        .map(drop)
}

const DEAD_LETTER_SET: &str = "UPDATE sender_deliveries SET status = 'dead_lettered', \
    next_attempt_at_ms = NULL, lease_until_ms = NULL, lease_owner = NULL, \
    dead_lettered_at_ms = $2, updated_at_ms = $2, last_error = $3";

/// Dead-letters the delivery `id` if `owner` holds it under
/// `lease_until_ms`.
pub(super) async fn dead_letter(
    client: &impl GenericClient,
    owner: &str,
    id: &str,
    lease_until_ms: i64,
    now_ms: i64,
    reason: &str,
) -> Result<(), DeliveryStoreError> {
    let sql = format!(
        "{DEAD_LETTER_SET} WHERE id = $1 AND status = 'pending' AND lease_until_ms = $4 \
         AND lease_owner = $5"
    );
    client
        .execute(&sql, &[&id, &now_ms, &reason, &lease_until_ms, &owner])
        .await
        .map_err(pg_err)
        .map(drop)
}

/// Deletes a destination and dead-letters its pending deliveries, in one
/// statement; whether it existed.
pub(super) async fn delete_destination(
    client: &impl GenericClient,
    id: &str,
    now_ms: i64,
    reason: &str,
) -> Result<bool, DeliveryStoreError> {
    let sql = format!(
        "WITH gone AS (DELETE FROM sender_destinations WHERE id = $1 RETURNING 1), \
         dead AS ({DEAD_LETTER_SET} WHERE destination_id = $1 AND status = 'pending') \
         SELECT count(*) FROM gone"
    );
    let row = client
        .query_one(&sql, &[&id, &now_ms, &reason])
        .await
        .map_err(pg_err)?;
    let n: i64 = row.try_get(0).map_err(pg_err)?;
    Ok(n > 0)
}

/// For a replay: locks the original until the transaction ends (so two
/// replays of it take turns) and returns its status.
pub(super) async fn lock_status(
    client: &impl GenericClient,
    id: &str,
) -> Result<Option<DeliveryStatus>, DeliveryStoreError> {
    let row = client
        .query_opt(
            "SELECT status FROM sender_deliveries WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(pg_err)?;
    let Some(row) = row else { return Ok(None) };
    let status: String = row.try_get(0).map_err(pg_err)?;
    DeliveryStatus::from_name(&status).map(Some).ok_or_else(|| {
        DeliveryStoreError::new(format!(
            "unknown delivery status `{status}` in the database"
        ))
    })
}

/// Marks the dead-lettered `original` as replayed by `replayed_as`.
pub(super) async fn mark_replayed(
    client: &impl GenericClient,
    original: &str,
    replayed_as: &str,
    at_ms: i64,
) -> Result<(), DeliveryStoreError> {
    client
        .execute(
            "UPDATE sender_deliveries SET status = 'replayed', replayed_as = $2, \
             updated_at_ms = $3 WHERE id = $1",
            &[&original, &replayed_as, &at_ms],
        )
        .await
        .map_err(pg_err)
        .map(drop)
}

/// The queue's depth and its oldest claimable due time, from the partial
/// index of pending deliveries in due order.
pub(super) async fn queue_stats(
    client: &impl GenericClient,
    now_ms: i64,
) -> Result<QueueStats, DeliveryStoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT (SELECT count(*) FROM sender_deliveries WHERE status = 'pending'), \
               (SELECT d.next_attempt_at_ms FROM sender_deliveries d \
                JOIN sender_destinations t ON t.id = d.destination_id \
                WHERE d.status = 'pending' AND d.next_attempt_at_ms IS NOT NULL \
                  AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= $1) AND t.enabled \
                ORDER BY d.next_attempt_at_ms, d.seq LIMIT 1)",
        )
        .await
        .map_err(pg_err)?;
    let row = client.query_one(&stmt, &[&now_ms]).await.map_err(pg_err)?;
    let pending: i64 = row.try_get(0).map_err(pg_err)?;
    let oldest: Option<i64> = row.try_get(1).map_err(pg_err)?;
    Ok(QueueStats::new(u64::try_from(pending).unwrap_or(0), oldest))
}
