-- Idempotency keys shared by receivers: one row per key, absent -> in
-- flight -> done. Every time is the database server's clock (now()), so
-- receivers whose own clocks disagree still agree on what has expired.
CREATE TABLE webhook_guard_idempotency (
    -- SHA-256 of `key`: a b-tree entry holds at most about 2.7 kB, and a
    -- key holds a scope of any length (a route template or a chosen name).
    key_hash   BYTEA PRIMARY KEY CHECK (octet_length(key_hash) = 32),
    -- The key as the layer built it (scope, verifier, event id), for people.
    key        TEXT NOT NULL,
    -- The lease token of the delivery that holds the key (128 bits).
    token      BYTEA NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),
    -- In flight: the end of the lease. Done: the end of the done TTL.
    expires_at TIMESTAMPTZ NOT NULL
);

-- Finds expired rows for the bounded sweep.
CREATE INDEX webhook_guard_idempotency_expires_at
    ON webhook_guard_idempotency (expires_at);
