--[[
  Transitions that keep the job's life going: `position` (the API's `queued` update, only
  while the job waits), `start` (the agent's `started`: loading -> running), `stream`
  (tokens) and `requeue` (the agent or the API's failover put the job back in its queue; no
  event: the next claim writes `restarted`). An agent's write carries its attempt: one from an
  attempt that no longer holds the job (an agent that was paused past its heartbeat while
  the job ran elsewhere) is refused, and the agent aborts its backend request. Positional
  arguments, not a JSON options argument: this runs for every token event, and decoding
  options measured as a share of its cost (bench:throughput).

  KEYS[1]   record                hash: the job's record
  KEYS[2]   events                stream: the job's replay log

  ARGV[1]   from-states of the transition, ',a,b,' (from TypeScript's JOB_TRANSITIONS)
  ARGV[2]   status it leaves the job in
  ARGV[3]   attempt: the writer's lock token; '' for the API's writes (not fenced)
  ARGV[4]   the job's live shard channel (SPUBLISH), in the job's slot
  ARGV[5]   most entries kept in the stream (approximate trim)
  ARGV[6]   ttl (s) of an unfinished job's stream, given by `start`: set when the record was
            adopted at its claim (its stream may begin with this event); '' otherwise
  ARGV[7]   the event's JSON, `type` first; '' for none

  Returns   {seq (1 without an event), status}, or refused: {0, 'missing' | 'state' | 'fenced', status}
]]
--@include "ts:event-envelope"
--@include "job-append"
--@include "job-record"

local record, events = KEYS[1], KEYS[2]
local why, status, adopted = refusal(record, ARGV[1], ARGV[3])
if why then return refused(why, status) end
if ARGV[2] ~= status then redis.call('HSET', record, 'status', ARGV[2]) end
local seq = 1
if ARGV[7] ~= '' then seq = append_event(events, ARGV[4], ARGV[7], ARGV[5]) end
if adopted and ARGV[6] ~= '' then redis.call('EXPIRE', events, ARGV[6]) end
return {seq, ARGV[2]}
