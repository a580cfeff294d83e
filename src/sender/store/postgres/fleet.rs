//! What holds for the whole fleet rather than per node: the per-destination
//! concurrency limit and the circuit breaker, kept on the destination rows
//! and enforced by claims.
//!
//! A claim locks the rows of the destinations it may take work from
//! (`FOR UPDATE`, in id order, so claims never deadlock), then, with a fresh
//! snapshot, counts their live leases (attempts in flight anywhere) and
//! reads their circuits, and leases at most the room each has left. Every
//! other claim for the same destinations waits for the commit, so the
//! count it then takes includes these leases.

use std::collections::HashMap;
use std::sync::Mutex;

use deadpool_postgres::GenericClient;

use super::pg_err;
use super::rows::{DELIVERY_COLUMNS, delivery_from_row};
use crate::sender::delivery::{Delivery, DeliveryAttempt};
use crate::sender::error::DeliveryStoreError;
use crate::sender::store::{CircuitChange, FleetPolicy};

/// Each destination's open circuit (`open_until_ms`) as this store last
/// read it: what [`Sender::is_paused`](crate::sender::Sender::is_paused)
/// answers from without a round trip.
#[derive(Debug, Default)]
pub(super) struct OpenCircuits(Mutex<HashMap<String, i64>>);

impl OpenCircuits {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `destination_id`'s circuit was open at `now_ms`.
    pub(super) fn is_open(&self, destination_id: &str, now_ms: i64) -> bool {
        self.map()
            .get(destination_id)
            .is_some_and(|&until| now_ms < until)
    }

    /// Notes a destination's circuit: open until a time, or closed.
    pub(super) fn set(&self, destination_id: &str, open_until_ms: Option<i64>) {
        let mut map = self.map();
        match open_until_ms {
            Some(until) => map.insert(destination_id.to_owned(), until),
            None => map.remove(destination_id),
        };
    }

    fn replace(&self, open: HashMap<String, i64>) {
        *self.map() = open;
    }
}

/// How many deliveries of one destination a claim may lease now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Room {
    take: usize,
    /// The one delivery taken is the half-open circuit's probe.
    probe: bool,
}

/// The room a destination has at `now_ms`, from its live leases and its
/// circuit; no I/O, no clock.
fn room(
    policy: &FleetPolicy,
    live: usize,
    open_until_ms: Option<i64>,
    probe_until_ms: Option<i64>,
    now_ms: i64,
) -> Room {
    let free = policy.per_destination.saturating_sub(live);
    match open_until_ms {
        None => Room {
            take: free,
            probe: false,
        },
        Some(until) if now_ms < until => Room {
            take: 0,
            probe: false,
        },
        // Half open: one probe, unless one is out under a live lease.
        Some(_) if probe_until_ms.is_some_and(|p| now_ms < p) => Room {
            take: 0,
            probe: false,
        },
        Some(_) => Room {
            take: free.min(1),
            probe: true,
        },
    }
}

/// Locks, in id order, the enabled destinations that have due deliveries
/// and are not open; returns their ids.
async fn lock_candidates(
    client: &impl GenericClient,
    now_ms: i64,
) -> Result<Vec<String>, DeliveryStoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT t.id FROM sender_destinations t \
             WHERE t.enabled AND (t.open_until_ms IS NULL OR t.open_until_ms <= $1) \
               AND t.id IN (SELECT d.destination_id FROM sender_deliveries d \
                 WHERE d.status = 'pending' AND d.next_attempt_at_ms <= $1 \
                   AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= $1)) \
             ORDER BY t.id FOR UPDATE OF t",
        )
        .await
        .map_err(pg_err)?;
    let rows = client.query(&stmt, &[&now_ms]).await.map_err(pg_err)?;
    rows.iter().map(|r| r.try_get(0).map_err(pg_err)).collect()
}

/// The room of each locked destination, read with a snapshot taken after
/// the locks: `(id, take, probe)` of those with room.
async fn rooms(
    client: &impl GenericClient,
    policy: &FleetPolicy,
    ids: &[String],
    now_ms: i64,
) -> Result<Vec<(String, Room)>, DeliveryStoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT t.id, t.open_until_ms, t.probe_until_ms, \
               (SELECT count(*) FROM sender_deliveries l WHERE l.destination_id = t.id \
                  AND l.status = 'pending' AND l.lease_until_ms > $2) \
             FROM sender_destinations t WHERE t.id = ANY($1)",
        )
        .await
        .map_err(pg_err)?;
    let rows = client
        .query(&stmt, &[&ids, &now_ms])
        .await
        .map_err(pg_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let live: i64 = r.try_get(3).map_err(pg_err)?;
        let live = usize::try_from(live).unwrap_or(usize::MAX);
        let open = r.try_get(1).map_err(pg_err)?;
        let probe = r.try_get(2).map_err(pg_err)?;
        let room = room(policy, live, open, probe, now_ms);
        if room.take > 0 {
            out.push((r.try_get(0).map_err(pg_err)?, room));
        }
    }
    Ok(out)
}

