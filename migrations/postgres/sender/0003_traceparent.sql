-- The publisher's W3C `traceparent`, sent as a header on every attempt of
-- the event's deliveries (NULL: published outside a trace).
ALTER TABLE sender_events ADD COLUMN traceparent TEXT;
