-- The sender's W3C `traceparent`, so that processing continues the sender's
-- trace (NULL: the request carried none, or was stored by version 1).
ALTER TABLE inbox_events ADD COLUMN traceparent TEXT;
