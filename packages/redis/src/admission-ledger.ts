import type { Redis } from 'ioredis';
import type { AdmissionKeys, RedisKeys } from '@switchyard/protocol';

/**
 * The admission ledger: what is in flight, per tenant, per model and fleet-wide, and how
 * fast each model drains, kept in Redis so that every API replica admits against the same
 * numbers.
 *
 * Admission is one Lua script: it reads the limits, checks queue depth, tenant in-flight,
 * tenant-per-model in-flight and the global limit, estimates the wait for a deadline, and
 * reserves — all in one round trip and atomically, so several replicas admitting at once
 * cannot overshoot a limit. Every key carries the `{adm}` hash tag (one slot under Redis
 * Cluster); per-model and per-tenant key names are derived inside the scripts from
 * `AdmissionKeys.base`, the same way `redisKeys().admission` derives them.
 *
 * Reservations end through the event log: an agent's `started` event moves a job from
 * queued to running and its `done`/`error` event releases it (see `EventLog.append`), so
 * the API needs no listener per job. A job that ends without a terminal event (an agent
 * died twice, an API died between reserve and enqueue) is released by the periodic
 * reconciliation in the API.
 */

/** Splits a reservation entry `state|model|tenant|submitted|detach|deadline|est|class|score`. */
const LUA_COMMON = `
local function split(s)
  local out, start = {}, 1
  while true do
    local i = string.find(s, '|', start, true)
    if not i then out[#out + 1] = string.sub(s, start); return out end
    out[#out + 1] = string.sub(s, start, i - 1)
    start = i + 1
  end
end
local function decr(hash, field)
  local v = redis.call('HINCRBY', hash, field, -1)
  if v <= 0 then redis.call('HDEL', hash, field) end
end
`;

/**
 * Completions per second of one drain scope over the sliding window: the newest `k`
 * completions inside the window, divided by the time from the oldest of them until now
 * (at least a second). Counting only the newest `k` lets the rate follow a burst within
 * a few completions; dividing up to `now` lets it decay while nothing completes.
 */
const LUA_RATE = `
local function rate(base, scope, now, window, k)
  local e = redis.call('ZREVRANGEBYSCORE', base .. 'drain:' .. scope, '+inf', now - window, 'WITHSCORES', 'LIMIT', 0, k)
  local n = #e / 2
  if n == 0 then return 0 end
  local span = now - tonumber(e[#e])
  if span < 1000 then span = 1000 end
  return n * 1000 / span
end
`;

/**
 * KEYS[1] jobs hash. ARGV: see `admit()`. Checks in the order the API documents: queue
 * depth, tenant in-flight, tenant in-flight for this model, global in-flight, deadline.
 *
 * Retry-After of a limit refusal is the time until enough work of that scope completes at
 * its measured drain rate, then spread: each refusal in a scope takes the next free slot
 * `1/rate` seconds after the previous one, so refused clients come back about as fast as
 * the queue drains rather than all at once.
 */
