--[[
  Rebuilds the in-flight counters from the reservations themselves and drops members of the
  given models' waiting (and submission) sets that have no queued reservation. Reconciliation
  runs it; what it corrects is drift, which should stay 0.

  KEYS[1]   jobs                  hash: job id -> reservation
  KEYS[2]   inflight              hash: scope -> jobs in flight
  KEYS[3..] per model, two each:  waiting(model), since(model)

  ARGV      none

  Returns   how many counters or set members were wrong
]]
--@include "reservation"
--@include "scopes"

local jobs, inflight = KEYS[1], KEYS[2]
local all = redis.call('HGETALL', jobs)
local want = {}
local function inc(field) want[field] = (want[field] or 0) + 1 end
for i = 1, #all, 2 do
  local f = split(all[i + 1])
  local model, tenant = f[R.model], f[R.tenant]
  inc(S.global); inc(scope_tenant(tenant)); inc(scope_tenant_model(tenant, model)); inc(scope_model(model))
end
local have = redis.call('HGETALL', inflight)
local drift = 0
local seen = {}
for i = 1, #have, 2 do
  seen[have[i]] = true
  if tonumber(have[i + 1]) ~= want[have[i]] then drift = drift + 1 end
end
for field, _ in pairs(want) do if not seen[field] then drift = drift + 1 end end
if drift > 0 then
  redis.call('DEL', inflight)
  for field, v in pairs(want) do redis.call('HSET', inflight, field, v) end
end
for i = 3, #KEYS, 2 do
  local waitKey, sinceKey = KEYS[i], KEYS[i + 1]
  for _, jid in ipairs(redis.call('ZRANGE', waitKey, 0, -1)) do
    local e = redis.call('HGET', jobs, jid)
    if not e or split(e)[R.state] ~= LAYOUT.state.queued then
      redis.call('ZREM', waitKey, jid)
      redis.call('ZREM', sinceKey, jid)
      drift = drift + 1
    end
  end
end
return drift
