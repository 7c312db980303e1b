--[[
  Transition `submit`: creates an admitted job's record and its stream with the `queued`
  event, in one call. The API sends it together with BullMQ's add of the job, on the same
  connection and ahead of it, so no agent can claim the job before its record exists and its
  stream opens with `queued`. The event is not published: nobody can listen yet (the job id
  is new, and the API answers the submit after this ran), and a stream opened later reads it
  from the log.

  KEYS[1]   record                hash: the job's record (model, tenant, created_at, queue?, status, …)
  KEYS[2]   events                stream: the job's replay log, entry ids 0-<seq>

  ARGV[1]   status: the transition's `to` ('queued')
  ARGV[2]   record ttl (s): the job's retention
  ARGV[3]   events ttl (s): an unfinished job's stream
  ARGV[4]   most entries kept in the stream (approximate trim)
  ARGV[5]   the `queued` event's JSON, `type` first
  ARGV[6..] record fields: model, <model>, tenant, <tenant>, created_at, <ms>[, queue, <key>]

  Returns   {seq of the queued event, status}
]]
--@include "ts:event-envelope"
--@include "job-append"
--@include "job-record"

local record, events = KEYS[1], KEYS[2]
set_status_and_fields(record, ARGV[1], 6)
redis.call('EXPIRE', record, ARGV[2])
local seq = append_event(events, nil, ARGV[5], ARGV[4], true)
redis.call('EXPIRE', events, ARGV[3])
return {seq, ARGV[1]}