const ADMIT_LUA = `${LUA_COMMON}${LUA_RATE}
local base = ARGV[1]
local now = tonumber(ARGV[2])
local id, model, tenant, class = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local deadline = tonumber(ARGV[7])
local jobs = KEYS[1]
local inflight = base .. 'inflight'
local limits = base .. 'limits'
local waitKey = base .. 'wait:' .. model
local window, k = tonumber(ARGV[14]), tonumber(ARGV[15])
local load, capacity = tonumber(ARGV[18]), tonumber(ARGV[19])
local idemKey = ARGV[20]
local cap, fallback = tonumber(ARGV[24]), tonumber(ARGV[25])

if idemKey ~= '' and ARGV[22] ~= '1' then
  local existing = redis.call('GET', idemKey)
  if existing then return {'dup', existing} end
end

local function count(field) return tonumber(redis.call('HGET', inflight, field) or '0') or 0 end
local function limit(specific, fromFile, default, fromEnv)
  local v = specific and tonumber(redis.call('HGET', limits, specific) or '')
  if v then return v end
  v = tonumber(fromFile)
  if v then return v end
  v = tonumber(redis.call('HGET', limits, default) or '')
  if v then return v end
  return tonumber(fromEnv)
end
local function after(completions, r)
  if r <= 0 then return -1 end
  return completions * 1000 / r
end
local function spread(scope, need, r)
  local slots = base .. 'retry'
  local at = now + need
  local nextAt = tonumber(redis.call('HGET', slots, scope) or '0') or 0
  if nextAt > at then at = nextAt end
  if at > now + cap then at = now + cap end
  if r > 0 then redis.call('HSET', slots, scope, tostring(math.floor(at + 1000 / r))) end
  return at - now
end
local function refuse(code, retry, depth, lim, current)
  return {'refused', code, tostring(math.ceil(retry)), tostring(depth), tostring(lim), tostring(current)}
end

local depth = redis.call('ZCARD', waitKey)
local running = count('m:' .. model) - depth
if running < 0 then running = 0 end
local free = capacity - running
if free < 0 then free = 0 end
local rModel = rate(base, 'm:' .. model, now, window, k)

local depthLimit = limit('queue_depth:' .. model, '', 'queue_depth', ARGV[8])
if depth >= depthLimit then
  local need = after(depth - depthLimit + 1, rModel)
  if need < 0 then need = fallback end
  return refuse('queue_full', spread('m:' .. model, need + load, rModel), depth, depthLimit, depth)
end

local tIn = count('t:' .. tenant)
local tLimit = limit('tenant_in_flight:' .. tenant, ARGV[10], 'tenant_in_flight', ARGV[9])
local tmIn = count('tm:' .. tenant .. '|' .. model)
local tmLimit = limit('tenant_model_in_flight:' .. tenant, ARGV[12], 'tenant_model_in_flight', ARGV[11])
if tIn >= tLimit or tmIn >= tmLimit then
  local rTenant = rate(base, 't:' .. tenant, now, window, k)
  local over, code, lim, current, scope = tIn - tLimit + 1, 'tenant_limit', tLimit, tIn, 't:' .. tenant
  if tIn < tLimit then
    over, code, lim, current, scope = tmIn - tmLimit + 1, 'tenant_model_limit', tmLimit, tmIn, 'tm:' .. tenant .. '|' .. model
  end
  local need = after(over, rTenant)
  -- No completion of this tenant yet: its work is somewhere in the queue; the whole queue
  -- moving is a fair upper estimate of when one of its jobs ends.
  if need < 0 then need = after(depth + 1, rModel) end
  if need < 0 then need = fallback end
  return refuse(code, spread(scope, need, rTenant), depth, lim, current)
end

local g = count('g')
local gLimit = limit(nil, '', 'global_in_flight', ARGV[13])
if g >= gLimit then
  local rGlobal = rate(base, 'g', now, window, k)
  local need = after(g - gLimit + 1, rGlobal)
  if need < 0 then need = fallback end
  return refuse('global_limit', spread('g', need, rGlobal), depth, gLimit, g)
end

-- Virtual start time: arrival, plus the batch offset, plus one fair-share step per job
-- this tenant already has in flight on this model. Agents take the smallest first. Never
-- before the tenant's previous job of the same class on this model: when its in-flight
-- count drops, a new job must not overtake the tenant's own older ones.
local score = now + tonumber(ARGV[17]) * tmIn
if class == 'batch' then score = score + tonumber(ARGV[16]) end
local lastKey, lastField = base .. 'lastvt', tenant .. '|' .. model .. '|' .. class
local last = tonumber(redis.call('HGET', lastKey, lastField) or '')
if last and last >= score then score = last + 1 end
local epochs = base .. 'epochs'
local epoch = tonumber(redis.call('HGET', epochs, model) or '')
if not epoch or (depth == 0 and now - epoch > tonumber(ARGV[26])) then
  epoch = now
  redis.call('HSET', epochs, model, tostring(epoch))
end
local priority = 1 + math.floor((score - epoch) / 100)
if priority < 1 then priority = 1 end
if priority > 2097151 then priority = 2097151 end

local position = redis.call('ZCOUNT', waitKey, '-inf', score)
local est = load
if position >= free then
  local w = after(position - free + 1, rModel)
  if w < 0 then est = -1 else est = load + w end
end
if deadline and est >= 0 and est > deadline then
  local retry = est - deadline
  if retry < 1000 then retry = 1000 end
  return refuse('deadline_unreachable', retry, depth, deadline, math.ceil(est))
end

local deadlineAt = ''
if deadline then deadlineAt = tostring(now + deadline) end
local entry = table.concat({'q', model, tenant, tostring(now), ARGV[23], deadlineAt, tostring(math.floor(est)), class, tostring(score)}, '|')
redis.call('HSET', jobs, id, entry)
redis.call('HSET', lastKey, lastField, tostring(score))
redis.call('ZADD', waitKey, score, id)
redis.call('ZADD', base .. 'since:' .. model, now, id)
if deadline then redis.call('ZADD', base .. 'deadlines', now + deadline, id) end
redis.call('HINCRBY', inflight, 'g', 1)
redis.call('HINCRBY', inflight, 't:' .. tenant, 1)
redis.call('HINCRBY', inflight, 'tm:' .. tenant .. '|' .. model, 1)
redis.call('HINCRBY', inflight, 'm:' .. model, 1)
if idemKey ~= '' then redis.call('SET', idemKey, id, 'EX', ARGV[21]) end
return {'ok', tostring(priority), tostring(position), tostring(depth + 1), tostring(math.floor(est))}
`;

