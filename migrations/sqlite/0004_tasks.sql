-- Tasks: each selection of a goal hands one task to the scheduler (DESIGN §3.2).
-- UNIQUE (goal_id, goal_version): a goal version is submitted at most once, whatever
-- number of selectors race for it (the Redis claim only keeps them apart cheaply).
CREATE TABLE tasks (
    pk           INTEGER PRIMARY KEY,
    task_id      TEXT NOT NULL UNIQUE,
    goal_id      TEXT NOT NULL REFERENCES goals (id),
    goal_version INTEGER NOT NULL,
    attempt      INTEGER NOT NULL CHECK (attempt >= 1),
    state        TEXT NOT NULL
                 CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'verified', 'rejected')),
    superseded   INTEGER NOT NULL DEFAULT 0 CHECK (superseded IN (0, 1)),
    evidence     TEXT NOT NULL DEFAULT 'null',  -- JSON: what the executor or a reviewer supplied
    reason       TEXT,                          -- why it failed or was rejected
    trace_id     TEXT NOT NULL,
    span_id      TEXT NOT NULL,
    traceparent  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (goal_id, goal_version)
);
CREATE INDEX tasks_goal ON tasks (goal_id, attempt);
CREATE INDEX tasks_open ON tasks (updated_at) WHERE state IN ('queued', 'running');