/// Leases up to `limit` due deliveries to `owner`, at most `policy`'s room
/// of each destination, and marks the probes taken; then notes every open
/// circuit in `open`. One transaction on `client`.
pub(super) async fn claim_due(
    client: &mut deadpool_postgres::Object,
    owner: &str,
    (now_ms, limit, lease_until_ms): (i64, usize, i64),
    policy: &FleetPolicy,
    open: &OpenCircuits,
) -> Result<Vec<Delivery>, DeliveryStoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    let ids = lock_candidates(&tx, now_ms).await?;
    let rooms = if ids.is_empty() {
        Vec::new()
    } else {
        rooms(&tx, policy, &ids, now_ms).await?
    };
    let mut out = if rooms.is_empty() {
        Vec::new()
    } else {
        lease(&tx, owner, &rooms, (now_ms, limit, lease_until_ms)).await?
    };
    let probes: Vec<&str> = rooms
        .iter()
        .filter(|(id, r)| r.probe && out.iter().any(|d| &d.destination_id == id))
        .map(|(id, _)| id.as_str())
        .collect();
    if !probes.is_empty() {
        tx.execute(
            "UPDATE sender_destinations SET probe_until_ms = $2 WHERE id = ANY($1)",
            &[&probes, &lease_until_ms],
        )
        .await
        .map_err(pg_err)?;
    }
    open.replace(open_circuits(&tx).await?);
    tx.commit().await.map_err(pg_err)?;
    out.sort_by_key(|d| (d.next_attempt_at_ms, d.seq));
    Ok(out)
}

/// Leases the due deliveries the `rooms` allow, earliest due first.
async fn lease(
    client: &impl GenericClient,
    owner: &str,
    rooms: &[(String, Room)],
    (now_ms, limit, lease_until_ms): (i64, usize, i64),
) -> Result<Vec<Delivery>, DeliveryStoreError> {
    let sql = format!(
        "WITH room AS (SELECT * FROM UNNEST($5::text[], $6::int8[]) AS r(destination_id, take)), \
         ranked AS ( \
             SELECT d.seq, r.take, row_number() OVER ( \
               PARTITION BY d.destination_id ORDER BY d.next_attempt_at_ms, d.seq) AS n \
             FROM sender_deliveries d JOIN room r ON r.destination_id = d.destination_id \
             WHERE d.status = 'pending' AND d.next_attempt_at_ms <= $1 \
               AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= $1)), \
         due AS ( \
             SELECT d.seq FROM sender_deliveries d JOIN ranked k ON k.seq = d.seq \
             WHERE k.n <= k.take ORDER BY d.next_attempt_at_ms, d.seq LIMIT $2 \
             FOR UPDATE OF d SKIP LOCKED) \
         UPDATE sender_deliveries d SET lease_until_ms = $3, lease_owner = $4 \
         FROM due, sender_events e WHERE d.seq = due.seq AND e.id = d.event_id \
         RETURNING {DELIVERY_COLUMNS}"
    );
    let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let ids: Vec<&str> = rooms.iter().map(|(id, _)| id.as_str()).collect();
    let takes: Vec<i64> = rooms
        .iter()
        .map(|(_, r)| i64::try_from(r.take).unwrap_or(i64::MAX))
        .collect();
    let rows = client
        .query(
            &stmt,
            &[&now_ms, &limit, &lease_until_ms, &owner, &ids, &takes],
        )
        .await
        .map_err(pg_err)?;
    rows.iter().map(delivery_from_row).collect()
}

/// Every destination whose circuit is open or half open, with its
/// `open_until_ms`.
async fn open_circuits(
    client: &impl GenericClient,
) -> Result<HashMap<String, i64>, DeliveryStoreError> {
    let rows = client
        .query(
            "SELECT id, open_until_ms FROM sender_destinations WHERE open_until_ms IS NOT NULL",
            &[],
        )
        .await
        .map_err(pg_err)?;
    rows.iter()
        .map(|r| Ok((r.try_get(0).map_err(pg_err)?, r.try_get(1).map_err(pg_err)?)))
        .collect()
}

/// A destination's circuit after an attempt was counted: its id, its
/// `open_until_ms`, and the change the attempt made.
pub(super) struct Counted {
    pub(super) destination: String,
    pub(super) open_until_ms: Option<i64>,
    pub(super) change: Option<CircuitChange>,
}

