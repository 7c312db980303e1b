--[[
  Appends one event to a job's replay log and publishes it live, in one round trip. `seq` is
  assigned here (INCR), so it keeps increasing when a job is retried on another agent; the
  stream entry id is `0-<seq>`, so a reader resumes with an exclusive XRANGE from
  Last-Event-ID. The payload is the producer's JSON with `seq` put first (ENVELOPE, from
  src/event-log.ts, which also reads it back).

  KEYS[1]   seq                   string: last seq assigned to the job's events
  KEYS[2]   events                stream: the job's replay log

  ARGV[1]   channel (the job's live pub/sub channel; a channel, not a key)
  ARGV[2]   body: the event's JSON object, `type` first
  ARGV[3]   most entries kept (approximate trim)
  ARGV[4]   ttl (s): set by the first event, replaced by the terminal one's
  ARGV[5]   condition: '0' none, '1' only if the job has no event yet, '2' only while its
            newest event is a queued one
  ARGV[6]   terminal: '1' for done or error

  Returns   the event's seq, or 0 when the condition kept it out
]]
--@include "ts:event-envelope"

if ARGV[5] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[5] == '2' then
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if #last == 0 or not string.find(last[1][2][2], ENVELOPE.queuedPattern) then return 0 end
end
local seq = redis.call('INCR', KEYS[1])
local payload = ENVELOPE.open .. seq .. ',' .. string.sub(ARGV[2], 2)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '0-' .. seq, 'e', payload)
redis.call('PUBLISH', ARGV[1], payload)
-- The live TTL is set by the first event and replaced by the shorter one at the end;
-- refreshing it on every token cost two commands per event for nothing (bench:throughput).
if seq == 1 or ARGV[6] == '1' then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return seq