/**
 * KEYS[1] jobs. ARGV: base, id, now, cold (1/0), load ms, record a wait sample (1/0).
 * Queued → running: the job leaves the waiting set (and the deadline set: a job that
 * started is not expired in the queue); its wait goes to the metrics samples, a cold
 * start's load time to the model's load estimate.
 */
const STARTED_LUA = `${LUA_COMMON}
local base, id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local e = redis.call('HGET', KEYS[1], id)
if not e then return 0 end
local f = split(e)
if f[1] ~= 'q' then return 0 end
f[1] = 'r'
redis.call('HSET', KEYS[1], id, table.concat(f, '|'))
redis.call('ZREM', base .. 'wait:' .. f[2], id)
redis.call('ZREM', base .. 'since:' .. f[2], id)
redis.call('ZREM', base .. 'deadlines', id)
if ARGV[6] == '1' then
  redis.call('RPUSH', base .. 'waits', f[2] .. '|' .. f[7] .. '|' .. tostring(now - tonumber(f[4])))
  redis.call('LTRIM', base .. 'waits', -10000, -1)
end
local l = tonumber(ARGV[5])
if ARGV[4] == '1' and l and l > 0 then
  local old = tonumber(redis.call('HGET', base .. 'loadms', f[2]) or '')
  if old then l = old * 0.7 + l * 0.3 end
  redis.call('HSET', base .. 'loadms', f[2], tostring(math.floor(l)))
end
return 1
`;

/**
 * KEYS[1] jobs. ARGV: base, id, now, kind (done | error | reconciled | aborted), error code.
 * Ends a reservation once (the entry is deleted): in-flight counts go down, the job leaves
 * every set, its outcome is counted, and a job that ran adds a completion to the drain
 * rates of its model, its tenant and the fleet. A job cancelled or expired while queued
 * freed no GPU slot, so it does not count as drain.
 */
const RELEASE_LUA = `${LUA_COMMON}
local base, id, now, kind, code = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]
local e = redis.call('HGET', KEYS[1], id)
if not e then return 0 end
local f = split(e)
local model, tenant = f[2], f[3]
redis.call('HDEL', KEYS[1], id)
redis.call('ZREM', base .. 'wait:' .. model, id)
redis.call('ZREM', base .. 'since:' .. model, id)
redis.call('ZREM', base .. 'deadlines', id)
redis.call('ZREM', base .. 'watched', id)
local inflight = base .. 'inflight'
decr(inflight, 'g')
decr(inflight, 't:' .. tenant)
decr(inflight, 'tm:' .. tenant .. '|' .. model)
decr(inflight, 'm:' .. model)
local outcome = kind
if kind == 'done' then outcome = 'completed'
elseif kind == 'error' then
  if code == 'cancelled' then outcome = 'cancelled'
  elseif code == 'deadline_exceeded' then outcome = 'expired'
  else outcome = 'failed' end
end
redis.call('HINCRBY', base .. 'outcomes', outcome .. '|' .. model, 1)
if kind == 'done' or (kind == 'error' and f[1] == 'r') then
  for _, scope in ipairs({'m:' .. model, 't:' .. tenant, 'g'}) do
    local key = base .. 'drain:' .. scope
    redis.call('ZADD', key, now, id)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - 3600000)
    redis.call('ZREMRANGEBYRANK', key, 0, -2001)
    redis.call('PEXPIRE', key, 3600000)
  end
end
return 1
`;

/**
 * KEYS[1] jobs. ARGV: base, then model names. Rebuilds the in-flight counters from the
 * reservations themselves and drops waiting-set members without a queued reservation.
 * Returns how many counters or members were wrong (drift, which should stay 0).
 */
