--[[
  Per model: depth, oldest submission, jobs in flight and drain rate; and, for the queue
  positions asked, the estimated wait by admission's own rule (includes/wait-estimate.lua),
  so position updates need no second copy of it in TypeScript.

  KEYS[1]   inflight              hash: scope -> jobs in flight
  KEYS[2..] per model, three each: waiting(model), since(model), drain(m:<model>)

  ARGV[1]   options, JSON:
              now, window, k (drain rate),
              models: one per key group, in order: { model, and for estimates:
                capacity (slots), load (ms, 0 when warm), positions (queue positions) }

  Returns   per model: { depth, oldest submission ms ('-1' when none waits), in flight,
            drain per second x 1000 (floored), and with positions: their estimates in ms
            as strings ('-1' without a rate) }
]]
--@include "drain-rate"
--@include "wait-estimate"
--@include "scopes"

local o = cjson.decode(ARGV[1])
local inflight = KEYS[1]
local now, window, k = o.now, o.window, o.k
local out = {}
for i, m in ipairs(o.models) do
  local base = 2 + (i - 1) * 3
  local waitKey, sinceKey, drainKey = KEYS[base], KEYS[base + 1], KEYS[base + 2]
  local oldest = redis.call('ZRANGE', sinceKey, 0, 0, 'WITHSCORES')
  local depth = redis.call('ZCARD', waitKey)
  local inFlight = redis.call('HGET', inflight, scope_model(m.model)) or '0'
  local r = rate(drainKey, now, window, k)
  local row = { depth, oldest[2] or '-1', inFlight, tostring(math.floor(r * 1000)) }
  if m.positions then
    local running = (tonumber(inFlight) or 0) - depth
    if running < 0 then running = 0 end
    local free = m.capacity - running
    if free < 0 then free = 0 end
    -- At the rate as this reply states it (per second, to 0.001): what position updates
    -- have always been estimated from. %.17g: the caller reads back the very number.
    local stated = math.floor(r * 1000) / 1000
    local estimates = {}
    for j, position in ipairs(m.positions) do estimates[j] = string.format('%.17g', wait_estimate(position, free, stated, m.load)) end
    row[5] = estimates
  end
  out[#out + 1] = row
end
return out
