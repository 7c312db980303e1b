--[[
  Deletes a key only while it still holds the given value: a holder giving up a lock or a
  lease it may have lost (expired and taken by someone else) must not delete the new one.

  KEYS[1]   key                   string: a lock or lease, value = its holder

  ARGV[1]   the value it must still hold

  Returns   1 when deleted, else 0
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
