-- Write goal snapshots, each unless Redis already holds a newer one of that goal.
-- "Newer" is the ledger watermark the snapshot was computed at (seq), then the
-- time it was computed (now), so an event applied late never overwrites a
-- snapshot computed from a later state of SQLite. (computed_at is in microseconds; one
-- an older GoalStore held in seconds compares older, and is overwritten.)
--
-- Many goals per call (a rebuild sends every goal, in chunks): one HSET per goal, and
-- one variadic SADD, ZADD or ZREM per key for the whole chunk. A chunk holds each goal
-- at most once and at most ~3,000 goals (Lua's unpack limit). Every key comes in KEYS,
-- named by keys.py; a chunk's keys lie in many slots: this needs one Redis, not a Cluster.
-- A goal the goals set lacks has no snapshot and is in no ranking (all are written
-- here, and dropped together): only the others are read for the guard, or removed
-- from where they no longer belong. A cold rebuild reads and removes nothing.
--
-- Mode "place" puts each goal written in the sorted sets it belongs in. Mode "defer"
-- (a rebuild) does so only for goals that had a snapshot, and leaves the goals new to
-- Redis to place.lua, called a sorted set at a time once every snapshot is written:
-- inserting into one ZSET in a run costs Redis less than interleaved with hashes.
-- Should the rebuild stop in between, every goal it placed is where its hash says; a
-- new goal it left unplaced is placed by the next write of it, even a write refused
-- as older: a refused write places the goal where the snapshot held says.
-- (cache/rebuild.py's placements() applies the same placement rule as place() here.)
--
-- Every call counts itself in meta's `writes` (so does drop.lua): a rebuild that
-- finds the count where its own last write left it knows nobody else wrote since.
--
-- KEYS: 1 ranked, 2 blocked, 3 goals set, 4 deadlines, 5 meta, then each category's
--   ranking, in the order ARGV[2] names the categories, then the hash of each
--   snapshot's goal, in the order of ARGV[3]
-- ARGV: 1 "place" or "defer", 2 JSON array of every category, 3 JSON array of
--   snapshots, each
--   [id, seq, computed_at, placement, deadline (epoch seconds: the deadlines ZSET's
--    score), category, version, state, created, deleted, score, raw, deadline (as the
--    hash holds it), alignment, blocked_by, assigned_to, related, manual_block, parent_id,
--    progress]
--   where false is none: state (a ranked or blocked goal is adopted), deadline, deleted,
--   score and raw (not scored), raw (it is the score), alignment (0), blocked_by, and the
--   last five, which a row may also leave out (nil: none; progress: 0).
--   encoding.py says how each is written; instants are epoch microseconds.
-- The hash holds only the fields that say something (fields() below), so that Redis
-- keeps it as a listpack; every number travels as text (formatting doubles in Lua costs
-- more than the rest of the HSET).
-- Returns {the `writes` count after this call, how many goals it left to place.lua, and
-- their ids unless that is all of them}.
local defer = ARGV[1] == 'defer'
local ranked, blocked, goals, deadlines, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local in_category = {}  -- category -> its ranking's key
local categories = cjson.decode(ARGV[2])
for i, category in ipairs(categories) do in_category[category] = KEYS[5 + i] end
local hashes = 5 + #categories  -- KEYS[hashes + i]: the i-th snapshot's goal hash
local rows = cjson.decode(ARGV[3])
-- Checked before anything is written (or counted): every key is there.
if #KEYS ~= hashes + #rows then return redis.error_reply('one goal hash key per snapshot') end
for _, s in ipairs(rows) do
  if not in_category[s[6]] then return redis.error_reply('no ranking for category ' .. s[6]) end
end
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
-- Counted before anything is written: a call that fails half-way still counts.
local writes = redis.call('HINCRBY', meta, 'writes', 1)
local all = {}
for i, s in ipairs(rows) do all[i] = s[1] end
local known = #all > 0 and redis.call('SMISMEMBER', goals, unpack(all)) or {}
-- Members first, hashes after: should the script fail half-way, a goal may be a member
-- without a hash (its next write reads an empty guard), never a hash without membership.
local fresh = {}
for i, id in ipairs(all) do
  if known[i] ~= 1 then fresh[#fresh + 1] = id end
end
if #fresh > 0 then redis.call('SADD', goals, unpack(fresh)) end
local deferred = {}
-- A snapshot's hash: its fields and values, flat, in the order HGETALL shows them.
local function put(f, name, value)
  if value then f[#f + 1] = name; f[#f + 1] = value end
end
local function fields(s)
  local f
  if s[8] then f = {'state', s[8], 'placement', s[4]} else f = {'placement', s[4]} end
  put(f, 'score', s[11]); put(f, 'raw', s[12]); put(f, 'category', s[6])
  put(f, 'version', s[7]); put(f, 'deadline', s[13]); put(f, 'created', s[9])
  put(f, 'alignment', s[14]); put(f, 'blocked_by', s[15]); put(f, 'manual_block', s[18])
  put(f, 'assigned_to', s[16]); put(f, 'related', s[17]); put(f, 'parent_id', s[19])
  put(f, 'progress', s[20]); put(f, 'deleted', s[10])
  put(f, 'seq', s[2]); put(f, 'computed_at', s[3])
  return f
end
-- A held instant (a deadline) as epoch seconds, for a sorted set's score: the hash
-- holds epoch microseconds, or seconds with a point or an exponent (an instant not a
-- whole microsecond, or an older GoalStore's). %.17g reads back as the same double.
local function seconds(held)
  if string.find(held, '[.eE]') then return held end
  return string.format('%.17g', tonumber(held) / 1000000)
end
-- The placement rule: where a snapshot puts its goal, and with what score. (A snapshot
-- held of a category no longer known: its ranking is one nobody reads.)
local function place(id, placement, deadline, category, score, raw)
  if placement == 'ranked' then
    add(ranked, score, id)
    if in_category[category] then add(in_category[category], score, id) end
  end
  if placement == 'blocked' then add(blocked, raw, id) end
  if deadline and placement ~= 'none' then add(deadlines, deadline, id) end
end
for i, s in ipairs(rows) do
  local id, placement, deadline, category = s[1], s[4], s[5], s[6]
  local key = KEYS[hashes + i]
  local had, write, held = known[i] == 1, true, nil
  if had then
    held = redis.call('HMGET', key, 'seq', 'computed_at', 'category')
    local seq, held_seq = tonumber(s[2]), tonumber(held[1] or '-1')
    write = not (seq < held_seq or (seq == held_seq and tonumber(s[3]) < tonumber(held[2] or '-1')))
  end
  if write then
    local score, raw = s[11], s[12] or s[11]
    local f = fields(s)
    local added = redis.call('HSET', key, unpack(f))
    -- A field of the snapshot before that this one leaves out (or one of an older
    -- GoalStore's) would survive the HSET, and one that snapshot lacked went last: the
    -- hash is then written anew, in order, and a listpack again. No stale field survives.
    if (had and added > 0) or redis.call('HLEN', key) > #f / 2 then
      redis.call('DEL', key)
      redis.call('HSET', key, unpack(f))
    end
    if defer and not had then
      deferred[#deferred + 1] = id
    else
      place(id, placement, deadline, category, score, raw)
    end
    -- Only a goal that had a snapshot can sit where it no longer belongs.
    if had then
      local held_ranking = held[3] and held[3] ~= category and in_category[held[3]]
      if held_ranking then rem(held_ranking, id) end
      if placement ~= 'ranked' then rem(ranked, id); rem(in_category[category], id) end
      if placement ~= 'blocked' then rem(blocked, id) end
      if not (deadline and placement ~= 'none') then rem(deadlines, id) end
    end
  else
    -- Redis holds a newer snapshot: the goal stays where that one puts it. Placed again
    -- (nothing changes if it is there already), for it may not be: a rebuild that
    -- wrote it as new and stopped before place.lua left it unplaced.
    -- (No raw: it is the score. An empty deadline: an older GoalStore's "none".)
    local p = redis.call('HMGET', key, 'placement', 'deadline', 'score', 'raw')
    local held_deadline = p[2] and p[2] ~= '' and seconds(p[2])
    if p[1] then place(id, p[1], held_deadline, held[3], p[3], p[4] or p[3]) end
  end
end
-- A goal is in only one of add/rem for each key, so their order does not matter.
for key, members in pairs(zrem) do redis.call('ZREM', key, unpack(members)) end
for key, members in pairs(zadd) do redis.call('ZADD', key, unpack(members)) end
if #deferred == #rows then return {writes, #deferred} end
return {writes, #deferred, unpack(deferred)}
