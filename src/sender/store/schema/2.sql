-- Schema version 2: rebuilds events, deliveries and attempts with fewer
-- B-trees per delivery (see MIGRATION_2 in sqlite.rs). Runs with foreign
-- keys off.
CREATE TABLE events_v2 (
    id            TEXT PRIMARY KEY,
    event_type    TEXT NOT NULL,
    body          BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO events_v2 SELECT id, event_type, body, created_at_ms FROM events;
DROP TABLE events;
ALTER TABLE events_v2 RENAME TO events;

CREATE TABLE deliveries_v2 (
    seq                 INTEGER PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
    event_id            TEXT NOT NULL REFERENCES events(id),
    destination_id      TEXT NOT NULL,
    status              TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms  INTEGER,
    lease_until_ms      INTEGER,
    created_at_ms       INTEGER NOT NULL,
    updated_at_ms       INTEGER NOT NULL,
    delivered_at_ms     INTEGER,
    dead_lettered_at_ms INTEGER,
    last_error          TEXT,
    replay_of           TEXT,
    replayed_as         TEXT
);
INSERT INTO deliveries_v2 SELECT seq, id, event_id, destination_id, status, attempts,
    next_attempt_at_ms, lease_until_ms, created_at_ms, updated_at_ms, delivered_at_ms,
    dead_lettered_at_ms, last_error, replay_of, replayed_as FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v2 RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries(next_attempt_at_ms) WHERE status = 'pending';
CREATE INDEX deliveries_destination ON deliveries(destination_id, seq);
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_dead ON deliveries(seq) WHERE status = 'dead_lettered';

CREATE TABLE attempts_v2 (
    delivery_id    TEXT NOT NULL,
    n              INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    started_at_ms  INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    status_code    INTEGER,
    error_class    TEXT,
    error          TEXT,
    response_body  TEXT,
    PRIMARY KEY (delivery_id, n)
) WITHOUT ROWID;
INSERT INTO attempts_v2 SELECT delivery_id,
    ROW_NUMBER() OVER (PARTITION BY delivery_id ORDER BY rowid), attempt, started_at_ms,
    duration_ms, status_code, error_class, error, response_body FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_v2 RENAME TO attempts;
