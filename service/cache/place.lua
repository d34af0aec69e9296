-- Place goals new to Redis that a rebuild wrote (snapshot.lua, mode "defer") in one
-- sorted set: a run of inserts into one ZSET, once every snapshot is written.
--
-- Nothing if the rebuild's marker is gone or from another Redis process (begin.lua):
-- Redis restarted since, and the count below may have started again, or been reloaded
-- from disk, and met the expected one. Otherwise only goals whose
-- snapshot is still the rebuild's. When meta's `writes` count is where the rebuild's
-- own last write left it, nobody has written a snapshot since, and the rebuild's
-- writes were consecutive (the caller checks that): every goal is placed without a
-- read. Otherwise each goal is placed only if its hash still holds the rebuild's seq
-- and computed_at; a goal rewritten since was placed by that write.
--
-- KEYS: 1 the sorted set, 2 meta, 3 the rebuild's marker, then the hash of each pair's
--   goal, in order; needed only to read the goals: a call that expects a `writes` count
--   may leave them out, and is answered {-2, 0} when the count is not the one expected
-- ARGV: 1 the `writes` count expected (-1: read every goal), 2 the rebuild's seq, 3 its
--   computed_at (both as its snapshots hold them), 4.. score, id pairs (at most 3,999:
--   Lua's unpack limit).
-- Returns {goals placed, snapshots read}, {-1, 0} if the marker is gone or stale, or
-- {-2, 0} (nothing done) if the goals must be read and their hashes' keys were not sent.
if redis.call('GET', KEYS[3]) ~= run_id() then return {-1, 0} end
if #ARGV < 4 then return {0, 0} end
if redis.call('HGET', KEYS[2], 'writes') == ARGV[1] then
  redis.call('ZADD', KEYS[1], unpack(ARGV, 4))
  return {(#ARGV - 3) / 2, 0}
end
if #KEYS == 3 then return {-2, 0} end
local seq, computed_at = ARGV[2], ARGV[3]
local members = {}
for i = 4, #ARGV, 2 do
  local held = redis.call('HMGET', KEYS[3 + (i - 2) / 2], 'seq', 'computed_at')
  if held[1] == seq and held[2] == computed_at then
    members[#members + 1] = ARGV[i]
    members[#members + 1] = ARGV[i + 1]
  end
end
if #members > 0 then redis.call('ZADD', KEYS[1], unpack(members)) end
return {#members / 2, (#ARGV - 3) / 2}
