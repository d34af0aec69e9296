-- Goal trees (issue 18):
--   parent_id          the goal this one is a part of, or null for a root;
--   completion_policy  when the children's satisfaction satisfies this goal:
--                      'all' (every live child), 'any' (one), 'manual' (the gate, by hand);
--   tree_block         {reason: 'child_abandoned', ref: child id, at} or null: set when a
--                      child is abandoned, cleared when a child is added or the goal changed.
ALTER TABLE goals ADD COLUMN parent_id TEXT;
ALTER TABLE goals ADD COLUMN completion_policy TEXT NOT NULL DEFAULT 'all'
    CHECK (completion_policy IN ('all', 'any', 'manual'));
ALTER TABLE goals ADD COLUMN tree_block TEXT NOT NULL DEFAULT 'null' CHECK (json_valid(tree_block));

-- A goal's children, and `GET /v1/goals?parent_id=`.
CREATE INDEX goals_by_parent ON goals (parent_id, pk) WHERE parent_id IS NOT NULL;
