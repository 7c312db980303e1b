-- Counts hash fields down by one each and drops those at zero (one HDEL for all of them), so
-- an idle tenant or model leaves no field behind. Returns the new values, in `fields` order.
local function decr(hash, fields)
  local left, gone = {}, {}
  for i, field in ipairs(fields) do
    left[i] = redis.call('HINCRBY', hash, field, -1)
    if left[i] <= 0 then gone[#gone + 1] = field end
  end
  if #gone > 0 then redis.call('HDEL', hash, unpack(gone)) end
  return left
end
