-- Write goal snapshots, each unless Redis already holds a newer one of that goal.
-- "Newer" is the ledger watermark the snapshot was computed at (seq), then the
-- time it was computed (now), so an event applied late never overwrites a
-- snapshot computed from a later state of SQLite.
--
-- Many goals per call (a rebuild sends 100k in chunks of 1,000): one HSET per goal,
-- then one variadic ZADD/ZREM/SADD per key for the whole chunk. A chunk holds each
-- goal at most once and at most ~3,000 goals (Lua's unpack limit). Per-goal and
-- per-category keys are derived from the prefix: this needs one Redis, not a Cluster.
--
-- KEYS: 1 ranked, 2 blocked, 3 goals set, 4 deadlines
-- ARGV: 1 key prefix, 2 JSON array of snapshots, each
--   [id, seq, computed_at, placement, zset score, deadline or false, category,
--    version, state, created, deleted (0/1), score or false, raw or false, explain or false]
-- every number as text (formatting doubles in Lua costs more than the rest of the HSET).
-- Returns how many were written.
local prefix = ARGV[1]
local ranked, blocked, goals, deadlines = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local zadd, zrem = {}, {}  -- key -> {score, id, ...} / key -> {id, ...}
local function add(key, score, id)
  local t = zadd[key]
  if not t then t = {}; zadd[key] = t end
  t[#t + 1] = score; t[#t + 1] = id
end
local function rem(key, id)
  local t = zrem[key]
  if not t then t = {}; zrem[key] = t end
  t[#t + 1] = id
end
local ids = {}
for _, s in ipairs(cjson.decode(ARGV[2])) do
  local id, placement, score, deadline, category = s[1], s[4], s[5], s[6], s[7]
  local seq, at = tonumber(s[2]), tonumber(s[3])
  local key = prefix .. 'goal:' .. id
  local held = redis.call('HMGET', key, 'seq', 'computed_at', 'category')
  local held_seq, held_at = tonumber(held[1] or '-1'), tonumber(held[2] or '-1')
  if not (seq < held_seq or (seq == held_seq and at < held_at)) then
    local in_category = prefix .. 'ranked:' .. category
    -- The category may have changed: leave the old per-category ranking.
    if held[3] and held[3] ~= category then
      rem(prefix .. 'ranked:' .. held[3], id)
    end
    -- Every field, every time (empty when not scored): no stale field survives.
    redis.call('HSET', key, 'id', id, 'seq', s[2], 'computed_at', s[3], 'placement', placement,
      'deadline', deadline or '', 'category', category, 'version', s[8], 'state', s[9],
      'created', s[10], 'deleted', s[11], 'score', s[12] or '', 'raw', s[13] or '',
      'explain', s[14] or '')
    ids[#ids + 1] = id
    if placement == 'ranked' then
      add(ranked, score, id); add(in_category, score, id); rem(blocked, id)
    elseif placement == 'blocked' then
      rem(ranked, id); rem(in_category, id); add(blocked, score, id)
    else
      rem(ranked, id); rem(in_category, id); rem(blocked, id)
    end
    if deadline and placement ~= 'none' then
      add(deadlines, deadline, id)
    else
      rem(deadlines, id)
    end
  end
end
-- A goal is in only one of add/rem for each key, so their order does not matter.
for key, members in pairs(zrem) do redis.call('ZREM', key, unpack(members)) end
for key, members in pairs(zadd) do redis.call('ZADD', key, unpack(members)) end
if #ids > 0 then redis.call('SADD', goals, unpack(ids)) end
return #ids
