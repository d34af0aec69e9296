-- Mark a rebuild in progress: its marker holds the run id of this Redis process, so a
-- restart meanwhile (empty, or reloaded from disk) shows as a marker gone or stale.
--
-- KEYS: 1 the rebuild's marker
-- ARGV: 1 seconds the marker lives (longer than any rebuild)
redis.call('SET', KEYS[1], run_id(), 'EX', ARGV[1])
return 1
