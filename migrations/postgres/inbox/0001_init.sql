-- The inbox of receivers, version 1: one row per verified webhook, unique
-- by its authenticated id. Times are unix milliseconds from the receivers'
-- clocks, as they pass them. `lease_owner` is the store instance that
-- claimed an event under `lease_until_ms`: both fence its settlement.
CREATE TABLE inbox_events (
    seq                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                 TEXT NOT NULL UNIQUE,
    scheme             TEXT NOT NULL,
    -- The signed timestamp, unix seconds; with `ordering_key`, the order
    -- in which events of one key are to be processed.
    signed_at          BIGINT,
    event_type         TEXT,
    ordering_key       TEXT,
    body               BYTEA NOT NULL,
    received_at_ms     BIGINT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'done', 'dead_lettered')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT,
    lease_until_ms     BIGINT,
    lease_owner        TEXT,
    last_error         TEXT,
    finished_at_ms     BIGINT
);
-- Claims: pending events in due order.
CREATE INDEX inbox_events_due ON inbox_events (next_attempt_at_ms, seq)
    WHERE status = 'pending';
-- Pages, newest first, by status (all: the primary key).
CREATE INDEX inbox_events_status ON inbox_events (status, seq DESC);
-- Per-key ordering: the oldest pending event of a key, and whether one of
-- that key is leased.
CREATE INDEX inbox_events_key ON inbox_events (ordering_key, signed_at, seq)
    WHERE ordering_key IS NOT NULL AND status = 'pending';
-- Replays of a time range of dead letters.
CREATE INDEX inbox_events_dead ON inbox_events (finished_at_ms)
    WHERE status = 'dead_lettered';
-- The stale check: the newest signed time done for a key.
CREATE INDEX inbox_events_key_done ON inbox_events (ordering_key, signed_at)
    WHERE status = 'done' AND ordering_key IS NOT NULL;
