-- Beliefs mirrored from the agent's kernel, and the decision registry (ranking weights).

CREATE TABLE beliefs (
    id          TEXT    PRIMARY KEY,
    statement   TEXT    NOT NULL,
    active      INTEGER NOT NULL CHECK (active IN (0, 1)),
    version     INTEGER NOT NULL CHECK (version >= 1),
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);

CREATE TABLE decisions (
    decision_id      TEXT    PRIMARY KEY,
    subsystem        TEXT    NOT NULL,
    parameters       TEXT    NOT NULL CHECK (json_valid(parameters)),
    success_metrics  TEXT    NOT NULL CHECK (json_valid(success_metrics)),
    version          INTEGER NOT NULL CHECK (version >= 1),
    updated_at       TEXT    NOT NULL
);

-- The seed's registration of goal_selected: current, min, max and step of each weight.
INSERT INTO decisions (decision_id, subsystem, parameters, success_metrics, version, updated_at)
VALUES (
    'goal_selected',
    'goal_store',
    '{"alignment_weight":{"current":0.05,"max":0.3,"min":0.0,"step":0.02},'
    || '"effort_weight":{"current":0.25,"max":1.0,"min":0.0,"step":0.05},'
    || '"risk_weight":{"current":0.15,"max":1.0,"min":0.0,"step":0.05},'
    || '"urgency_weight":{"current":0.05,"max":0.3,"min":0.0,"step":0.02},'
    || '"value_weight":{"current":0.5,"max":1.0,"min":0.0,"step":0.05}}',
    '["coherence","goal_satisfaction","task_completion_rate"]',
    1,
    '1970-01-01T00:00:00.000000Z'
);

CREATE TABLE decision_outcomes (
    id           INTEGER PRIMARY KEY,
    decision_id  TEXT    NOT NULL REFERENCES decisions (decision_id),
    goal_id      TEXT,
    metrics      TEXT    NOT NULL CHECK (json_valid(metrics)),
    parameters   TEXT    NOT NULL CHECK (json_valid(parameters)),
    actor        TEXT    NOT NULL,
    trace_id     TEXT,
    recorded_at  TEXT    NOT NULL
);

CREATE INDEX decision_outcomes_by_decision ON decision_outcomes (decision_id, id);
