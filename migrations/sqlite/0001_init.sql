-- Goals, the hash-chained ledger, and the outbox that feeds the event queue.

CREATE TABLE goals (
    pk               INTEGER PRIMARY KEY,  -- creation order; list cursors use it
    id               TEXT    NOT NULL UNIQUE,
    text             TEXT    NOT NULL,
    category         TEXT    NOT NULL
        CHECK (category IN ('introspection', 'exploration', 'maintenance', 'user_requested')),
    goal_type        TEXT    NOT NULL,
    value            REAL    NOT NULL CHECK (value BETWEEN 0 AND 1),
    effort           REAL    NOT NULL CHECK (effort BETWEEN 0 AND 1),
    risk             REAL    NOT NULL CHECK (risk BETWEEN 0 AND 1),
    horizon_min_min  INTEGER NOT NULL CHECK (horizon_min_min >= 0),
    horizon_max_min  INTEGER CHECK (horizon_max_min IS NULL OR horizon_max_min >= horizon_min_min),
    aligns_with      TEXT    NOT NULL CHECK (json_valid(aligns_with)),
    contradicts      TEXT    NOT NULL CHECK (json_valid(contradicts)),
    depends_on       TEXT    NOT NULL CHECK (json_valid(depends_on)),
    success_metrics  TEXT    NOT NULL CHECK (json_valid(success_metrics)),
    metadata         TEXT    NOT NULL CHECK (json_valid(metadata)),
    state            TEXT    NOT NULL
        CHECK (state IN ('proposed', 'adopted', 'executing', 'satisfied', 'abandoned')),
    version          INTEGER NOT NULL CHECK (version >= 1),
    owner            TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    deleted_at       TEXT
);

CREATE INDEX goals_by_state_category ON goals (state, category, pk);
CREATE INDEX goals_by_category ON goals (category, pk);

CREATE TABLE ledger (
    seq         INTEGER PRIMARY KEY,
    ts          TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    goal_id     TEXT,
    actor       TEXT NOT NULL,
    trace_id    TEXT,
    span_id     TEXT,
    payload     TEXT NOT NULL CHECK (json_valid(payload)),
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE
);

CREATE INDEX ledger_by_goal ON ledger (goal_id, seq);

-- Append-only by construction; `goalstore ledger verify` catches whoever drops these.
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

-- One row per ledger event, committed with it; the relay marks it once queued.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    ledger_seq  INTEGER NOT NULL UNIQUE REFERENCES ledger (seq),
    event_type  TEXT    NOT NULL,
    goal_id     TEXT,
    created_at  TEXT    NOT NULL,
    relayed_at  TEXT
);

CREATE INDEX outbox_pending ON outbox (id) WHERE relayed_at IS NULL;
