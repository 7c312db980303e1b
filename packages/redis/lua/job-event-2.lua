--[[
  Transitions that keep the job's life going: `position` (the API's `queued` update, only
  while the job waits), `start` (the agent's `started`: loading -> running), `stream`
  (tokens) and `requeue` (the agent handed the job back to its queue; no event: the next
  claim writes `restarted`). An agent's event carries its attempt: one from an attempt
  that no longer holds the job (an agent that was paused past its heartbeat while the job
  ran elsewhere) is refused, and the agent aborts its backend request.

  KEYS[1]   record                hash: the job's record
  KEYS[2]   events                stream: the job's replay log

  ARGV[1]   options, JSON: transition ('position' | 'start' | 'stream' | 'requeue'), attempt? (the
            writer's; absent for the API's writes), channel, max (entries kept), set?
            {field: value} (more record fields), ttl? (s: the expiry an unfinished job's
            stream gets from `start` when that may have created it: a job adopted at its claim)
  ARGV[2]   the event's JSON, `type` first; '' for none

  Returns   {seq (1 without an event), status}, or refused: {0, 'missing' | 'state' | 'fenced', status}
]]
--@include "ts:event-envelope"
--@include "ts:job-lifecycle"
--@include "job-append"
--@include "job-record"

local o = cjson.decode(ARGV[1])
local record, events = KEYS[1], KEYS[2]
local transition = o.transition
local why, status, adopted = refusal(record, transition, o.attempt)
if why then return refused(why, status) end
local to = LIFECYCLE.to[transition]
if to ~= status then
  o.set = o.set or {}
  o.set.status = to
end
set_fields(record, o.set)
local seq = 1
if ARGV[2] ~= '' then seq = append_event(events, o.channel, ARGV[2], o.max) end
if adopted and o.ttl and transition == 'start' then redis.call('EXPIRE', events, o.ttl) end
return {seq, to}
