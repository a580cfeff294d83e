-- The sender's delivery queue, version 1. Times are unix milliseconds, as
-- the sender passes them. `lease_owner` is the store instance that claimed
-- (or created) a delivery under `lease_until_ms`: both fence every write.
CREATE TABLE sender_destinations (
    id              TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    scheme          TEXT NOT NULL,
    events          TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT,
    created_at_ms   BIGINT NOT NULL,
    secrets         TEXT NOT NULL,
    position        BIGSERIAL NOT NULL
);
CREATE TABLE sender_events (
    id            TEXT PRIMARY KEY,
    event_type    TEXT NOT NULL,
    body          BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE TABLE sender_deliveries (
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
    event_id            TEXT NOT NULL REFERENCES sender_events(id),
    destination_id      TEXT NOT NULL,
    status              TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms  BIGINT,
    lease_until_ms      BIGINT,
    lease_owner         TEXT,
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL,
    delivered_at_ms     BIGINT,
    dead_lettered_at_ms BIGINT,
    last_error          TEXT,
    replay_of           TEXT,
    replayed_as         TEXT
);
-- Claims: pending deliveries in due order.
CREATE INDEX sender_deliveries_due ON sender_deliveries (next_attempt_at_ms, seq)
    WHERE status = 'pending';
-- Pages, newest first: all (the primary key), by destination, by status.
CREATE INDEX sender_deliveries_destination ON sender_deliveries (destination_id, seq DESC);
CREATE INDEX sender_deliveries_status ON sender_deliveries (status, seq DESC);
CREATE INDEX sender_deliveries_event ON sender_deliveries (event_id);
CREATE TABLE sender_attempts (
    n             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id   TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    started_at_ms BIGINT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    status_code   INTEGER,
    error_class   TEXT,
    error         TEXT,
    response_body TEXT
);
CREATE INDEX sender_attempts_delivery ON sender_attempts (delivery_id, n);
