import type { Logger } from 'pino';
import { OllamaBackend, type Backend } from '@switchyard/backends';
import {
  AgentHeartbeat,
  modelToQueueName,
  pinnedQueueModel,
  redisKeys,
  splitQueueModel,
  canonicalModelName,
  type GpuInfo,
  type JobResult,
} from '@switchyard/protocol';
import {
  CancelMessage,
  ErrorThrottle,
  EventLog,
  FleetRegistry,
  ManualWorker,
  QueueRegistry,
  closeRedis,
  createRedis,
  describeRedisError,
  isRedisUnreachable,
  repeatsOf,
} from '@switchyard/redis';
import type { AgentConfig } from './config.js';
import { DemandTracker } from './demand-tracker.js';
import { FleetState } from './fleet-state.js';
import { discoverGpus } from './gpu-discovery.js';
import { createJobProcessor } from './job-runner.js';
import { LifecycleManager } from './lifecycle-manager.js';
import { ModelInventory } from './model-inventory.js';
import { PullScheduler } from './pull-scheduler.js';
import { RecentSet } from './recent-set.js';

export const AGENT_VERSION = '0.2.0';

export interface RunningAgent {
  readonly id: string;
  /** Jobs running right now. */
  activeJobs(): number;
  /** The heartbeat this agent would publish now. */
  heartbeat(): AgentHeartbeat;
  /** Stops pulling, lets running jobs finish, removes the heartbeat, closes connections. */
  close(): Promise<void>;
  /**
   * For a shutdown that cannot wait for running jobs: stops pulling, puts every running job
   * back at the head of its queue (another agent restarts it, its stream says `restarted`)
   * and removes the heartbeat. Resolves with how many jobs went back; the process is
   * expected to exit right after (the backend requests die with it).
   */
  handBack(): Promise<number>;
}

export interface AgentDeps {
  logger: Logger;
  /** Defaults to an Ollama client for `config.backendUrl`. */
  backend?: Backend;
  /** The setting the backend URL came from, named in the warning when it does not answer. */
  backendSetting?: string;
}

/** The socket's word for a failure (ECONNREFUSED, ENOTFOUND…) from anywhere in its cause chain, else its message. */
function failureReason(error: unknown): string {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  }
  return error instanceof Error ? error.message : String(error);
}

/** Least time between two log lines about the same Redis trouble, over all of an agent's connections. */
const REDIS_REPORT_INTERVAL_MS = 10_000;

