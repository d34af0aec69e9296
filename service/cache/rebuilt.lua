-- Mark the cache rebuilt (meta's rebuilt_seq and the rest), if the rebuild's marker is
-- still there, from this Redis process (begin.lua): gone or stale means Redis restarted
-- while the rebuild ran, so what it wrote is not all there, and the cache must stay
-- cold (not warm: the worker rebuilds it). The marker is removed either way.
--
-- KEYS: 1 the rebuild's marker, 2 meta
-- ARGV: field, value pairs for meta
-- Returns 1 if marked, 0 if the marker was gone or stale.
local ours = redis.call('GET', KEYS[1]) == run_id()
redis.call('DEL', KEYS[1])
if not ours then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV))
return 1
