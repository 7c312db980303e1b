--[[
  Sets (or, with an empty record, deletes) one API key record if the registry is still at the
  version the caller decided on, and bumps the version. Decisions that look at several
  records (the last admin key) then hold for the state they were made on.

  KEYS[1]   records               hash: key id -> record (JSON)
  KEYS[2]   version               string counter: bumped by every change of the records

  ARGV[1]   version the caller read ('' before the first change)
  ARGV[2]   key id
  ARGV[3]   record (JSON), or '' to delete

  Returns   the new version (string), or nil when another change came first
]]
local current = redis.call('GET', KEYS[2]) or ''
if current ~= ARGV[1] then return false end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
return tostring(redis.call('INCR', KEYS[2]))
