--[[
  Transition `submit`: creates an admitted job's record (state `queued`) and its stream with
  the `queued` event, in one call. The API sends it together with BullMQ's add of the job,
  on the same connection and ahead of it, so no agent can claim the job before its record
  exists and its stream opens with `queued`. The event is not published: nobody can listen
  yet (the job id is new, and the API answers the submit after this ran), and a stream opened
  later reads it from the log.

  KEYS[1]   record                hash: the job's record (model, tenant, created_at, queue?, status, …)
  KEYS[2]   events                stream: the job's replay log, entry ids 0-<seq>

  ARGV[1]   options, JSON:
              fields {model, tenant, created_at, queue?} (strings), recordTtl (s: the job's
              retention), eventsTtl (s: an unfinished job's stream), max (entries kept,
              approximate)
  ARGV[2]   the `queued` event's JSON, `type` first

  Returns   {seq of the queued event, 'queued'}
]]
--@include "ts:event-envelope"
--@include "ts:job-lifecycle"
--@include "job-append"
--@include "job-record"

local o = cjson.decode(ARGV[1])
local record, events = KEYS[1], KEYS[2]
o.fields.status = LIFECYCLE.to.submit
set_fields(record, o.fields)
redis.call('EXPIRE', record, o.recordTtl)
local seq = append_event(events, nil, ARGV[2], o.max, true)
redis.call('EXPIRE', events, o.eventsTtl)
return {seq, LIFECYCLE.to.submit}