/// Counts a finished attempt towards its destination's circuit: a success
/// closes it, a failure counts, and at `policy`'s threshold opens it (again)
/// from the attempt's end. Whether the attempt was fenced out or not, it
/// happened, so it counts. The destination row is locked before it is read,
/// so the circuit's state before and after are those of this one update:
/// of many nodes counting at once, exactly one sees each change.
pub(super) async fn count_attempt(
    client: &impl GenericClient,
    attempt: &DeliveryAttempt,
    end_ms: i64,
    policy: &FleetPolicy,
) -> Result<Option<Counted>, DeliveryStoreError> {
    let stmt = client
        .prepare_cached(
            "WITH before AS ( \
               SELECT t.id, t.open_until_ms FROM sender_destinations t \
               JOIN sender_deliveries d ON t.id = d.destination_id WHERE d.id = $1 \
               FOR UPDATE OF t) \
             UPDATE sender_destinations t SET \
               consecutive_failures = CASE WHEN $2::bool THEN 0 \
                 ELSE t.consecutive_failures + 1 END, \
               open_until_ms = CASE WHEN $2 THEN NULL \
                 WHEN t.consecutive_failures + 1 >= $3::int4 THEN $4::int8 + $5::int8 \
                 ELSE t.open_until_ms END, \
               probe_until_ms = CASE WHEN $2 OR t.consecutive_failures + 1 >= $3 THEN NULL \
                 ELSE t.probe_until_ms END \
             FROM before WHERE t.id = before.id \
             RETURNING t.id, before.open_until_ms, t.open_until_ms",
        )
        .await
        .map_err(pg_err)?;
    let threshold = i32::try_from(policy.failure_threshold).unwrap_or(i32::MAX);
    let row = client
        .query_opt(
            &stmt,
            &[
                &attempt.delivery_id,
                &attempt.succeeded(),
                &threshold,
                &end_ms,
                &policy.cooldown_ms,
            ],
        )
        .await
        .map_err(pg_err)?;
    let Some(r) = row else { return Ok(None) };
    let was: Option<i64> = r.try_get(1).map_err(pg_err)?;
    let now: Option<i64> = r.try_get(2).map_err(pg_err)?;
    Ok(Some(Counted {
        destination: r.try_get(0).map_err(pg_err)?,
        open_until_ms: now,
        change: circuit_change(was, now),
    }))
}

/// The change from a circuit's `open_until_ms` before to after: none when
/// it stays closed, or stays open (a failed probe opens it again).
fn circuit_change(before: Option<i64>, after: Option<i64>) -> Option<CircuitChange> {
    match (before, after) {
        (None, Some(_)) => Some(CircuitChange::Opened),
        (Some(_), None) => Some(CircuitChange::Closed),
        _ => None,
    }
}

/// Disables an enabled destination; whether it was.
pub(super) async fn disable_destination(
    client: &impl GenericClient,
    id: &str,
    reason: &str,
) -> Result<bool, DeliveryStoreError> {
    let changed = client
        .execute(
            "UPDATE sender_destinations SET enabled = false, disabled_reason = $2 \
             WHERE id = $1 AND enabled",
            &[&id, &reason],
        )
        .await
        .map_err(pg_err)?;
    Ok(changed == 1)
}

/// Closes a destination's circuit.
pub(super) async fn close_circuit(
    client: &impl GenericClient,
    destination_id: &str,
) -> Result<(), DeliveryStoreError> {
    client
        .execute(
            "UPDATE sender_destinations SET consecutive_failures = 0, open_until_ms = NULL, \
             probe_until_ms = NULL WHERE id = $1",
            &[&destination_id],
        )
        .await
        .map_err(pg_err)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_opening_and_closing_are_changes() {
        assert_eq!(circuit_change(None, None), None);
        assert_eq!(circuit_change(None, Some(5)), Some(CircuitChange::Opened));
        assert_eq!(circuit_change(Some(5), Some(9)), None);
        assert_eq!(circuit_change(Some(5), None), Some(CircuitChange::Closed));
    }

    #[test]
    fn room_follows_the_leases_and_the_circuit() {
        let p = FleetPolicy::new(2, 3, 1_000);
        let go = |take| Room { take, probe: false };
        assert_eq!(room(&p, 0, None, None, 10), go(2));
        assert_eq!(room(&p, 1, None, None, 10), go(1));
        assert_eq!(room(&p, 5, None, None, 10), go(0));
        // Open: nothing.
        assert_eq!(room(&p, 0, Some(11), None, 10), go(0));
        // Half open: one probe; none while a probe's lease lives.
        let probe = Room {
            take: 1,
            probe: true,
        };
        assert_eq!(room(&p, 0, Some(10), None, 10), probe);
        assert_eq!(room(&p, 0, Some(10), Some(9), 10), probe);
        assert_eq!(room(&p, 0, Some(10), Some(11), 10), go(0));
        // Half open but at the limit: the probe waits for a slot.
        assert_eq!(
            room(&p, 2, Some(10), None, 10),
            Room {
                take: 0,
                probe: true
            }
        );
    }
}
