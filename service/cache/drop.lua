-- Drop goals a rebuild did not find in SQLite, which read it at ledger seq ARGV[2]: each
-- unless its snapshot is newer than that read (a goal created while the rebuild ran and
-- written since by the worker: SQLite has it, the rebuild's read did not). One goal at a
-- time, atomically: its hash, its membership of the goals set and of every ranking.
--
-- Counts itself in meta's `writes`, as snapshot.lua does.
--
-- KEYS: 1 goals set, 2 meta, 3.. every sorted set a goal can be in (rankings, blocked,
--   deadlines), then the hash of each goal, in ARGV's order
-- ARGV: 1 the rebuild's seq, 2.. goal ids
-- Returns how many were dropped.
local seq = tonumber(ARGV[1])
local sets = #KEYS - (#ARGV - 1)  -- KEYS[3..sets]: the sorted sets; KEYS[sets + i]: hashes
redis.call('HINCRBY', KEYS[2], 'writes', 1)
local dropped = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local key = KEYS[sets + i - 1]
  if tonumber(redis.call('HGET', key, 'seq') or '-1') <= seq then
    redis.call('DEL', key)
    redis.call('SREM', KEYS[1], id)
    for k = 3, sets do redis.call('ZREM', KEYS[k], id) end
    dropped = dropped + 1
  end
end
return dropped
