-- Appends one event to a job's stream and publishes it live (unless `quiet`) on its shard
-- channel (SPUBLISH: under Redis Cluster the channel is in the job's slot, so the script may
-- publish it and only that shard's subscribers hear it); returns its seq.
-- The stream assigns seq: entry ids are `0-<seq>` and `XADD … 0-*` takes the next one (Redis
-- keeps a stream's last id through trimming), so seq keeps increasing when a job is retried
-- on another agent, with no counter key to write and expire. The entry stores the producer's
-- JSON as given; the published payload, and what EventLog reads back, open with `seq`
-- (ENVELOPE, from src/event-envelope.ts).
local function append_event(events, channel, body, maxLen, quiet)
  local id = redis.call('XADD', events, 'MAXLEN', '~', maxLen, '0-*', 'e', body)
  local seq = tonumber(string.sub(id, 3))
  if not quiet then redis.call('SPUBLISH', channel, ENVELOPE.open .. seq .. ',' .. string.sub(body, 2)) end
  return seq
end
