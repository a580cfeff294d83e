-- The circuit breaker of each destination, shared by every sender node.
-- `consecutive_failures` counts failed attempts since the last success;
-- `open_until_ms` is set when the circuit opened (NULL: closed; past: half
-- open); `probe_until_ms` is the lease of the one probe let through while
-- half open (past or NULL: no probe out).
ALTER TABLE sender_destinations
    ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN open_until_ms BIGINT,
    ADD COLUMN probe_until_ms BIGINT;
-- Claims count each destination's live leases.
CREATE INDEX sender_deliveries_leased ON sender_deliveries (destination_id, lease_until_ms)
    WHERE status = 'pending' AND lease_until_ms IS NOT NULL;
