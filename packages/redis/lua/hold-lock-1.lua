--[[
  Takes a lock if it is free, or renews it if it is ours; one round trip either way.

  KEYS[1]   lock                  string with expiry: the holder's id

  ARGV[1]   holder id
  ARGV[2]   ttl (ms)

  Returns   1 when held by this holder now, else 0
]]
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
