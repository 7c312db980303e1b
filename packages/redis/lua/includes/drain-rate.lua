-- Completions per second of one drain scope (its sorted set `key`, completion time per job)
-- over the sliding window: the newest `k` completions inside the window, divided by the time
-- from the oldest of them until now (at least a second). Counting only the newest `k` lets
-- the rate follow a burst within a few completions; dividing up to `now` lets it decay while
-- nothing completes.
local function rate(key, now, window, k)
  local e = redis.call('ZREVRANGEBYSCORE', key, '+inf', now - window, 'WITHSCORES', 'LIMIT', 0, k)
  local n = #e / 2
  if n == 0 then return 0 end
  local span = now - tonumber(e[#e])
  if span < 1000 then span = 1000 end
  return n * 1000 / span
end