const RECOMPUTE_LUA = `${LUA_COMMON}
local base = ARGV[1]
local inflight = base .. 'inflight'
local all = redis.call('HGETALL', KEYS[1])
local want = {}
local function inc(field) want[field] = (want[field] or 0) + 1 end
for i = 1, #all, 2 do
  local f = split(all[i + 1])
  inc('g'); inc('t:' .. f[3]); inc('tm:' .. f[3] .. '|' .. f[2]); inc('m:' .. f[2])
end
local have = redis.call('HGETALL', inflight)
local drift = 0
local seen = {}
for i = 1, #have, 2 do
  seen[have[i]] = true
  if tonumber(have[i + 1]) ~= want[have[i]] then drift = drift + 1 end
end
for field, _ in pairs(want) do if not seen[field] then drift = drift + 1 end end
if drift > 0 then
  redis.call('DEL', inflight)
  for field, v in pairs(want) do redis.call('HSET', inflight, field, v) end
end
for i = 2, #ARGV do
  local key = base .. 'wait:' .. ARGV[i]
  for _, jid in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    local e = redis.call('HGET', KEYS[1], jid)
    if not e or string.sub(e, 1, 2) ~= 'q|' then
      redis.call('ZREM', key, jid)
      redis.call('ZREM', base .. 'since:' .. ARGV[i], jid)
      drift = drift + 1
    end
  end
end
return drift
`;

/** KEYS[1] jobs. ARGV: base, now, window, k, then models. Per model: depth, oldest submission, in flight, drain rate ×1000. */
const STATS_LUA = `${LUA_RATE}
local base, now, window, k = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i = 5, #ARGV do
  local model = ARGV[i]
  local oldest = redis.call('ZRANGE', base .. 'since:' .. model, 0, 0, 'WITHSCORES')
  out[#out + 1] = {
    redis.call('ZCARD', base .. 'wait:' .. model),
    oldest[2] or '-1',
    redis.call('HGET', base .. 'inflight', 'm:' .. model) or '0',
    tostring(math.floor(rate(base, 'm:' .. model, now, window, k) * 1000)),
  }
end
return out
`;

/** KEYS[1] jobs. ARGV: base, then job ids. Per job: state, model, tenant, detach, rank in its waiting set (-1 if none). */
const POSITIONS_LUA = `${LUA_COMMON}
local base = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local e = redis.call('HGET', KEYS[1], ARGV[i])
  if not e then
    out[#out + 1] = {''}
  else
    local f = split(e)
    local rank = -1
    if f[1] == 'q' then rank = redis.call('ZRANK', base .. 'wait:' .. f[2], ARGV[i]) or -1 end
    out[#out + 1] = {f[1], f[2], f[3], f[5], rank}
  end
end
return out
`;

/** KEYS[1] jobs. ARGV: base, id, now. Marks a job's native stream as seen now, if the job is still in flight. */
const WATCH_LUA = `
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', ARGV[1] .. 'watched', ARGV[3], ARGV[2])
return 1
`;

export type RefusalCode = 'queue_full' | 'tenant_limit' | 'tenant_model_limit' | 'global_limit' | 'deadline_unreachable';

/** Limits for one admission. `*Override` values come from the API keys file for this tenant. */
export interface AdmissionLimits {
  queueDepth: number;
  tenantInFlight: number;
  tenantInFlightOverride?: number;
  tenantModelInFlight: number;
  tenantModelInFlightOverride?: number;
  globalInFlight: number;
}

export interface AdmissionTuning {
  /** Sliding window of the drain rate. */
  drainWindowMs: number;
  /** At most this many newest completions make up the rate. */
  rateSamples: number;
  /** Batch work ranks as if it had arrived this much later. */
  batchOffsetMs: number;
  /** Each job the tenant already has in flight on the model pushes a new one back this much. */
  fairStepMs: number;
  /** Longest Retry-After handed out. */
  retryCapMs: number;
  /** Retry-After when a scope has no measured drain rate yet. */
  retryFallbackMs: number;
  /** A model's priority origin is moved forward once its queue is empty and the origin is older than this. */
  epochMaxAgeMs: number;
}

