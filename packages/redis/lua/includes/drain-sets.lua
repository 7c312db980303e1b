-- Upkeep of the drain sets (drain(<scope>): job id -> completion time), shared by admission
-- and release. Only includes/drain-rate.lua reads them, and it sees only the newest k
-- completions inside the window; the upkeep keeps every completion such a read can see (for
-- a window up to DRAIN.ttl and k up to DRAIN.keep) and otherwise only bounds memory, so it is
-- done without a command per job and per set wherever a rule below allows it.
--
-- Expiry: a set has no TTL while its scope (`g`, `t:<tenant>`, `m:<model>`: the in-flight
-- counter of the same name) has work in flight, and expires DRAIN.ttl after that counter drops
-- to zero. Admission PERSISTs the set of a scope whose counter was zero, release PEXPIREs it
-- when the counter reaches zero. A completion is written while its own job is still counted,
-- so no set expires while it can gain a completion, and none expires before DRAIN.ttl after
-- its newest one (when a TTL on every write would have expired it): rates read the same. Each
-- trim (below) also repairs the rule for sets whose counter disagrees with their TTL (counters
-- rebuilt by reconciliation; sets last written by a version that set a TTL on every write).
--
-- Size: a set keeps the DRAIN.keep newest completions and those of the last DRAIN.ttl, trimmed
-- when the release's outcome counter (`<outcome>|<model>`) reaches a multiple of
-- DRAIN.trimEvery. A model's set is written only by releases counted in its own model's
-- counters, at most DRAIN.drainOutcomes of which add completions, so it never holds more than
-- keep + drainOutcomes * (trimEvery - 1) members (2000 + 4 * 31). A tenant's and the fleet's
-- sets are written by releases on any model, so those counters bound nothing there: their
-- rank trim stays on every write (keep, exactly); the age trim waits for a multiple.
local DRAIN = { ttl = 3600000, keep = 2000, trimEvery = 32, drainOutcomes = 4 }

-- Admission: the scope had nothing in flight, so its set may carry a TTL; it has work now.
local function drain_busy(key) redis.call('PERSIST', key) end

-- Release: the scope has nothing in flight any more.
local function drain_idle(key) redis.call('PEXPIRE', key, DRAIN.ttl) end

local function drain_trim_age(key, now) redis.call('ZREMRANGEBYSCORE', key, '-inf', now - DRAIN.ttl) end
local function drain_trim_rank(key) redis.call('ZREMRANGEBYRANK', key, 0, -(DRAIN.keep + 1)) end
