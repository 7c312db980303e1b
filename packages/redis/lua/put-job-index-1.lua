--[[
  Writes a job's routing record (job id -> model, tenant, ...) with its expiry in one call:
  the same atomicity as MULTI/HSET/EXPIRE/EXEC, a quarter of the commands on the submit path
  (bench:throughput, commands sent per job).

  KEYS[1]   job                   hash: the job's routing record

  ARGV[1]   ttl (s)
  ARGV[2..] field, value, ...

  Returns   1
]]
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