export interface AdmitRequest {
  jobId: string;
  /** Queue key: model name, or `<model>@<digest>` for a pinned queue. */
  model: string;
  tenant: string;
  priority: 'interactive' | 'batch';
  deadlineMs?: number;
  detach: boolean;
  /** Expected load time when no copy of the model is warm; 0 when one is. */
  loadMs: number;
  /** GPU slots that serve this model (for "starts at once" in the estimate). */
  capacity: number;
  idempotencyKey?: string;
  idempotencyTtlS: number;
  /** Replace an idempotency key whose job is gone (past retention). */
  overwriteIdempotency?: boolean;
  limits: AdmissionLimits;
  tuning: AdmissionTuning;
  now?: number;
}

export type AdmitResult =
  | { kind: 'duplicate'; jobId: string }
  | { kind: 'refused'; code: RefusalCode; retryAfterMs: number; depth: number; limit: number; current: number }
  | { kind: 'admitted'; priority: number; position: number; depth: number; etaMs?: number };

export type ReleaseKind = 'done' | 'error' | 'reconciled' | 'aborted';

export interface ModelLedgerStats {
  /** Jobs admitted and not yet started (includes jobs an agent is still loading for). */
  depth: number;
  /** Submission time of the longest-waiting job, if any waits. */
  oldestSubmittedAt?: number;
  inFlight: number;
  /** Completions per second over the window; 0 when none was measured. */
  drainPerS: number;
}

export interface JobPosition {
  state: 'q' | 'r';
  model: string;
  tenant: string;
  detach: boolean;
  /** Jobs ahead of it in its model's queue; undefined once started. */
  rank?: number;
}

interface LedgerCommands {
  switchyardAdmit(jobs: string, ...args: string[]): Promise<string[]>;
  switchyardStarted(jobs: string, ...args: string[]): Promise<number>;
  switchyardRelease(jobs: string, ...args: string[]): Promise<number>;
  switchyardRecompute(jobs: string, ...args: string[]): Promise<number>;
  switchyardLedgerStats(jobs: string, ...args: string[]): Promise<Array<[number, string, string, string]>>;
  switchyardPositions(jobs: string, ...args: string[]): Promise<Array<[string, string?, string?, string?, number?]>>;
  switchyardWatch(jobs: string, ...args: string[]): Promise<number>;
}

const SCRIPTS: Record<keyof LedgerCommands, string> = {
  switchyardAdmit: ADMIT_LUA,
  switchyardStarted: STARTED_LUA,
  switchyardRelease: RELEASE_LUA,
  switchyardRecompute: RECOMPUTE_LUA,
  switchyardLedgerStats: STATS_LUA,
  switchyardPositions: POSITIONS_LUA,
  switchyardWatch: WATCH_LUA,
};

export class AdmissionLedger {
  readonly keys: AdmissionKeys;
  private readonly commands: LedgerCommands;

