-- The one estimate of how long (ms) a job at `position` of its model's queue waits before
-- it starts: the load time when a free slot takes it at once, else the load time plus the
-- completions needed until a slot frees for it at the model's drain rate. -1 when there is
-- no rate to go by. Admission checks deadlines against it and reports it; the ledger stats
-- answer it for position updates, so TypeScript never computes it again.
local function wait_estimate(position, free, rate, load)
  if position < free then return load end
  if rate <= 0 then return -1 end
  return load + (position - free + 1) * 1000 / rate
end
