-- The health rollup: one row per destination and minute, and one per
-- destination and clock hour, with its attempts, successes, slowest
-- response and a histogram of response times:
-- b0..b25 count the attempts up to each bound of RESPONSE_TIME_BOUNDS_MS
-- (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700,
-- 1000, 1500, 2000, 3000, 5000, 7000, 10000, 15000 ms), b25 the slower
-- ones. Written with each attempt; filled here from the history already
-- stored. Minute rows older than two days are deleted as hours begin: the
-- health reads the last 25 hours of them at most.
CREATE TABLE sender_attempt_minutes (
    destination_id TEXT NOT NULL,
    minute_ms      BIGINT NOT NULL,
    attempts       BIGINT NOT NULL,
    successes      BIGINT NOT NULL,
    max_ms         BIGINT NOT NULL,
    b0  BIGINT NOT NULL DEFAULT 0,
    b1  BIGINT NOT NULL DEFAULT 0,
    b2  BIGINT NOT NULL DEFAULT 0,
    b3  BIGINT NOT NULL DEFAULT 0,
    b4  BIGINT NOT NULL DEFAULT 0,
    b5  BIGINT NOT NULL DEFAULT 0,
    b6  BIGINT NOT NULL DEFAULT 0,
    b7  BIGINT NOT NULL DEFAULT 0,
    b8  BIGINT NOT NULL DEFAULT 0,
    b9  BIGINT NOT NULL DEFAULT 0,
    b10 BIGINT NOT NULL DEFAULT 0,
    b11 BIGINT NOT NULL DEFAULT 0,
    b12 BIGINT NOT NULL DEFAULT 0,
    b13 BIGINT NOT NULL DEFAULT 0,
    b14 BIGINT NOT NULL DEFAULT 0,
    b15 BIGINT NOT NULL DEFAULT 0,
    b16 BIGINT NOT NULL DEFAULT 0,
    b17 BIGINT NOT NULL DEFAULT 0,
    b18 BIGINT NOT NULL DEFAULT 0,
    b19 BIGINT NOT NULL DEFAULT 0,
    b20 BIGINT NOT NULL DEFAULT 0,
    b21 BIGINT NOT NULL DEFAULT 0,
    b22 BIGINT NOT NULL DEFAULT 0,
    b23 BIGINT NOT NULL DEFAULT 0,
    b24 BIGINT NOT NULL DEFAULT 0,
    b25 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (destination_id, minute_ms)
);
-- The same per clock hour: the day's 24 hourly slots in 24 rows.
CREATE TABLE sender_attempt_hours (
    destination_id TEXT NOT NULL,
    hour_ms        BIGINT NOT NULL,
    attempts       BIGINT NOT NULL,
    successes      BIGINT NOT NULL,
    max_ms         BIGINT NOT NULL,
    b0  BIGINT NOT NULL DEFAULT 0,
    b1  BIGINT NOT NULL DEFAULT 0,
    b2  BIGINT NOT NULL DEFAULT 0,
    b3  BIGINT NOT NULL DEFAULT 0,
    b4  BIGINT NOT NULL DEFAULT 0,
    b5  BIGINT NOT NULL DEFAULT 0,
    b6  BIGINT NOT NULL DEFAULT 0,
    b7  BIGINT NOT NULL DEFAULT 0,
    b8  BIGINT NOT NULL DEFAULT 0,
    b9  BIGINT NOT NULL DEFAULT 0,
    b10 BIGINT NOT NULL DEFAULT 0,
    b11 BIGINT NOT NULL DEFAULT 0,
    b12 BIGINT NOT NULL DEFAULT 0,
    b13 BIGINT NOT NULL DEFAULT 0,
    b14 BIGINT NOT NULL DEFAULT 0,
    b15 BIGINT NOT NULL DEFAULT 0,
    b16 BIGINT NOT NULL DEFAULT 0,
    b17 BIGINT NOT NULL DEFAULT 0,
    b18 BIGINT NOT NULL DEFAULT 0,
    b19 BIGINT NOT NULL DEFAULT 0,
    b20 BIGINT NOT NULL DEFAULT 0,
    b21 BIGINT NOT NULL DEFAULT 0,
    b22 BIGINT NOT NULL DEFAULT 0,
    b23 BIGINT NOT NULL DEFAULT 0,
    b24 BIGINT NOT NULL DEFAULT 0,
    b25 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (destination_id, hour_ms)
);
-- The latest failed attempt of each destination.
CREATE TABLE sender_destination_errors (
    destination_id TEXT PRIMARY KEY,
    at_ms          BIGINT NOT NULL,
    status_code    INTEGER,
    message        TEXT NOT NULL
);
-- Each destination's queue, read without touching finished deliveries.
CREATE INDEX sender_deliveries_pending_destination
    ON sender_deliveries (destination_id, next_attempt_at_ms) WHERE status = 'pending';

