--[[
  Queued -> running: the job leaves its model's waiting and submission sets and the deadline
  set (a job that started is not expired in the queue); its wait goes to the metrics samples,
  a cold start's load time to the model's load estimate (moving average). Nothing happens to
  a job without a queued reservation, so a repeated `started` changes nothing.

  Only a reservation with a deadline is in the deadline set (admission adds only those), so
  only such a job is removed from it; the samples list is trimmed only once RPUSH's reply says
  it grew past 10,000.

  KEYS[1]   jobs                  hash: job id -> reservation
  KEYS[2]   deadlines             zset: queued job -> deadline
  KEYS[3]   wait samples          list: LAYOUT.waitSample fields, newest last, 10,000 kept
  KEYS[4]   load times            hash: model -> measured load time (ms)

  Keys named by stored data: the reservation's model names its waiting and submission sets.
  Only Redis knows it when the call is made (an agent's `started` carries the job id), so
  the script builds them from the prefixes TypeScript gives — every one in KEYS[1]'s slot.

  ARGV[1]   options, JSON:
              id, now, cold (bool), load (ms, the cold start's), sample (bool: record the wait),
              waitPrefix, sincePrefix (keys waiting('') and since(''))

  Returns   1 when the job moved to running, else 0
]]
--@include "reservation"

local o = cjson.decode(ARGV[1])
local jobs, deadlines, samples, loadTimes = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, now = o.id, o.now
local e = redis.call('HGET', jobs, id)
if not e then return 0 end
local f = split(e)
if f[R.state] ~= LAYOUT.state.queued then return 0 end
f[R.state] = LAYOUT.state.running
local model = f[R.model]
redis.call('HSET', jobs, id, table.concat(f, LAYOUT.sep))
redis.call('ZREM', o.waitPrefix .. model, id)
redis.call('ZREM', o.sincePrefix .. model, id)
if f[R.deadline] ~= '' then redis.call('ZREM', deadlines, id) end
if o.sample then
  local sample = {}
  sample[LAYOUT.waitSample.model] = model
  sample[LAYOUT.waitSample.estimated] = f[R.est]
  sample[LAYOUT.waitSample.actual] = tostring(now - tonumber(f[R.submitted]))
  if redis.call('RPUSH', samples, table.concat(sample, LAYOUT.sep)) > 10000 then redis.call('LTRIM', samples, -10000, -1) end
end
local l = tonumber(o.load)
if o.cold and l and l > 0 then
  local old = tonumber(redis.call('HGET', loadTimes, model) or '')
  if old then l = old * 0.7 + l * 0.3 end
  redis.call('HSET', loadTimes, model, tostring(math.floor(l)))
end
return 1
