-- Schema version 1 of the SQLite delivery store.
CREATE TABLE destinations (
    id              TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    scheme          TEXT NOT NULL,
    events          TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    disabled_reason TEXT,
    created_at_ms   INTEGER NOT NULL,
    secrets         TEXT NOT NULL,
    position        INTEGER NOT NULL
);
CREATE TABLE events (
    id            TEXT PRIMARY KEY,
    event_type    TEXT NOT NULL,
    body          BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE deliveries (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
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
CREATE INDEX deliveries_due ON deliveries(next_attempt_at_ms) WHERE status = 'pending';
CREATE INDEX deliveries_destination ON deliveries(destination_id, seq);
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_status ON deliveries(status, seq);
CREATE TABLE attempts (
    rowid          INTEGER PRIMARY KEY,
    delivery_id    TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    started_at_ms  INTEGER NOT NULL,
    duration_ms    INTEGER NOT NULL,
    status_code    INTEGER,
    error_class    TEXT,
    error          TEXT,
    response_body  TEXT
);
CREATE INDEX attempts_delivery ON attempts(delivery_id, rowid);
