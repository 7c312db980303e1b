--[[
  Transitions that end a job, with its terminal event: `finish` (the agent's `done` or
  `error`), `dequeue` (the API removed a waiting job: cancelled or expired) and `abandon`
  (maintenance: BullMQ gave up on a job whose agents died). The first of them wins: the
  record then holds a terminal state, which no transition starts from. The stream's expiry
  is replaced by the shorter one of a finished job.

  KEYS[1]   record                hash: the job's record
  KEYS[2]   events                stream: the job's replay log

  ARGV[1]   from-states of the transition, ',a,b,' (from TypeScript's JOB_TRANSITIONS)
  ARGV[2]   the terminal state (TypeScript picks it from the event: statusOfEnd)
  ARGV[3]   attempt: the agent's lock token; '' for the API's writes (not fenced)
  ARGV[4]   the job's live shard channel (SPUBLISH), in the job's slot
  ARGV[5]   most entries kept in the stream (approximate trim)
  ARGV[6]   ttl (s) of a finished job's stream
  ARGV[7]   the terminal event's JSON, `type` first
  ARGV[8..] record fields to set with the status: result or error (JSON), a dequeued job's request

  Returns   {seq, status}, or refused: {0, 'missing' | 'state' | 'fenced', status}
]]
--@include "ts:event-envelope"
--@include "job-append"
--@include "job-record"

local record, events = KEYS[1], KEYS[2]
local why, status = refusal(record, ARGV[1], ARGV[3])
if why then return refused(why, status) end
set_status_and_fields(record, ARGV[2], 8)
local seq = append_event(events, ARGV[4], ARGV[7], ARGV[5])
redis.call('EXPIRE', events, ARGV[6])
return {seq, ARGV[2]}
