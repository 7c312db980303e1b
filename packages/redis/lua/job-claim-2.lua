--[[
  Transition `claim`: an agent took the job from its queue. The record moves to `loading` and
  names the agent and the attempt (BullMQ's lock token for this run), so from here on only
  events from this attempt are written (see job-event-2.lua); a retry after a lost agent or
  backend also appends `restarted` (the text so far is void) or, when it continues the text
  already streamed, `resumed {attempt, after_seq}` with the stream's last seq, taken here,
  atomically with the fencing: nothing the old attempt writes can land after it. Refused when the job already ended (a client's cancel,
  or maintenance gave up on it): the agent then drops the job without running it. A job with
  no record (put in its queue by something other than this version's API: an older API
  during a rolling upgrade, or an operator by hand) is adopted: its record is created from
  the job's data, so its life is recorded like any other.

  KEYS[1]   record                hash: the job's record
  KEYS[2]   events                stream: the job's replay log

  ARGV[1]   from-states of the transition, ',a,b,' (from TypeScript's JOB_TRANSITIONS)
  ARGV[2]   status it leaves the job in ('loading')
  ARGV[3]   attempt: the claim's lock token
  ARGV[4]   agent id
  ARGV[5]   the job's live shard channel (SPUBLISH), in the job's slot
  ARGV[6]   most entries kept in the stream (approximate trim)
  ARGV[7]   the `restarted` event's JSON, or '' on a first attempt
  ARGV[8]   adoption, JSON (read only when there is no record): fields {model, tenant,
            created_at} (strings), recordTtl, eventsTtl (s)
  ARGV[9]   the attempt number when this claim continues the streamed text (writes `resumed`
            instead of ARGV[7]); '' otherwise

  Returns   {seq of `restarted`/`resumed`, or 1 without one; status; 'adopted' when the record
            was created, else ''; after_seq of a `resumed`, else 0}, or refused: {0, 'state', status}
]]
--@include "ts:event-envelope"
--@include "job-append"
--@include "job-record"

local record, events = KEYS[1], KEYS[2]
local why, status = refusal(record, ARGV[1], '')
local adopted = why == 'missing'
if why and not adopted then return refused(why, status) end
redis.call('HSET', record, 'status', ARGV[2], 'attempt', ARGV[3], 'agent', ARGV[4])
local seq, after = 1, 0
if ARGV[9] ~= '' then
  local last = redis.call('XREVRANGE', events, '+', '-', 'COUNT', 1)
  if last[1] then after = tonumber(string.sub(last[1][1], 3)) or 0 end
  seq = append_event(events, ARGV[5], '{"type":"resumed","attempt":' .. ARGV[9] .. ',"after_seq":' .. after .. '}', ARGV[6])
elseif ARGV[7] ~= '' then
  seq = append_event(events, ARGV[5], ARGV[7], ARGV[6])
end
if adopted then
  local adopt = cjson.decode(ARGV[8])
  local f = adopt.fields
  redis.call('HSET', record, 'model', f.model, 'tenant', f.tenant, 'created_at', f.created_at, 'adopted', '1')
  redis.call('EXPIRE', record, adopt.recordTtl)
  -- Without a `queued` the stream may not exist yet: `start` gives it its expiry then (the
  -- record's `adopted` field tells it; see job-event-2.lua).
  redis.call('EXPIRE', events, adopt.eventsTtl)
  return {seq, ARGV[2], 'adopted', after}
end
return {seq, ARGV[2], '', after}
