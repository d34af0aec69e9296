-- Write one goal's snapshot unless Redis already holds a newer one.
-- "Newer" is the ledger watermark the snapshot was computed at (seq), then the
-- time it was computed (now), so an event applied late never overwrites a
-- snapshot computed from a later state of SQLite.
--
-- KEYS: 1 goal hash, 2 ranked, 3 ranked:{category}, 4 blocked, 5 goals set, 6 deadlines
-- ARGV: 1 goal id, 2 seq, 3 computed_at, 4 placement (ranked|blocked|none),
--       5 zset score, 6 deadline (epoch s, or ""), 7 category, 8.. field, value pairs
local held_seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1')
local held_at = tonumber(redis.call('HGET', KEYS[1], 'computed_at') or '-1')
local seq, at = tonumber(ARGV[2]), tonumber(ARGV[3])
if seq < held_seq or (seq == held_seq and at < held_at) then
  return 0
end
local id, placement, score = ARGV[1], ARGV[4], ARGV[5]
-- The category may have changed: leave every per-category ranking first.
local old_category = redis.call('HGET', KEYS[1], 'category')
if old_category and old_category ~= ARGV[7] then
  local old_key = string.sub(KEYS[3], 1, #KEYS[3] - #ARGV[7]) .. old_category
  redis.call('ZREM', old_key, id)
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
redis.call('SADD', KEYS[5], id)
if placement == 'ranked' then
  redis.call('ZADD', KEYS[2], score, id)
  redis.call('ZADD', KEYS[3], score, id)
  redis.call('ZREM', KEYS[4], id)
elseif placement == 'blocked' then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[4], score, id)
else
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
end
if ARGV[6] ~= '' and placement ~= 'none' then
  redis.call('ZADD', KEYS[6], ARGV[6], id)
else
  redis.call('ZREM', KEYS[6], id)
end
return 1
