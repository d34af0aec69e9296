-- What the seeds keep on a goal besides its ranking inputs (issue 15):
--   assigned_to   the actor working on it (seed 003), filterable;
--   related       non-blocking links to other goals (JSON id list);
--   criteria      acceptance criteria, each {id, text, met, evidence, reviewed_by, reviewed_at};
--   manual_block  a person's block {reason, actor, at}, or null: never selected while set;
--   links         external work {kind, ref, url, actor, at} (a chat session, a pull request);
--   result        the typed result a satisfied goal was closed with;
--   last_failure  the last GoalFailure {error_type, detail, errors, suggestions, debug_info, ...};
--   progress      verified live tasks / live tasks, kept by the commands that change tasks.
-- Tasks carry a version (a review names the one it is based on) and where they came
-- from: a selection, or a person recording work done outside selection.
ALTER TABLE goals ADD COLUMN assigned_to TEXT;
ALTER TABLE goals ADD COLUMN related TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(related));
ALTER TABLE goals ADD COLUMN criteria TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(criteria));
ALTER TABLE goals ADD COLUMN manual_block TEXT NOT NULL DEFAULT 'null' CHECK (json_valid(manual_block));
ALTER TABLE goals ADD COLUMN links TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(links));
ALTER TABLE goals ADD COLUMN result TEXT NOT NULL DEFAULT 'null' CHECK (json_valid(result));
ALTER TABLE goals ADD COLUMN last_failure TEXT NOT NULL DEFAULT 'null' CHECK (json_valid(last_failure));
ALTER TABLE goals ADD COLUMN progress REAL NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1);

CREATE INDEX goals_by_assignee ON goals (assigned_to, pk) WHERE assigned_to IS NOT NULL;

ALTER TABLE tasks ADD COLUMN version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1);
ALTER TABLE tasks ADD COLUMN origin TEXT NOT NULL DEFAULT 'selection'
    CHECK (origin IN ('selection', 'manual'));

-- `goalstore ledger timeline --trace-id`: one request's events without a ledger scan.
CREATE INDEX ledger_by_trace ON ledger (trace_id, seq) WHERE trace_id IS NOT NULL;
