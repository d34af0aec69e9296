-- The PostgreSQL twin of sqlite/0007_goal_trees.sql: a goal's parent, its completion
-- policy, and the block an abandoned child leaves on it (see that file).
ALTER TABLE goals ADD COLUMN parent_id TEXT;
ALTER TABLE goals ADD COLUMN completion_policy TEXT NOT NULL DEFAULT 'all'
    CHECK (completion_policy IN ('all', 'any', 'manual'));
ALTER TABLE goals ADD COLUMN tree_block TEXT NOT NULL DEFAULT 'null' CHECK (tree_block::json IS NOT NULL);

CREATE INDEX goals_by_parent ON goals (parent_id, pk) WHERE parent_id IS NOT NULL;
