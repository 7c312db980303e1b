--[[
  Ends a reservation once (the entry is deleted): the in-flight counts go down, the job leaves
  every set, its outcome is counted, and a job that ran adds a completion to the drain rates
  of its model, its tenant and the fleet. A job cancelled or expired while queued freed no
  GPU slot, so it does not count as drain.

  KEYS[1]   jobs                  hash: job id -> reservation
  KEYS[2]   deadlines             zset: queued job -> deadline
  KEYS[3]   watched               zset: job -> last time its native stream was seen open
  KEYS[4]   inflight              hash: scope -> jobs in flight
  KEYS[5]   outcomes              hash: <outcome>|<model> -> jobs finished that way
  KEYS[6]   drain(g)              zset: completions fleet-wide

  Keys named by stored data: the reservation's model and tenant name its waiting and
  submission sets and its model's and tenant's drain sets; the script builds them from the
  prefixes TypeScript gives (see start-reservation-4.lua for why) — all in KEYS[1]'s slot.

  ARGV[1]   options, JSON:
              id, now, kind ('done' | 'error' | 'reconciled' | 'aborted'),
              outcome (the name counted; TypeScript maps an error code to it),
              waitPrefix, sincePrefix, drainModelPrefix, drainTenantPrefix
              (keys waiting(''), since(''), drain('m:'), drain('t:'))

  Returns   1 when a reservation ended, 0 when there was none
]]
--@include "reservation"
--@include "scopes"
--@include "decr-field"

local o = cjson.decode(ARGV[1])
local jobs, deadlines, watched, inflight, outcomes, drainGlobal = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, now, kind = o.id, o.now, o.kind
local e = redis.call('HGET', jobs, id)
if not e then return 0 end
local f = split(e)
local model, tenant = f[R.model], f[R.tenant]
redis.call('HDEL', jobs, id)
redis.call('ZREM', o.waitPrefix .. model, id)
redis.call('ZREM', o.sincePrefix .. model, id)
redis.call('ZREM', deadlines, id)
redis.call('ZREM', watched, id)
decr(inflight, S.global)
decr(inflight, scope_tenant(tenant))
decr(inflight, scope_tenant_model(tenant, model))
decr(inflight, scope_model(model))
redis.call('HINCRBY', outcomes, o.outcome .. LAYOUT.sep .. model, 1)
if kind == 'done' or (kind == 'error' and f[R.state] == LAYOUT.state.running) then
  for _, key in ipairs({o.drainModelPrefix .. model, o.drainTenantPrefix .. tenant, drainGlobal}) do
    redis.call('ZADD', key, now, id)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 3600000)
    redis.call('ZREMRANGEBYRANK', key, 0, -2001)
    redis.call('PEXPIRE', key, 3600000)
  end
end
return 1
