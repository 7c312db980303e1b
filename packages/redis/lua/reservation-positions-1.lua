--[[
  Where each job stands: its reservation's state, model, tenant and detach flag, and its rank
  in its model's waiting set while queued.

  KEYS[1]   jobs                  hash: job id -> reservation

  Keys named by stored data: each reservation's model names the waiting set it ranks in;
  the script builds it from the prefix TypeScript gives (see start-reservation-4.lua for
  why) — in KEYS[1]'s slot.

  ARGV[1]   waitPrefix (key waiting(''))
  ARGV[2..] job ids

  Returns   per job: {''} without a reservation, else { state, model, tenant, detach,
            rank (-1 once started) }
]]
--@include "reservation"

local jobs, waitPrefix = KEYS[1], ARGV[1]
local out = {}
for i = 2, #ARGV do
  local e = redis.call('HGET', jobs, ARGV[i])
  if not e then
    out[#out + 1] = {''}
  else
    local f = split(e)
    local rank = -1
    if f[R.state] == LAYOUT.state.queued then rank = redis.call('ZRANK', waitPrefix .. f[R.model], ARGV[i]) or -1 end
    out[#out + 1] = {f[R.state], f[R.model], f[R.tenant], f[R.detach], rank}
  end
end
return out
