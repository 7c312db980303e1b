--[[
  Transition `claim`: an agent took the job from its queue. The record moves to `loading` and
  names the agent and the attempt (BullMQ's lock token for this run), so from here on only
  events from this attempt are written (see job-event-2.lua); a retry after a lost agent
  also appends the `restarted` event. Refused when the job already ended (a client's cancel,
  or maintenance gave up on it): the agent then drops the job without running it. A job with
  no record (put in its queue by something other than this version's API: an older API
  during a rolling upgrade, or an operator by hand) is adopted: its record is created from
  the job's data, so its life is recorded like any other.

  KEYS[1]   record                hash: the job's record
  KEYS[2]   events                stream: the job's replay log

  ARGV[1]   options, JSON: attempt, agent, channel, max (entries kept), adopt {fields
            {model, tenant, created_at} (strings), recordTtl, eventsTtl (s)}
  ARGV[2]   the `restarted` event's JSON, or '' on a first attempt

  Returns   {seq of `restarted`, or 1 without one; 'loading'; 'adopted' when the record was
            created}, or refused: {0, 'state', status}
]]
--@include "ts:event-envelope"
--@include "ts:job-lifecycle"
--@include "job-append"
--@include "job-record"

local o = cjson.decode(ARGV[1])
local record, events = KEYS[1], KEYS[2]
local why, status = refusal(record, 'claim', nil)
local adopted = why == 'missing'
if adopted then
  set_fields(record, o.adopt.fields)
  redis.call('HSET', record, 'adopted', '1')
elseif why then
  return refused(why, status)
end
redis.call('HSET', record, 'status', LIFECYCLE.to.claim, 'attempt', o.attempt, 'agent', o.agent)
local seq = 1
if ARGV[2] ~= '' then seq = append_event(events, o.channel, ARGV[2], o.max) end
if adopted then
  redis.call('EXPIRE', record, o.adopt.recordTtl)
  -- Without a `queued` the stream may not exist yet: `start` gives it its expiry then (the
  -- record's `adopted` field tells it; see job-event-2.lua).
  redis.call('EXPIRE', events, o.adopt.eventsTtl)
  return {seq, LIFECYCLE.to.claim, 'adopted'}
end
return {seq, LIFECYCLE.to.claim}
