--[[
  Sets fields of a job's routing record that still exists: one whose TTL ran out is not
  recreated without one.

  KEYS[1]   job                   hash: the job's routing record

  ARGV[1..] field, value, ...

  Returns   1 when the record exists (and was updated), else 0
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
