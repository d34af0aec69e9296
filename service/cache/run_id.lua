-- Prepended to the scripts that check a rebuild's marker.
-- The run id of this Redis process: a restart changes it, even one that reloads its data
-- from disk (so an older `writes` count and the marker may be back). Empty where a
-- script cannot call INFO: fakeredis, in the embedded mode, lives and dies with its
-- process.
local function run_id()
  local info = redis.pcall('INFO', 'server')
  if type(info) ~= 'string' then return '' end
  return string.match(info, 'run_id:(%w+)') or ''
end
