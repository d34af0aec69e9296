-- The head of a ranking ZSET and what ordering needs of each goal there, in one
-- round trip: the best ARGV[2] members, every member tied with the last of them
-- (the documented tie-breakers may put one of those first), and the HMGET of the
-- ordering fields of each. The order itself is decided by the caller (one place
-- for that rule: the domain's order_key()); this only gathers.
--
-- KEYS: 1 the ZSET (the ranking or a category's), 2 the meta hash
-- ARGV: 1 what a goal hash's key puts before the goal id (Keys.goal_prefix: the ids are
--   found here, so their keys cannot come in KEYS), 2 limit, 3.. the snapshot fields to read
-- Returns {warm (0/1: a rebuild populated this Redis), ZCARD, id, {fields}, id, ...}
local limit = tonumber(ARGV[2])
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
local members = redis.call('ZREVRANGE', KEYS[1], 0, limit - 1, 'WITHSCORES')
local ids, seen = {}, {}
for i = 1, #members, 2 do
  ids[#ids + 1] = members[i]
  seen[members[i]] = true
end
if limit > 0 and #members == 2 * limit then
  local last = members[#members]
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], last, last)) do
    if not seen[id] then ids[#ids + 1] = id end
  end
end
local out = {redis.call('HEXISTS', KEYS[2], 'rebuilt_seq'), redis.call('ZCARD', KEYS[1])}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HMGET', ARGV[1] .. id, unpack(fields))
end
return out
