--[[
  Transitions that end a job, with its terminal event: `finish` (the agent's `done` or
  `error`), `dequeue` (the API removed a waiting job: cancelled or expired) and `abandon`
  (maintenance: BullMQ gave up on a job whose agents died). The first of them wins: the
  record then holds a terminal state, which no transition starts from. The stream's expiry
  is replaced by the shorter one of a finished job.

  KEYS[1]   record                hash: the job's record
  KEYS[2]   events                stream: the job's replay log

  ARGV[1]   options, JSON: transition ('finish' | 'dequeue' | 'abandon'), status (the
            terminal state: TypeScript picks it from the event, statusOfEnd), attempt? (the
            agent's), channel, max (entries kept), ttl (s: a finished job's stream), set?
            {field: value} (result or error, as JSON strings; the request of a dequeued job)
  ARGV[2]   the terminal event's JSON, `type` first

  Returns   {seq, status}, or refused: {0, 'missing' | 'state' | 'fenced', status}
]]
--@include "ts:event-envelope"
--@include "ts:job-lifecycle"
--@include "job-append"
--@include "job-record"

local o = cjson.decode(ARGV[1])
local record, events = KEYS[1], KEYS[2]
local why, status = refusal(record, o.transition, o.attempt)
if why then return refused(why, status) end
if not LIFECYCLE.terminal[o.status] then return redis.error_reply('job-finish: ' .. tostring(o.status) .. ' is not a terminal state') end
o.set = o.set or {}
o.set.status = o.status
set_fields(record, o.set)
local seq = append_event(events, o.channel, ARGV[2], o.max)
redis.call('EXPIRE', events, o.ttl)
return {seq, o.status}