export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<RunningAgent> {
  const logger = deps.logger.child({ agentId: config.agentId });
  const keys = redisKeys(config.redisPrefix);
  const backend = deps.backend ?? new OllamaBackend({ url: config.backendUrl, keepAlive: config.keepAlive });
  // Named so `CLIENT LIST` and MONITOR show which process a command came from.
  const redis = createRedis(config.redisUrl, 'worker', { connectionName: `sy-agent-${config.agentId}` });
  const subscriber = createRedis(config.redisUrl, 'worker', { connectionName: `sy-agent-sub-${config.agentId}` });
  // Each connection already folds its own repeats; one throttle over all of them (and the
  // workers' own connections, below) keeps an outage to a line per interval, naming the fix.
  const redisTrouble = new ErrorThrottle(REDIS_REPORT_INTERVAL_MS);
  const reportRedis = (connection: string, fields: Record<string, unknown> = {}) => (error: unknown) => {
    const verdict = redisTrouble.pass(error);
    if (!verdict) return;
    const repeats = verdict.repeats + repeatsOf(error);
    // A worker's other errors (a lost lock, say) are not about reaching Redis: keep their own words.
    const message = connection === 'worker' && !isRedisUnreachable(error) ? 'worker error' : describeRedisError(config.redisUrl, error);
    logger.warn({ err: error, connection, ...fields, ...(repeats > 0 && { repeats }) }, repeats > 0 ? `${message} (${repeats} more like it since the last report)` : message);
  };
  redis.on('error', reportRedis('commands'));
  subscriber.on('error', reportRedis('subscriber'));
  redis.on('ready', () => redisTrouble.reset());

  const events = new EventLog(redis, keys);
  const registry = new FleetRegistry(redis, keys);
  const fleet = new FleetState(redis, keys, registry, config.agentId, logger);
  const queues = new QueueRegistry(redis, keys);
  const demand = new DemandTracker(config.demandWindowMs);
  const inventory = new ModelInventory(backend, logger, { numCtx: config.backendNumCtx, parallel: config.backendParallel });
  const cancelled = new RecentSet(60_000);
  const pinned = config.pinnedModels.map(canonicalModelName);
  const { gpus, source } = await discoverGpus({
    nvidiaSmiPath: config.nvidiaSmiPath,
    configuredVramBytes: config.gpuVramBytes,
    configuredName: config.gpuName,
    onWarning: (message) => logger.warn(message),
  });
  // Ollama spreads a model over a node's GPUs, so placement accounts the node as one pool.
  const vramTotalBytes = gpus.reduce((sum, gpu) => sum + gpu.vram_total_bytes, 0);
  logger.info({ gpus, source, vram_total_bytes: vramTotalBytes }, 'GPUs discovered');

  const processor = createJobProcessor({
    agentId: config.agentId,
    backend,
    events,
    inventory,
    logger,
    vramTotalBytes,
    tokenCoalesceMs: config.tokenCoalesceMs,
    keepAlive: config.keepAlive,
    wasCancelled: (jobId) => cancelled.has(jobId),
  });
  const workers = new Map<string, ManualWorker<unknown, JobResult>>();
  const scheduler = new PullScheduler({
    agentId: config.agentId,
    slots: config.slots,
    workers,
    logger,
    canClaim: (queueKey, runningOfModel) => {
      const model = splitQueueModel(queueKey).model;
      return (
        inventory.isLoaded(model) &&
        lifecycle.loadingModel !== model &&
        !lifecycle.isDraining(model) &&
        runningOfModel < config.backendParallel
      );
    },
  });

  const queueKeysOf = (model: string): string[] => {
    const state = inventory.get(model);
    return state ? [model, pinnedQueueModel(model, state.digest)] : [model];
  };

  let state: AgentHeartbeat['state'] = 'ready';
  const startedAt = Date.now();
  const heartbeat = (): AgentHeartbeat => {
    const usedBytes = lifecycle.usedBytes();
    const gpuView: GpuInfo[] =
      source === 'config' ? gpus.map((gpu, index) => ({ ...gpu, vram_used_bytes: index === 0 ? usedBytes : 0 })) : gpus;
    const models = inventory.all();
    return {
      id: config.agentId,
      version: AGENT_VERSION,
      state,
      backend: { kind: backend.kind, url: backend.url },
      gpus: gpuView,
      slots: config.slots,
      in_flight: scheduler.activeJobs,
      vram: { total_bytes: vramTotalBytes, used_bytes: usedBytes, free_bytes: Math.max(0, vramTotalBytes - usedBytes) },
      models_loaded: models
        .filter((model) => model.loaded)
        .map((model) => ({
          name: model.name,
          digest: model.digest,
          vram_bytes: model.loaded!.vramBytes,
          in_flight: Math.max(model.inFlight, scheduler.runningOf(model.name)),
          last_used_at: model.lastUsedAt,
          loaded_at: model.loaded!.loadedAt,
          pinned: pinned.includes(model.name),
          ...(model.serviceMs !== undefined && { service_ms: Math.round(model.serviceMs) }),
        })),
      models_loading: lifecycle.loadingModel ? [lifecycle.loadingModel] : [],
      models_available: inventory.backendReachable
        ? models.map((model) => {
            const need = lifecycle.needBytes(model);
            return {
              name: model.name,
              digest: model.digest,
              size_bytes: model.sizeBytes,
              vram_need_bytes: need.bytes,
              vram_need_source: need.source,
              vram_estimate_bytes: model.estimateBytes,
              fits: need.bytes <= vramTotalBytes,
              ...(model.vramProfile && { vram_profile: model.vramProfile }),
            };
          })
        : [],
      started_at: startedAt,
      updated_at: Date.now(),
    };
  };
  const beat = () => registry.publish(heartbeat(), config.heartbeatTtlMs);

  const lifecycle: LifecycleManager = new LifecycleManager({
    agentId: config.agentId,
    backend,
    inventory,
    fleet,
    queues,
    demand,
    logger,
    tuning: {
      minResidencyMs: config.minResidencyMs,
      idleUnloadMs: config.idleUnloadMs,
      extraCopyIdleMs: config.extraCopyIdleMs,
      maxLoaded: config.backendMaxLoaded,
      recencyTauMs: config.recencyTauMs,
      demandHorizonMs: config.demandHorizonMs,
      displacementMargin: config.displacementMargin,
    },
    displacementAgingMs: config.displacementAgingMs,
    drainForColdAfterMs: config.drainForColdAfterMs,
    drainTimeoutMs: config.drainTimeoutMs,
    minExpectedLoadMs: config.minExpectedLoadMs,
    unfitCooldownMs: config.unfitCooldownMs,
    vramTotalBytes,
    parallelPerCopy: config.backendParallel,
    pinned,
    keepAlive: config.keepAlive,
    initialLoadBytesPerS: config.loadBytesPerSecond,
    queueKeys: queueKeysOf,
    runningOf: (model) => scheduler.runningOf(model),
    onWarm: (model) => {
      void beat().catch(() => undefined);
      scheduler.wake(model);
    },
    publishHeartbeat: beat,
    // Unannounced work for a cold model is noticed about a heartbeat (plus a round) later: the staleness the fleet view has anyway.
    fullScanMs: config.heartbeatIntervalMs,
  });

  const openWorker = async (queueKey: string) => {
    if (workers.has(queueKey)) return;
    const worker = new ManualWorker<unknown, JobResult>(modelToQueueName(queueKey), processor, {
      connection: redis,
      prefix: keys.bullPrefix,
      lockDuration: config.lockDurationMs,
      stalledInterval: config.stalledIntervalMs,
      maxStalledCount: 1,
    });
    // Each worker has a blocking connection of its own, whose errors arrive here.
    worker.on('error', reportRedis('worker', { queue: queueKey }));
    workers.set(queueKey, worker);
    await worker.startMaintenance();
    logger.info({ queue: queueKey }, 'serving queue');
  };
  const syncWorkers = async () => {
    const wanted = new Set(inventory.models().flatMap(queueKeysOf));
    await Promise.all([...wanted].map(openWorker));
    for (const [key, worker] of workers) {
      if (wanted.has(key)) continue;
      workers.delete(key);
      logger.info({ queue: key }, 'model gone from backend; no longer serving its queue');
      void worker.close().catch(() => undefined);
    }
    scheduler.wake();
  };
  inventory.on('shown', (model) => {
    if (!model.show) return;
    fleet
      .recordModelInfo({ model: model.name, digest: model.digest, show: model.show, agent: config.agentId, updated_at: Date.now() })
      .catch((error) => logger.warn({ err: error, model: model.name }, 'could not share model details'));
  });

  if (!(await inventory.refresh())) {
    // Said once at start (the refresh loop keeps trying quietly, and says when it answers):
    // an agent in front of nothing is otherwise "ready" with no models and no hint why.
    const setting = deps.backendSetting ?? 'BACKEND_URL';
    const reason = failureReason(inventory.lastError);
    logger.warn(
      { err: inventory.lastError, backend: backend.url },
      `backend at ${backend.url} does not answer (${reason}): start Ollama there or set ${setting} to where it listens; retrying every ${config.inventoryRefreshMs / 1000} s`,
    );
  } else if (inventory.models().length === 0) {
    logger.warn({ backend: backend.url }, `backend at ${backend.url} has no models: pull one there (ollama pull qwen2.5:0.5b); this agent serves what it lists`);
  }
  await syncWorkers();
  inventory.on('changed', () => void syncWorkers());
  inventory.start(config.inventoryRefreshMs);

  await beat().catch((error) => logger.warn({ err: error }, 'heartbeat failed'));
  const heartbeatTimer = setInterval(
    () => void beat().catch((error) => logger.warn({ err: error }, 'heartbeat failed')),
    config.heartbeatIntervalMs,
  );
  heartbeatTimer.unref();

  const onCancel = (message: string) => {
    let parsed: CancelMessage;
    try {
      parsed = CancelMessage.parse(JSON.parse(message));
    } catch {
      logger.warn({ message: message.slice(0, 200) }, 'ignoring malformed cancel message');
      return;
    }
    cancelled.add(parsed.job_id);
    for (const [key, worker] of workers) {
      if (splitQueueModel(key).model !== splitQueueModel(parsed.model).model) continue;
      if (worker.cancelJob(parsed.job_id, parsed.reason)) {
        logger.info({ jobId: parsed.job_id, reason: parsed.reason }, 'cancelling running job');
      }
    }
  };
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === keys.workChannel) {
      const model = splitQueueModel(message).model;
      demand.record(model);
      if (inventory.isLoaded(model)) scheduler.wake(message);
      if (inventory.get(model)) lifecycle.workAnnounced(model);
      return;
    }
    if (channel === keys.cancelChannel) onCancel(message);
  });
  await subscriber.subscribe(keys.workChannel, keys.cancelChannel);
  lifecycle.start(config.placementIntervalMs);
  scheduler.startSweep(config.sweepIntervalMs);
  scheduler.wake();
  logger.info({ backend: backend.url, slots: config.slots, models: inventory.models(), pinned }, 'agent ready');

  let closing: Promise<void> | undefined;
  return {
    id: config.agentId,
    activeJobs: () => scheduler.activeJobs,
    heartbeat,
    handBack: async () => {
      state = 'draining';
      inventory.stop();
      await lifecycle.stop();
      clearInterval(heartbeatTimer);
      const released = await scheduler.release();
      // Other agents find the jobs on their next sweep anyway; the announcement saves them the wait.
      await Promise.all([...new Set(released)].map((queueKey) => redis.publish(keys.workChannel, queueKey).catch(() => undefined)));
      await registry.remove(config.agentId).catch(() => undefined);
      return released.length;
    },
    close: () =>
      (closing ??= (async () => {
        state = 'draining';
        await beat().catch(() => undefined);
        inventory.stop();
        await lifecycle.stop();
        await scheduler.drain();
        clearInterval(heartbeatTimer);
        await registry.remove(config.agentId).catch(() => undefined);
        await Promise.all([...workers.values()].map((worker) => worker.close()));
        await queues.close();
        await closeRedis(subscriber);
        await closeRedis(redis);
        if (!deps.backend) await backend.close();
        logger.info('agent stopped');
      })()),
  };
}