INSERT INTO sender_attempt_minutes (destination_id, minute_ms, attempts, successes, max_ms,
    b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16, b17, b18, b19, b20, b21, b22, b23, b24, b25)
SELECT destination_id, minute_ms, COUNT(*), COUNT(*) FILTER (WHERE ok), MAX(duration_ms),
    COUNT(*) FILTER (WHERE b = 0), COUNT(*) FILTER (WHERE b = 1), COUNT(*) FILTER (WHERE b = 2), COUNT(*) FILTER (WHERE b = 3), COUNT(*) FILTER (WHERE b = 4), COUNT(*) FILTER (WHERE b = 5), COUNT(*) FILTER (WHERE b = 6), COUNT(*) FILTER (WHERE b = 7), COUNT(*) FILTER (WHERE b = 8), COUNT(*) FILTER (WHERE b = 9), COUNT(*) FILTER (WHERE b = 10), COUNT(*) FILTER (WHERE b = 11), COUNT(*) FILTER (WHERE b = 12), COUNT(*) FILTER (WHERE b = 13), COUNT(*) FILTER (WHERE b = 14), COUNT(*) FILTER (WHERE b = 15), COUNT(*) FILTER (WHERE b = 16), COUNT(*) FILTER (WHERE b = 17), COUNT(*) FILTER (WHERE b = 18), COUNT(*) FILTER (WHERE b = 19), COUNT(*) FILTER (WHERE b = 20), COUNT(*) FILTER (WHERE b = 21), COUNT(*) FILTER (WHERE b = 22), COUNT(*) FILTER (WHERE b = 23), COUNT(*) FILTER (WHERE b = 24), COUNT(*) FILTER (WHERE b = 25)
FROM (
    SELECT d.destination_id, (a.started_at_ms / 60000) * 60000 AS minute_ms,
        a.error_class IS NULL AS ok, a.duration_ms,
        CASE
            WHEN a.duration_ms <= 1 THEN 0
            WHEN a.duration_ms <= 2 THEN 1
            WHEN a.duration_ms <= 3 THEN 2
            WHEN a.duration_ms <= 5 THEN 3
            WHEN a.duration_ms <= 7 THEN 4
            WHEN a.duration_ms <= 10 THEN 5
            WHEN a.duration_ms <= 15 THEN 6
            WHEN a.duration_ms <= 20 THEN 7
            WHEN a.duration_ms <= 30 THEN 8
            WHEN a.duration_ms <= 50 THEN 9
            WHEN a.duration_ms <= 70 THEN 10
            WHEN a.duration_ms <= 100 THEN 11
            WHEN a.duration_ms <= 150 THEN 12
            WHEN a.duration_ms <= 200 THEN 13
            WHEN a.duration_ms <= 300 THEN 14
            WHEN a.duration_ms <= 500 THEN 15
            WHEN a.duration_ms <= 700 THEN 16
            WHEN a.duration_ms <= 1000 THEN 17
            WHEN a.duration_ms <= 1500 THEN 18
            WHEN a.duration_ms <= 2000 THEN 19
            WHEN a.duration_ms <= 3000 THEN 20
            WHEN a.duration_ms <= 5000 THEN 21
            WHEN a.duration_ms <= 7000 THEN 22
            WHEN a.duration_ms <= 10000 THEN 23
            WHEN a.duration_ms <= 15000 THEN 24
            ELSE 25 END AS b
    FROM sender_attempts a JOIN sender_deliveries d ON d.id = a.delivery_id
) AS history
GROUP BY destination_id, minute_ms;

INSERT INTO sender_attempt_hours (destination_id, hour_ms, attempts, successes, max_ms,
    b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16, b17, b18, b19, b20, b21, b22, b23, b24, b25)
SELECT destination_id, (minute_ms / 3600000) * 3600000, SUM(attempts), SUM(successes), MAX(max_ms),
    SUM(b0), SUM(b1), SUM(b2), SUM(b3), SUM(b4), SUM(b5), SUM(b6), SUM(b7), SUM(b8), SUM(b9), SUM(b10), SUM(b11), SUM(b12), SUM(b13), SUM(b14), SUM(b15), SUM(b16), SUM(b17), SUM(b18), SUM(b19), SUM(b20), SUM(b21), SUM(b22), SUM(b23), SUM(b24), SUM(b25)
FROM sender_attempt_minutes
GROUP BY destination_id, (minute_ms / 3600000) * 3600000;

INSERT INTO sender_destination_errors (destination_id, at_ms, status_code, message)
SELECT DISTINCT ON (d.destination_id) d.destination_id, a.started_at_ms, a.status_code,
    left(COALESCE(a.error, a.error_class), 200)
FROM sender_attempts a JOIN sender_deliveries d ON d.id = a.delivery_id
WHERE a.error_class IS NOT NULL
ORDER BY d.destination_id, a.started_at_ms DESC, a.n DESC;
