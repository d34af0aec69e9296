-- Replace the copy of the ranking inputs (active beliefs, weights) unless Redis
-- already holds one read at a later ledger seq.
--
-- KEYS: 1 meta hash, 2 active beliefs set, 3 weights hash
-- ARGV: 1 seq, 2 number of belief ids n, 3..2+n belief ids, then weight field, value pairs
local held = tonumber(redis.call('HGET', KEYS[1], 'inputs_seq') or '-1')
local seq = tonumber(ARGV[1])
if seq < held then
  return 0
end
local n = tonumber(ARGV[2])
redis.call('DEL', KEYS[2])
if n > 0 then
  redis.call('SADD', KEYS[2], unpack(ARGV, 3, 2 + n))
end
redis.call('HSET', KEYS[3], unpack(ARGV, 3 + n))
redis.call('HSET', KEYS[1], 'inputs_seq', seq)
return 1
