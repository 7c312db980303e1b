--[[
  Admits one job: checks, in the order the API documents, queue depth, tenant in flight,
  tenant in flight on this model, fleet in flight and the deadline against the estimated
  wait; then reserves (the reservation entry, the waiting and submission sets, the deadline,
  the in-flight counters, the idempotency key) — atomically, so replicas admitting at once
  cannot overshoot a limit.

  Retry-After of a limit refusal is the time until enough work of that scope completes at its
  measured drain rate, then spread: each refusal in a scope takes the next free slot
  `1/rate` seconds after the previous one, so refused clients come back about as fast as the
  queue drains rather than all at once.

  The limits are read with one HMGET (each limit's field for this model or tenant and its
  fleet-wide default) and the four in-flight counters with another, which also gives their
  new values: one HSET writes them (HINCRBY, as before, only if a stored count is not a plain
  integer, so a corrupt counter still fails the same way). A scope that had nothing in
  flight gets its drain set's TTL removed (the rule is in includes/drain-sets.lua).

  KEYS[1]   jobs                  hash: job id -> reservation
  KEYS[2]   inflight              hash: scope -> jobs in flight
  KEYS[3]   limits                hash: limit field -> value
  KEYS[4]   retry slots           hash: scope -> next Retry-After slot (ms)
  KEYS[5]   waiting(model)        zset: queued job -> virtual start
  KEYS[6]   since(model)          zset: queued job -> submission time
  KEYS[7]   drain(m:<model>)      zset: completions of the model
  KEYS[8]   drain(t:<tenant>)     zset: completions of the tenant
  KEYS[9]   drain(g)              zset: completions fleet-wide
  KEYS[10]  last starts           hash: tenant|model|class -> virtual start of its newest job
  KEYS[11]  priority epochs       hash: model -> origin of its BullMQ priorities
  KEYS[12]  deadlines             zset: queued job -> deadline (ms)
  KEYS[13]  idempotency key       string: the job id it maps to (only read or written when
                                  options.idem; otherwise any key of the same slot, KEYS[1])

  ARGV[1]   options, JSON:
              now, id, model, tenant, class ('interactive' | 'batch'), deadline? (ms from now),
              detach ('1' | '0', stored as is), load (ms, 0 when warm), capacity (slots),
              limits: { depth, tenant, tenantModel, global }, each
                { field? (this model's or tenant's field), file? (the keys file's value),
                  default (the fleet-wide field), env (the configured value) },
              window, k (drain rate), batchOffset, fairStep, retryCap, retryFallback,
              epochMaxAge (ms), idem (bool), overwrite (bool: replace a stale key), idemTtl (s)

  Returns   {'dup', job id}                                          idempotency key seen
            {'refused', code, retry ms, depth, limit, current}       LAYOUT.refusal codes
            {'ok', priority, position, depth, estimated wait ms (-1 without one)}
]]
--@include "drain-rate"
--@include "wait-estimate"
--@include "reservation"
--@include "scopes"
--@include "drain-sets"

local o = cjson.decode(ARGV[1])
local jobs, inflight, limits, slots = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local waitKey, sinceKey = KEYS[5], KEYS[6]
local drainModel, drainTenant, drainGlobal = KEYS[7], KEYS[8], KEYS[9]
local lastKey, epochs, deadlines, idemKey = KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local now, id, model, tenant, class = o.now, o.id, o.model, o.tenant, o.class
local deadline = o.deadline
local window, k = o.window, o.k
local load, capacity = o.load, o.capacity
local cap, fallback = o.retryCap, o.retryFallback

if o.idem and not o.overwrite then
  local existing = redis.call('GET', idemKey)
  if existing then return {'dup', existing} end
end

-- Every limit field admission may need, in one read; absent fields are skipped.
local limitFields, limitValues = {}, {}
for _, l in ipairs({ o.limits.depth, o.limits.tenant, o.limits.tenantModel, o.limits.global }) do
  if l.field then limitFields[#limitFields + 1] = l.field end
  limitFields[#limitFields + 1] = l.default
end
local readLimits = redis.call('HMGET', limits, unpack(limitFields))
for i, field in ipairs(limitFields) do limitValues[field] = readLimits[i] end
-- This model's or tenant's value in Redis, else the keys file's, else the fleet-wide value
-- in Redis, else the configured one.
local function limit(l)
  local v = l.field and tonumber(limitValues[l.field] or '')
  if v then return v end
  v = tonumber(l.file)
  if v then return v end
  v = tonumber(limitValues[l.default] or '')
  if v then return v end
  return tonumber(l.env)
end
local function after(completions, r)
  if r <= 0 then return -1 end
  return completions * 1000 / r
end
local function spread(scope, need, r)
  local at = now + need
  local nextAt = tonumber(redis.call('HGET', slots, scope) or '0') or 0
  if nextAt > at then at = nextAt end
  if at > now + cap then at = now + cap end
  if r > 0 then redis.call('HSET', slots, scope, tostring(math.floor(at + 1000 / r))) end
  return at - now
end
local function refuse(code, retry, depth, lim, current)
  return {'refused', code, tostring(math.ceil(retry)), tostring(depth), tostring(lim), tostring(current)}
end

local mScope, tScope, tmScope = scope_model(model), scope_tenant(tenant), scope_tenant_model(tenant, model)
-- The in-flight counters, in the order they are counted up below.
local scopes = { S.global, tScope, tmScope, mScope }
local stored = redis.call('HMGET', inflight, unpack(scopes))
local counts = {}
for i = 1, #scopes do counts[i] = tonumber(stored[i] or '0') or 0 end
local g, tIn, tmIn, mIn = counts[1], counts[2], counts[3], counts[4]
local depth = redis.call('ZCARD', waitKey)
local running = mIn - depth
if running < 0 then running = 0 end
local free = capacity - running
if free < 0 then free = 0 end
local rModel = rate(drainModel, now, window, k)

local depthLimit = limit(o.limits.depth)
if depth >= depthLimit then
  local need = after(depth - depthLimit + 1, rModel)
  if need < 0 then need = fallback end
  return refuse(LAYOUT.refusal.queue_full, spread(mScope, need + load, rModel), depth, depthLimit, depth)
end

local tLimit = limit(o.limits.tenant)
local tmLimit = limit(o.limits.tenantModel)
if tIn >= tLimit or tmIn >= tmLimit then
  local rTenant = rate(drainTenant, now, window, k)
  local over, code, lim, current, scope = tIn - tLimit + 1, LAYOUT.refusal.tenant_limit, tLimit, tIn, tScope
  if tIn < tLimit then
    over, code, lim, current, scope = tmIn - tmLimit + 1, LAYOUT.refusal.tenant_model_limit, tmLimit, tmIn, tmScope
  end
  local need = after(over, rTenant)
  -- No completion of this tenant yet: its work is somewhere in the queue; the whole queue
  -- moving is a fair upper estimate of when one of its jobs ends.
  if need < 0 then need = after(depth + 1, rModel) end
  if need < 0 then need = fallback end
  return refuse(code, spread(scope, need, rTenant), depth, lim, current)
end

local gLimit = limit(o.limits.global)
if g >= gLimit then
  local rGlobal = rate(drainGlobal, now, window, k)
  local need = after(g - gLimit + 1, rGlobal)
  if need < 0 then need = fallback end
  return refuse(LAYOUT.refusal.global_limit, spread(S.global, need, rGlobal), depth, gLimit, g)
end

-- Virtual start time: arrival, plus the batch offset, plus one fair-share step per job
-- this tenant already has in flight on this model. Agents take the smallest first. Never
-- before the tenant's previous job of the same class on this model: when its in-flight
-- count drops, a new job must not overtake the tenant's own older ones.
local score = now + o.fairStep * tmIn
if class == 'batch' then score = score + o.batchOffset end
local lastField = tenant .. LAYOUT.sep .. model .. LAYOUT.sep .. class
local last = tonumber(redis.call('HGET', lastKey, lastField) or '')
if last and last >= score then score = last + 1 end
local epoch = tonumber(redis.call('HGET', epochs, model) or '')
if not epoch or (depth == 0 and now - epoch > o.epochMaxAge) then
  epoch = now
  redis.call('HSET', epochs, model, tostring(epoch))
end
local priority = 1 + math.floor((score - epoch) / 100)
if priority < 1 then priority = 1 end
if priority > 2097151 then priority = 2097151 end

local position = redis.call('ZCOUNT', waitKey, '-inf', score)
local est = wait_estimate(position, free, rModel, load)
if deadline and est >= 0 and est > deadline then
  local retry = est - deadline
  if retry < 1000 then retry = 1000 end
  return refuse(LAYOUT.refusal.deadline_unreachable, retry, depth, deadline, math.ceil(est))
end

local deadlineAt = ''
if deadline then deadlineAt = tostring(now + deadline) end
local entry = {}
entry[R.state] = LAYOUT.state.queued
entry[R.model] = model
entry[R.tenant] = tenant
entry[R.submitted] = tostring(now)
entry[R.detach] = o.detach
entry[R.deadline] = deadlineAt
entry[R.est] = tostring(math.floor(est))
entry[R.class] = class
entry[R.score] = tostring(score)
redis.call('HSET', jobs, id, join(entry, LAYOUT.reservationSize))
redis.call('HSET', lastKey, lastField, tostring(score))
redis.call('ZADD', waitKey, score, id)
redis.call('ZADD', sinceKey, now, id)
if deadline then redis.call('ZADD', deadlines, now + deadline, id) end
-- The counts just read, one up, in one HSET. A stored count HINCRBY would not take as is (not
-- a plain integer, or beyond a double's exact range) takes the four HINCRBYs instead, so it
-- fails the way it always did.
local function plain_count(v) return v == '0' or (#v <= 15 and string.match(v, '^-?[1-9]%d*$') ~= nil) end
local plain, counted = true, {}
for i, field in ipairs(scopes) do
  if stored[i] and not plain_count(stored[i]) then plain = false end
  counted[#counted + 1] = field
  counted[#counted + 1] = string.format('%d', counts[i] + 1)
end
if plain then
  redis.call('HSET', inflight, unpack(counted))
else
  for _, field in ipairs(scopes) do redis.call('HINCRBY', inflight, field, 1) end
end
if g <= 0 then drain_busy(drainGlobal) end
if tIn <= 0 then drain_busy(drainTenant) end
if mIn <= 0 then drain_busy(drainModel) end
if o.idem then redis.call('SET', idemKey, id, 'EX', o.idemTtl) end
return {'ok', tostring(priority), tostring(position), tostring(depth + 1), tostring(math.floor(est))}
