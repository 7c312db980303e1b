/**
 * Every Redis key and pub/sub channel Switchyard uses, in one place.
 *
 * `prefix` isolates deployments (and tests) sharing one Redis. Per-job keys carry the
 * job id as a hash tag so that a job's record and event log share a slot under Redis
 * Cluster (one script writes both in every transition); nothing does multi-key work across jobs or models.
 */
import type { ModelInfoRecord } from './model-info.js';

export interface RedisKeys {
  /** Prefix handed to BullMQ; queue keys become `<prefix>:{model}:...`. */
  readonly bullPrefix: string;
  /** Hash: the job's record (model, tenant, created_at, queue, status, attempt, agent, result or error); see `packages/redis/src/job/`. */
  job(jobId: string): string;
  /** Stream: the job's replay log of stream events, entry id `0-<seq>` (the stream assigns seq). */
  jobEvents(jobId: string): string;
  /**
   * Shard channel (`SPUBLISH`/`SSUBSCRIBE`) carrying the job's live events. It carries the
   * job's hash tag: the scripts that append an event publish it, and under Redis Cluster a
   * script may only publish to a shard channel of its own slot.
   */
  jobChannel(jobId: string): string;
  /**
   * String with a short TTL: some API replica has a native event stream of the job open. Each
   * replica refreshes it while streaming; the disconnect grace counts from when it lapses
   * (`PUBSUB NUMSUB` would see one cluster node only).
   */
  jobStreamed(jobId: string): string;
  /** Pub/sub channel on which every agent hears cancellation requests. */
  readonly cancelChannel: string;
  /** Pub/sub channel announcing new work: message is the model name. */
  readonly workChannel: string;
  /** Pub/sub channel of operators' agent controls (drain, undrain): JSON naming the agent. */
  readonly controlChannel: string;
  /** String with TTL: one agent's heartbeat record (JSON). Tagged `{fleet}` with the index below: one MULTI writes both, one MGET reads all. */
  agentHeartbeat(agentId: string): string;
  /** Sorted set: agent id → last heartbeat time (ms); lets readers find heartbeats without SCAN. Tagged `{fleet}`. */
  readonly agents: string;
  /** Set: every model a queue was ever created for; lets the API list queues after a restart. */
  readonly knownModels: string;
  /**
   * String (JSON {@link ModelInfoRecord}): what the backend's `/api/show` said about a model,
   * written by agents that have it, so the API can answer `/api/show` and the fleet can
   * estimate VRAM without asking a backend.
   */
  modelInfo(model: string): string;
  /** Hash: `<model>@<digest>` → VRAM bytes measured from `/api/ps` once loaded anywhere. */
  readonly measuredVram: string;
  /**
   * String with expiry: an agent warming (loading) a model. Slot 0 is the one lease most
   * loads take (one loader at a time fleet-wide); a load that waiting jobs or demand justify
   * beside it takes slot 1, 2, … (`FleetState.acquireWarmLease`).
   */
  warmLease(model: string, slot?: number): string;
  /** The admission ledger's keys (limits, reservations, drain rates); see {@link AdmissionKeys}. */
  readonly admission: AdmissionKeys;
  /** Tenant API keys managed at run time (`/admin/keys`); see {@link ApiKeyKeys}. */
  readonly apiKeys: ApiKeyKeys;
  /**
   * The fleet catalog (desired state, `packages/redis/src/model-catalog.ts`): a hash of model
   * name → its entry (JSON {@link CatalogEntry}) and a version counter bumped by every change,
   * sharing the hash tag `{catalog}` so a write and its bump are one MULTI under Cluster.
   */
  readonly catalog: { readonly entries: string; readonly version: string };
  /** Pub/sub channel: the catalog changed (message: the model name); agents reconcile at once. */
  readonly catalogChannel: string;
  /** String with expiry: an admin browser session (Bull Board), keyed by the SHA-256 of its cookie value; JSON {tenant, key_sha256 (of the key it was made from), created_at}. */
  adminSession(tokenSha256: string): string;
}

/**
 * Keys of the run-time API key registry (`apps/api/src/auth.ts`). Both share the hash tag
 * `{auth}` so a change to a record and the bump of the version counter are one atomic
 * script under Redis Cluster too.
 */
export interface ApiKeyKeys {
  /** Hash: key id → its record (JSON: SHA-256 of the key, tenant, admin flag, name, times). Never the key itself. */
  readonly records: string;
  /** String counter: bumped by every change of `records`; replicas poll it to know when to re-read. */
  readonly version: string;
}

/**
 * Keys of the admission ledger (`packages/redis/src/admission-ledger.ts`). Every one shares
 * the hash tag `{adm}`, so one Lua script can check every limit and reserve in one slot
 * under Redis Cluster. The ledger names every key its scripts touch from these functions
 * and passes them in KEYS; only where a stored reservation names the model or tenant does a
 * script get the prefix (`waiting('')`, `drain('m:')`, …) and append the name itself.
 * `model` is a queue key (a model name, or `<model>@<digest>` for a pinned queue).
 */
