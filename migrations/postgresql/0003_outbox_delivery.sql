-- Delivery state of the outbox: relayed_at says an event is on the queue (a claim
-- that is released or redelivered if it never gets applied), applied_at that the
-- ranking worker has written its effect to Redis. Rows applied long ago are pruned;
-- the ledger keeps every event for good.

ALTER TABLE outbox ADD COLUMN applied_at TEXT;

CREATE INDEX outbox_unapplied ON outbox (id) WHERE applied_at IS NULL;
