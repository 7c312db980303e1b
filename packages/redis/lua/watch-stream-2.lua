--[[
  Marks a job's native event stream as seen open now, if the job is still in flight (the
  disconnect grace in the API's maintenance counts from the last mark).

  KEYS[1]   jobs                  hash: job id -> reservation
  KEYS[2]   watched               zset: job -> last time its stream was seen open (ms)

  ARGV[1]   job id
  ARGV[2]   now (ms)

  Returns   1 when marked, 0 when the job has no reservation
]]
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
