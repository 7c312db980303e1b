-- Reading and writing reservation entries: the fields of LAYOUT.reservation joined by
-- LAYOUT.sep (the layout is TypeScript's, src/ledger-layout.ts).
--@include "ts:ledger-layout"

local R = LAYOUT.reservation

-- Splits a joined value on LAYOUT.sep; empty parts stay (a reservation without a deadline).
local function split(s)
  local out, start = {}, 1
  while true do
    local i = string.find(s, LAYOUT.sep, start, true)
    if not i then out[#out + 1] = string.sub(s, start); return out end
    out[#out + 1] = string.sub(s, start, i - 1)
    start = i + 1
  end
end

local function join(fields, size)
  local parts = {}
  for i = 1, size do parts[i] = fields[i] end
  return table.concat(parts, LAYOUT.sep)
end
