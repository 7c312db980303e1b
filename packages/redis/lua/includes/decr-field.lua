-- Counts a hash field down and drops it at zero, so an idle tenant or model leaves no field behind.
local function decr(hash, field)
  local v = redis.call('HINCRBY', hash, field, -1)
  if v <= 0 then redis.call('HDEL', hash, field) end
end