  constructor(
    private readonly redis: Redis,
    keys: RedisKeys,
  ) {
    this.keys = keys.admission;
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: 1, lua });
    }
    this.commands = redis as unknown as LedgerCommands;
  }

  /** Checks every limit and reserves, atomically; or names the limit that refused and when to retry. */
  async admit(request: AdmitRequest): Promise<AdmitResult> {
    const { limits, tuning } = request;
    const optional = (value: number | undefined) => (value === undefined ? '' : String(value));
    const reply = await this.commands.switchyardAdmit(
      this.keys.jobs,
      this.keys.base,
      String(request.now ?? Date.now()),
      request.jobId,
      request.model,
      request.tenant,
      request.priority,
      optional(request.deadlineMs),
      String(limits.queueDepth),
      String(limits.tenantInFlight),
      optional(limits.tenantInFlightOverride),
      String(limits.tenantModelInFlight),
      optional(limits.tenantModelInFlightOverride),
      String(limits.globalInFlight),
      String(tuning.drainWindowMs),
      String(tuning.rateSamples),
      String(tuning.batchOffsetMs),
      String(tuning.fairStepMs),
      String(Math.max(0, Math.round(request.loadMs))),
      String(Math.max(0, request.capacity)),
      request.idempotencyKey === undefined ? '' : this.keys.idempotency(request.tenant, request.idempotencyKey),
      String(request.idempotencyTtlS),
      request.overwriteIdempotency ? '1' : '0',
      request.detach ? '1' : '0',
      String(tuning.retryCapMs),
      String(tuning.retryFallbackMs),
      String(tuning.epochMaxAgeMs),
    );
    const [kind, ...rest] = reply;
    if (kind === 'dup') return { kind: 'duplicate', jobId: rest[0]! };
    if (kind === 'refused') {
      return {
        kind: 'refused',
        code: rest[0] as RefusalCode,
        retryAfterMs: Number(rest[1]),
        depth: Number(rest[2]),
        limit: Number(rest[3]),
        current: Number(rest[4]),
      };
    }
    const eta = Number(rest[3]);
    return {
      kind: 'admitted',
      priority: Number(rest[0]),
      position: Number(rest[1]),
      depth: Number(rest[2]),
      ...(eta >= 0 && { etaMs: eta }),
    };
  }

  /** Queued → running (the agent's `started`, or reconciliation seeing the job active). */
  async started(jobId: string, options: { cold?: boolean; loadMs?: number; sample?: boolean; now?: number } = {}): Promise<boolean> {
    const moved = await this.commands.switchyardStarted(
      this.keys.jobs,
      this.keys.base,
      jobId,
      String(options.now ?? Date.now()),
      options.cold ? '1' : '0',
      String(Math.round(options.loadMs ?? 0)),
      options.sample === false ? '0' : '1',
    );
    return moved === 1;
  }

  /** Ends a reservation; false when there was none (already released, or never admitted). */
  async release(jobId: string, kind: ReleaseKind, code = '', now = Date.now()): Promise<boolean> {
    return (await this.commands.switchyardRelease(this.keys.jobs, this.keys.base, jobId, String(now), kind, code)) === 1;
  }

  /** Rebuilds the in-flight counters from the reservations; returns the drift it corrected. */
  async recompute(models: string[]): Promise<number> {
    return this.commands.switchyardRecompute(this.keys.jobs, this.keys.base, ...models);
  }

  async stats(models: string[], drainWindowMs: number, rateSamples: number, now = Date.now()): Promise<Map<string, ModelLedgerStats>> {
    const result = new Map<string, ModelLedgerStats>();
    if (models.length === 0) return result;
    const rows = await this.commands.switchyardLedgerStats(this.keys.jobs, this.keys.base, String(now), String(drainWindowMs), String(rateSamples), ...models);
    models.forEach((model, index) => {
      const row = rows[index];
      if (!row) return;
      const oldest = Number(row[1]);
      result.set(model, {
        depth: Number(row[0]),
        ...(oldest >= 0 && { oldestSubmittedAt: oldest }),
        inFlight: Number(row[2]),
        drainPerS: Number(row[3]) / 1000,
      });
    });
    return result;
  }

  /** Where each job stands (undefined for jobs without a reservation). */
  async positions(jobIds: string[]): Promise<Map<string, JobPosition>> {
    const result = new Map<string, JobPosition>();
    if (jobIds.length === 0) return result;
    const rows = await this.commands.switchyardPositions(this.keys.jobs, this.keys.base, ...jobIds);
    jobIds.forEach((jobId, index) => {
      const row = rows[index];
      if (!row || row[0] === '' || row[1] === undefined || row[2] === undefined) return;
      const rank = Number(row[4] ?? -1);
      result.set(jobId, {
        state: row[0] === 'q' ? 'q' : 'r',
        model: row[1],
        tenant: row[2],
        detach: row[3] === '1',
        ...(rank >= 0 && { rank }),
      });
    });
    return result;
  }

  /** Marks a job's native stream as open now; ignored once the job has ended. */
  async watch(jobId: string, now = Date.now()): Promise<void> {
    await this.commands.switchyardWatch(this.keys.jobs, this.keys.base, jobId, String(now));
  }

  /** Every reservation: job id → state, model, tenant, submission time. */
  async reservations(): Promise<Map<string, { state: 'q' | 'r'; model: string; tenant: string; submittedAt: number }>> {
    const all = await this.redis.hgetall(this.keys.jobs);
    const result = new Map<string, { state: 'q' | 'r'; model: string; tenant: string; submittedAt: number }>();
    for (const [jobId, entry] of Object.entries(all)) {
      const [state, model, tenant, submitted] = entry.split('|');
      if (!model || !tenant) continue;
      result.set(jobId, { state: state === 'q' ? 'q' : 'r', model, tenant, submittedAt: Number(submitted) });
    }
    return result;
  }

  /** In-flight counters as stored (`g`, `t:<tenant>`, `tm:<tenant>|<model>`, `m:<model>`). */
  async inFlight(): Promise<Record<string, number>> {
    const raw = await this.redis.hgetall(this.keys.inflight);
    return Object.fromEntries(Object.entries(raw).map(([field, value]) => [field, Number(value)]));
  }
}
