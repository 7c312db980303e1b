/**
 * Every Redis key and pub/sub channel Switchyard uses, in one place.
 *
 * `prefix` isolates deployments (and tests) sharing one Redis. Per-job keys carry the
 * job id as a hash tag so that a job's event log, sequence counter and record share a
 * slot under Redis Cluster; nothing does multi-key work across jobs or models.
 */
import type { ModelInfoRecord } from './model-info.js';

export interface RedisKeys {
  /** Prefix handed to BullMQ; queue keys become `<prefix>:{model}:...`. */
  readonly bullPrefix: string;
  /** Hash: the job's routing record (model, tenant, created_at, terminal status override). */
  job(jobId: string): string;
  /** Stream: the job's replay log of stream events, entry id `0-<seq>`. */
  jobEvents(jobId: string): string;
  /** String counter: last `seq` assigned to the job's events. */
  jobSeq(jobId: string): string;
  /** Pub/sub channel carrying the job's live events. */
  jobChannel(jobId: string): string;
  /** Pub/sub channel on which every agent hears cancellation requests. */
  readonly cancelChannel: string;
  /** Pub/sub channel announcing new work: message is the model name. */
  readonly workChannel: string;
  /** String with TTL: one agent's heartbeat record (JSON). */
  agentHeartbeat(agentId: string): string;
  /** Sorted set: agent id → last heartbeat time (ms); lets readers find heartbeats without SCAN. */
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
  /** String with expiry: the agent currently warming (loading) a model; one at a time fleet-wide. */
  warmLease(model: string): string;
}

export function redisKeys(prefix = 'sy'): RedisKeys {
  if (!/^[A-Za-z0-9._-]+$/.test(prefix)) throw new Error(`invalid Redis key prefix: ${prefix}`);
  return {
    bullPrefix: `${prefix}:q`,
    job: (jobId) => `${prefix}:job:{${jobId}}`,
    jobEvents: (jobId) => `${prefix}:job:{${jobId}}:events`,
    jobSeq: (jobId) => `${prefix}:job:{${jobId}}:seq`,
    jobChannel: (jobId) => `${prefix}:ch:job:${jobId}`,
    cancelChannel: `${prefix}:ch:cancel`,
    workChannel: `${prefix}:ch:work`,
    agentHeartbeat: (agentId) => `${prefix}:agent:${agentId}`,
    agents: `${prefix}:agents`,
    knownModels: `${prefix}:models`,
    modelInfo: (model) => `${prefix}:modelinfo:${model}`,
    measuredVram: `${prefix}:vram`,
    warmLease: (model) => `${prefix}:lease:warm:${model}`,
  };
}
