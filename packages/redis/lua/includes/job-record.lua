-- Whether a job's record lets a transition be taken now: nil when it does, else why not —
-- 'missing' (no record), 'fenced' (`attempt` is not the attempt that holds the job) or
-- 'state' (the job is in a state the transition does not start from; it ended, say).
-- `from` is the transition's from-states as TypeScript passes them (`,queued,loading,`:
-- JOB_TRANSITIONS in packages/protocol/src/job-status.ts, the one place the rule is written).
-- Second result: the record's status; third: whether the record was adopted at a claim (see
-- job-claim-2.lua). One read (HMGET) whatever the answer.
local function refusal(record, from, attempt)
  local state = redis.call('HMGET', record, 'status', 'attempt', 'adopted')
  local status = state[1]
  if not status then return 'missing', '' end
  -- Fencing first: a writer whose attempt lost the job learns that, whatever became of it.
  if attempt ~= '' and state[2] ~= attempt then return 'fenced', status end
  if not string.find(from, ',' .. status .. ',', 1, true) then return 'state', status end
  return nil, status, state[3] == '1'
end

-- The reply of a refused transition: {0, reason, status}.
local function refused(reason, status)
  return {0, reason, status}
end

-- Sets record fields given as ARGV[first], ARGV[first + 1], … (field, value pairs), plus the status.
local function set_status_and_fields(record, status, first)
  if #ARGV >= first then
    redis.call('HSET', record, 'status', status, unpack(ARGV, first))
  else
    redis.call('HSET', record, 'status', status)
  end
end