export interface AdmissionKeys {
  /** `<prefix>:{adm}:` — every key below starts with it. */
  readonly base: string;
  /** Hash: job id → its reservation (`state|model|tenant|submitted|detach|deadline|est|class|score`). */
  readonly jobs: string;
  /** Hash: `g`, `t:<tenant>`, `tm:<tenant>|<model>`, `m:<model>` → jobs in flight (queued + running). */
  readonly inflight: string;
  /** Sorted set: queued job id → virtual start time (ms), the order agents take them in. */
  waiting(model: string): string;
  /** Sorted set: queued job id → submission time (ms), for the oldest wait. */
  since(model: string): string;
  /** Sorted set: job id → completion time (ms), per model, per tenant and fleet-wide (`drain(g)`). */
  drain(scope: `m:${string}` | `t:${string}` | 'g'): string;
  /** Sorted set: queued job id → deadline (ms). */
  readonly deadlines: string;
  /** Sorted set: job id → last time (ms) a native event stream was seen open for it. */
  readonly watched: string;
  /** Hash: limit name → value, read by every admission (changes apply at once). */
  readonly limits: string;
  /** Hash: refusal scope → the next Retry-After slot (ms) handed out. */
  readonly retrySlots: string;
  /** Hash: model → measured load time (ms, moving average of cold starts). */
  readonly loadMs: string;
  /** Hash: model → origin (ms) of its BullMQ priorities. */
  readonly priorityEpochs: string;
  /** Hash: `<tenant>|<model>|<class>` → virtual start of that tenant's newest job (keeps its own jobs in order). */
  readonly lastStarts: string;
  /** Hash: model → last time (ms) an agent (ready or draining) listed it. */
  readonly seenModels: string;
  /** Hash: `<outcome>|<model>` → jobs finished that way (fleet-wide counters). */
  readonly outcomes: string;
  /**
   * Sorted set per model: fingerprint of a submit refused `503 no_capacity` → when it stops
   * counting (ms). The backlog counts them (`unserved`) so a scaler sees demand for a model
   * no agent serves (`apps/api/src/backlog.ts`).
   */
  unserved(model: string): string;
  /** List: `<model>|<estimated ms>|<actual ms>` wait samples for the metrics. */
  readonly waitSamples: string;
  /** String: the job id an idempotency key of a tenant maps to. */
  idempotency(tenant: string, key: string): string;
  /** String with expiry: which API replica runs the periodic maintenance. */
  lock(name: string): string;
}

function admissionKeys(prefix: string): AdmissionKeys {
  const base = `${prefix}:{adm}:`;
  return {
    base,
    jobs: `${base}jobs`,
    inflight: `${base}inflight`,
    waiting: (model) => `${base}wait:${model}`,
    since: (model) => `${base}since:${model}`,
    drain: (scope) => `${base}drain:${scope}`,
    deadlines: `${base}deadlines`,
    watched: `${base}watched`,
    limits: `${base}limits`,
    retrySlots: `${base}retry`,
    loadMs: `${base}loadms`,
    priorityEpochs: `${base}epochs`,
    lastStarts: `${base}lastvt`,
    seenModels: `${base}seen`,
    outcomes: `${base}outcomes`,
    unserved: (model) => `${base}unserved:${model}`,
    waitSamples: `${base}waits`,
    idempotency: (tenant, key) => `${base}idem:${tenant}:${key}`,
    lock: (name) => `${base}lock:${name}`,
  };
}

export function redisKeys(prefix = 'sy'): RedisKeys {
  if (!/^[A-Za-z0-9._-]+$/.test(prefix)) throw new Error(`invalid Redis key prefix: ${prefix}`);
  return {
    bullPrefix: `${prefix}:q`,
    job: (jobId) => `${prefix}:job:{${jobId}}`,
    jobEvents: (jobId) => `${prefix}:job:{${jobId}}:events`,
    jobChannel: (jobId) => `${prefix}:ch:job:{${jobId}}`,
    jobStreamed: (jobId) => `${prefix}:job:{${jobId}}:streamed`,
    cancelChannel: `${prefix}:ch:cancel`,
    workChannel: `${prefix}:ch:work`,
    controlChannel: `${prefix}:ch:control`,
    agentHeartbeat: (agentId) => `${prefix}:{fleet}:agent:${agentId}`,
    agents: `${prefix}:{fleet}:agents`,
    knownModels: `${prefix}:models`,
    modelInfo: (model) => `${prefix}:modelinfo:${model}`,
    measuredVram: `${prefix}:vram`,
    warmLease: (model, slot = 0) => (slot === 0 ? `${prefix}:lease:warm:${model}` : `${prefix}:lease:warm:${model}#${slot}`),
    admission: admissionKeys(prefix),
    apiKeys: { records: `${prefix}:{auth}:keys`, version: `${prefix}:{auth}:keys:version` },
    catalog: { entries: `${prefix}:{catalog}:models`, version: `${prefix}:{catalog}:version` },
    catalogChannel: `${prefix}:ch:catalog`,
    adminSession: (tokenSha256) => `${prefix}:session:${tokenSha256}`,
  };
}
