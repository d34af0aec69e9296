-- Mark the cache rebuilt (meta's rebuilt_seq and the rest), if the rebuild's marker is
-- still there: gone means Redis lost its data while the rebuild ran, so what it wrote is
-- not all there, and the cache must stay cold (not warm: the worker rebuilds it).
--
-- KEYS: 1 the rebuild's marker, 2 meta
-- ARGV: field, value pairs for meta
-- Returns 1 if marked, 0 if the marker was gone.
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV))
return 1
