-- Whether a job's record lets `transition` be taken now (LIFECYCLE, generated from
-- packages/protocol/src/job-status.ts): nil when it does, else why not — 'missing' (no
-- record), 'fenced' (`attempt` is not the attempt that holds the job) or 'state' (the job
-- is in a state the transition does not start from; it ended, say). Second result: the
-- record's status; third: whether the record was adopted at a claim (see job-claim-2.lua).
-- One read (HMGET) whatever the answer.
local function refusal(record, transition, attempt)
  local state = redis.call('HMGET', record, 'status', 'attempt', 'adopted')
  local status = state[1]
  if not status then return 'missing', '' end
  -- Fencing first: a writer whose attempt lost the job learns that, whatever became of it.
  if attempt and state[2] ~= attempt then return 'fenced', status end
  if not LIFECYCLE.from[transition][status] then return 'state', status end
  return nil, status, state[3] == '1'
end

-- The reply of a refused transition: {0, reason, status}.
local function refused(reason, status)
  return {0, reason, status}
end

-- Sets the record's fields from a table (field -> string value).
local function set_fields(record, fields)
  if not fields then return end
  local flat = {}
  for field, value in pairs(fields) do
    flat[#flat + 1] = field
    flat[#flat + 1] = value
  end
  if #flat > 0 then redis.call('HSET', record, unpack(flat)) end
end
