//! The mapping between PostgreSQL rows and the sender's types
//! (destinations, deliveries, attempts), and the reads: one function per
//! row type, so a column change is one line.

use bytes::Bytes;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{CHANNEL, pg_err};
use crate::scheme::SchemeName;
use crate::sender::delivery::{
    Delivery, DeliveryAttempt, DeliveryQuery, DeliveryStatus, ErrorClass, Page,
};
use crate::sender::destination::{Destination, EventFilter};
use crate::sender::error::DeliveryStoreError;
use crate::sender::store::seal::{SecretSeal, decode_secrets};
use crate::sender::store::{EventContent, page_of};

/// The columns [`destination_from_row`] reads, in its order.
pub(super) const DESTINATION_COLUMNS: &str =
    "id, url, scheme, events, enabled, disabled_reason, created_at_ms, secrets";

/// A destination row, its keys opened with `seal`: the one place that
/// reads a destination's columns.
pub(super) fn destination_from_row(
    row: &Row,
    seal: Option<&dyn SecretSeal>,
) -> Result<Destination, DeliveryStoreError> {
    let events: String = row.try_get("events").map_err(pg_err)?;
    let events: EventFilter = serde_json::from_str(&events)
        .map_err(|e| DeliveryStoreError::new(format!("a stored event filter is corrupt: {e}")))?;
    let secrets: String = row.try_get("secrets").map_err(pg_err)?;
    let scheme: String = row.try_get("scheme").map_err(pg_err)?;
    let scheme: SchemeName = scheme
        .parse()
        .map_err(|e| DeliveryStoreError::new(format!("a stored scheme name is not known: {e}")))?;
    Ok(Destination {
        id: row.try_get("id").map_err(pg_err)?,
        url: row.try_get("url").map_err(pg_err)?,
        scheme,
        events,
        enabled: row.try_get("enabled").map_err(pg_err)?,
        disabled_reason: row.try_get("disabled_reason").map_err(pg_err)?,
        created_at_ms: row.try_get("created_at_ms").map_err(pg_err)?,
        secrets: decode_secrets(&secrets, seal)?,
    })
}

/// Inserts or updates a destination (a new one goes last in registration
/// order) and, when it is enabled, wakes the fleet: it may have pending
/// deliveries to claim. `events` is the filter as JSON, `secrets` the
/// encoded keys.
pub(super) async fn save_destination(
    client: &impl GenericClient,
    d: &Destination,
    events: &str,
    secrets: &str,
) -> Result<(), DeliveryStoreError> {
    let sql = "WITH saved AS ( \
            INSERT INTO sender_destinations (id, url, scheme, events, enabled, \
            disabled_reason, created_at_ms, secrets) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
            ON CONFLICT (id) DO UPDATE SET url = excluded.url, scheme = excluded.scheme, \
            events = excluded.events, enabled = excluded.enabled, \
            disabled_reason = excluded.disabled_reason, secrets = excluded.secrets \
            RETURNING enabled) \
        SELECT pg_notify($9, '') FROM saved WHERE enabled";
    let scheme = d.scheme.as_str();
    let params: [&(dyn ToSql + Sync); 9] = [
        &d.id,
        &d.url,
        &scheme,
        &events,
        &d.enabled,
        &d.disabled_reason,
        &d.created_at_ms,
        &secrets,
        &CHANNEL,
    ];
    client.query(sql, &params).await.map_err(pg_err).map(drop)
}

/// The columns [`delivery_from_row`] reads, over `sender_deliveries d`
/// joined with `sender_events e`.
pub(super) const DELIVERY_COLUMNS: &str = "d.seq, d.id, d.event_id, e.event_type, \
    d.destination_id, d.status, d.attempts, d.next_attempt_at_ms, d.lease_until_ms, \
    d.created_at_ms, d.updated_at_ms, d.delivered_at_ms, d.dead_lettered_at_ms, d.last_error, \
    d.replay_of, d.replayed_as, e.body, e.traceparent";

const DELIVERY_SELECT: &str = "FROM sender_deliveries d JOIN sender_events e ON e.id = d.event_id";

/// A row of [`DELIVERY_COLUMNS`].
pub(super) fn delivery_from_row(row: &Row) -> Result<Delivery, DeliveryStoreError> {
    let status: String = row.try_get("status").map_err(pg_err)?;
    let status = DeliveryStatus::from_name(&status).ok_or_else(|| {
        DeliveryStoreError::new(format!(
            "unknown delivery status `{status}` in the database"
        ))
    })?;
    let attempts: i32 = row.try_get("attempts").map_err(pg_err)?;
    let body: Vec<u8> = row.try_get("body").map_err(pg_err)?;
    Ok(Delivery {
        seq: row.try_get("seq").map_err(pg_err)?,
        id: row.try_get("id").map_err(pg_err)?,
        event_id: row.try_get("event_id").map_err(pg_err)?,
        event_type: row.try_get("event_type").map_err(pg_err)?,
        destination_id: row.try_get("destination_id").map_err(pg_err)?,
        status,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at_ms: row.try_get("next_attempt_at_ms").map_err(pg_err)?,
        lease_until_ms: row.try_get("lease_until_ms").map_err(pg_err)?,
        created_at_ms: row.try_get("created_at_ms").map_err(pg_err)?,
        updated_at_ms: row.try_get("updated_at_ms").map_err(pg_err)?,
        delivered_at_ms: row.try_get("delivered_at_ms").map_err(pg_err)?,
        dead_lettered_at_ms: row.try_get("dead_lettered_at_ms").map_err(pg_err)?,
        last_error: row.try_get("last_error").map_err(pg_err)?,
        replay_of: row.try_get("replay_of").map_err(pg_err)?,
        replayed_as: row.try_get("replayed_as").map_err(pg_err)?,
        body: Bytes::from(body),
        traceparent: EventContent::stored_traceparent(row.try_get("traceparent").map_err(pg_err)?),
    })
}

