-- One actor's token bucket: take a token if there is one.
-- KEYS[1] the actor's bucket (HASH: tokens, at_ms); ARGV[1] tokens per second, ARGV[2] burst.
-- Returns 0 when a token was taken, else the milliseconds until one is back.
-- The clock is Redis's own (TIME), so every web process on every host shares it.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at_ms')
local tokens = tonumber(bucket[1]) or burst
local at_ms = tonumber(bucket[2]) or now_ms
tokens = math.min(burst, tokens + math.max(0, now_ms - at_ms) * rate / 1000)
local wait_ms = 0
if tokens >= 1 then
    tokens = tokens - 1
else
    wait_ms = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at_ms', tostring(now_ms))
-- A full bucket is the same as none: let an idle actor's key go.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return wait_ms
