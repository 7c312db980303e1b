--[[
  Ends a reservation once (the entry is deleted): the in-flight counts go down, the job leaves
  every set, its outcome is counted, and a job that ran adds a completion to the drain rates
  of its model, its tenant and the fleet. A job cancelled or expired while queued freed no
  GPU slot, so it does not count as drain.

  A job that ran left the waiting, submission and deadline sets when it started (start-
  reservation-4.lua), so only a queued one is removed from them here, and from the deadline
  set only if it has a deadline (admission adds only those). The drain sets' upkeep (expiry
  when a scope's count reaches zero, trims at every DRAIN.trimEvery-th outcome) and the bound
  it keeps are in includes/drain-sets.lua.

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
--@include "drain-sets"

local o = cjson.decode(ARGV[1])
local jobs, deadlines, watched, inflight, outcomes, drainGlobal = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, now, kind = o.id, o.now, o.kind
local e = redis.call('HGET', jobs, id)
if not e then return 0 end
local f = split(e)
local model, tenant = f[R.model], f[R.tenant]
local ran = f[R.state] == LAYOUT.state.running
redis.call('HDEL', jobs, id)
if not ran then
  redis.call('ZREM', o.waitPrefix .. model, id)
  redis.call('ZREM', o.sincePrefix .. model, id)
  if f[R.deadline] ~= '' then redis.call('ZREM', deadlines, id) end
end
redis.call('ZREM', watched, id)
local left = decr(inflight, { S.global, scope_tenant(tenant), scope_tenant_model(tenant, model), scope_model(model) })
local counted = redis.call('HINCRBY', outcomes, o.outcome .. LAYOUT.sep .. model, 1)

-- The drain sets with what is left in flight in their scope.
local sets = {
  { key = o.drainModelPrefix .. model, left = left[4], model = true },
  { key = o.drainTenantPrefix .. tenant, left = left[2] },
  { key = drainGlobal, left = left[1] },
}
if kind == 'done' or (kind == 'error' and ran) then
  for _, set in ipairs(sets) do
    redis.call('ZADD', set.key, now, id)
    if not set.model then drain_trim_rank(set.key) end
  end
end
local trim = counted % DRAIN.trimEvery == 0
for _, set in ipairs(sets) do
  if trim then
    drain_trim_age(set.key, now)
    if set.model then drain_trim_rank(set.key) end
  end
  if set.left <= 0 then
    drain_idle(set.key)
  elseif trim then
    drain_busy(set.key)
  end
end
return 1