/// An attempt row.
fn attempt_from_row(row: &Row) -> Result<DeliveryAttempt, DeliveryStoreError> {
    let attempt: i32 = row.try_get("attempt").map_err(pg_err)?;
    let duration: i64 = row.try_get("duration_ms").map_err(pg_err)?;
    let code: Option<i32> = row.try_get("status_code").map_err(pg_err)?;
    let class: Option<String> = row.try_get("error_class").map_err(pg_err)?;
    Ok(DeliveryAttempt {
        delivery_id: row.try_get("delivery_id").map_err(pg_err)?,
        attempt: u32::try_from(attempt).unwrap_or(0),
        started_at_ms: row.try_get("started_at_ms").map_err(pg_err)?,
        duration_ms: u64::try_from(duration).unwrap_or(0),
        status_code: code.and_then(|c| u16::try_from(c).ok()),
        error_class: class.as_deref().and_then(ErrorClass::from_name),
        error: row.try_get("error").map_err(pg_err)?,
        response_body: row.try_get("response_body").map_err(pg_err)?,
    })
}

/// The destination with this id.
pub(super) async fn load_destination(
    client: &impl GenericClient,
    id: &str,
    seal: Option<&dyn SecretSeal>,
) -> Result<Option<Destination>, DeliveryStoreError> {
    let sql = format!("SELECT {DESTINATION_COLUMNS} FROM sender_destinations WHERE id = $1");
    let row = client.query_opt(&sql, &[&id]).await.map_err(pg_err)?;
    row.map(|r| destination_from_row(&r, seal)).transpose()
}

/// Every destination, in registration order.
pub(super) async fn list_destinations(
    client: &impl GenericClient,
    seal: Option<&dyn SecretSeal>,
) -> Result<Vec<Destination>, DeliveryStoreError> {
    let sql = format!("SELECT {DESTINATION_COLUMNS} FROM sender_destinations ORDER BY position");
    let rows = client.query(&sql, &[]).await.map_err(pg_err)?;
    rows.iter().map(|r| destination_from_row(r, seal)).collect()
}

/// The delivery with this id.
pub(super) async fn load_delivery(
    client: &impl GenericClient,
    id: &str,
) -> Result<Option<Delivery>, DeliveryStoreError> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} {DELIVERY_SELECT} WHERE d.id = $1");
    let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
    let row = client.query_opt(&stmt, &[&id]).await.map_err(pg_err)?;
    row.map(|r| delivery_from_row(&r)).transpose()
}

/// Every attempt of a delivery, in order.
pub(super) async fn load_attempts(
    client: &impl GenericClient,
    delivery_id: &str,
) -> Result<Vec<DeliveryAttempt>, DeliveryStoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT delivery_id, attempt, started_at_ms, duration_ms, status_code, error_class, \
             error, response_body FROM sender_attempts WHERE delivery_id = $1 ORDER BY n",
        )
        .await
        .map_err(pg_err)?;
    let rows = client.query(&stmt, &[&delivery_id]).await.map_err(pg_err)?;
    rows.iter().map(attempt_from_row).collect()
}

/// One page of the deliveries matching `q`, newest first.
pub(super) async fn query_deliveries(
    client: &impl GenericClient,
    q: &DeliveryQuery,
) -> Result<Page<Delivery>, DeliveryStoreError> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut push = |clause: &str, v: Box<dyn ToSql + Sync + Send>| {
        args.push(v);
        clauses.push(format!("{clause} ${}", args.len()));
    };
    if let Some(x) = q.status {
        push("d.status =", Box::new(x.as_str()));
    }
    if let Some(x) = &q.destination_id {
        push("d.destination_id =", Box::new(x.clone()));
    }
    if let Some(x) = &q.event_id {
        push("d.event_id =", Box::new(x.clone()));
    }
    if let Some(x) = &q.event_type {
        push("e.event_type =", Box::new(x.clone()));
    }
    if let Some(x) = q.since_ms {
        push("d.created_at_ms >=", Box::new(x));
    }
    if let Some(x) = q.until_ms {
        push("d.created_at_ms <", Box::new(x));
    }
    if let Some(x) = q.before_seq {
        push("d.seq <", Box::new(x));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let size = q.page_size();
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} {DELIVERY_SELECT}{where_sql} ORDER BY d.seq DESC LIMIT {}",
        size + 1
    );
    let params: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = client.query(&sql, &params).await.map_err(pg_err)?;
    let items = rows
        .iter()
        .map(delivery_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page_of(items, size))
}
