-- Drop goals a rebuild did not find in SQLite, which read it at ledger seq ARGV[2]: each
-- unless its snapshot is newer than that read (a goal created while the rebuild ran and
-- written since by the worker: SQLite has it, the rebuild's read did not). One goal at a
-- time, atomically: its hash, its membership of the goals set and of every ranking.
--
-- Counts itself in meta's `writes`, as snapshot.lua does.
--
-- KEYS: 1 goals set, 2 meta, 3.. every sorted set a goal can be in (rankings, blocked,
--   deadlines)
-- ARGV: 1 key prefix, 2 the rebuild's seq, 3.. goal ids
-- Returns how many were dropped.
local prefix, seq = ARGV[1], tonumber(ARGV[2])
redis.call('HINCRBY', KEYS[2], 'writes', 1)
local dropped = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local key = prefix .. 'goal:' .. id
  if tonumber(redis.call('HGET', key, 'seq') or '-1') <= seq then
    redis.call('DEL', key)
    redis.call('SREM', KEYS[1], id)
    for k = 3, #KEYS do redis.call('ZREM', KEYS[k], id) end
    dropped = dropped + 1
  end
end
return dropped
