-- The PostgreSQL twin of sqlite/0006_goal_details.sql: what the seeds keep on a goal
-- besides its ranking inputs, and the tasks' version and origin (see that file).
ALTER TABLE goals ADD COLUMN assigned_to TEXT;
ALTER TABLE goals ADD COLUMN related TEXT NOT NULL DEFAULT '[]' CHECK (related::json IS NOT NULL);
ALTER TABLE goals ADD COLUMN criteria TEXT NOT NULL DEFAULT '[]' CHECK (criteria::json IS NOT NULL);
ALTER TABLE goals ADD COLUMN manual_block TEXT NOT NULL DEFAULT 'null' CHECK (manual_block::json IS NOT NULL);
ALTER TABLE goals ADD COLUMN links TEXT NOT NULL DEFAULT '[]' CHECK (links::json IS NOT NULL);
ALTER TABLE goals ADD COLUMN result TEXT NOT NULL DEFAULT 'null' CHECK (result::json IS NOT NULL);
ALTER TABLE goals ADD COLUMN last_failure TEXT NOT NULL DEFAULT 'null' CHECK (last_failure::json IS NOT NULL);
ALTER TABLE goals ADD COLUMN progress DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1);

CREATE INDEX goals_by_assignee ON goals (assigned_to, pk) WHERE assigned_to IS NOT NULL;

ALTER TABLE tasks ADD COLUMN version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1);
ALTER TABLE tasks ADD COLUMN origin TEXT NOT NULL DEFAULT 'selection'
    CHECK (origin IN ('selection', 'manual'));

-- `goalstore ledger timeline --trace-id`: one request's events without a ledger scan.
CREATE INDEX ledger_by_trace ON ledger (trace_id, seq) WHERE trace_id IS NOT NULL;
