-- A rebuild of the Redis ranking covers every event up to the ledger seq it read. It
-- records that one number here instead of marking each outbox row applied: after a
-- backlog (a worker down for a while, a bulk load) that was one UPDATE per event, ~0.3 s
-- per 200k events with the write lock held. Rows at or below the watermark count as
-- applied; retention prunes them by age like the others.
CREATE TABLE outbox_watermark (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    applied_through INTEGER NOT NULL
);
INSERT INTO outbox_watermark (id, applied_through) VALUES (1, 0);

-- Delivery reads the rows above the watermark, in ledger order.
DROP INDEX outbox_pending;
DROP INDEX outbox_unapplied;
CREATE INDEX outbox_pending ON outbox (ledger_seq) WHERE relayed_at IS NULL;
CREATE INDEX outbox_unapplied ON outbox (ledger_seq) WHERE applied_at IS NULL;
