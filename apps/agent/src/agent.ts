import type { Logger } from 'pino';
import type { Redis } from 'ioredis';
import { OllamaBackend, type Backend } from '@switchyard/backends';
import {
  AgentHeartbeat,
  modelToQueueName,
  redisKeys,
  type GpuInfo,
  type JobResult,
} from '@switchyard/protocol';
import {
  CancelMessage,
  EventLog,
  FleetRegistry,
  ManualWorker,
  closeRedis,
  createRedis,
} from '@switchyard/redis';
import type { AgentConfig } from './config.js';
import { discoverGpus } from './gpu-discovery.js';
import { createJobProcessor } from './job-runner.js';
import { ModelInventory } from './model-inventory.js';
import { PullScheduler } from './pull-scheduler.js';
import { RecentSet } from './recent-set.js';

export const AGENT_VERSION = '0.1.0';

export interface RunningAgent {
  readonly id: string;
  /** Jobs running right now. */
  activeJobs(): number;
  /** Stops pulling, lets running jobs finish, removes the heartbeat, closes connections. */
  close(): Promise<void>;
}

export interface AgentDeps {
  logger: Logger;
  /** Defaults to an Ollama client for `config.backendUrl`. */
  backend?: Backend;
}

export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<RunningAgent> {
  const logger = deps.logger.child({ agentId: config.agentId });
  const keys = redisKeys(config.redisPrefix);
  const backend = deps.backend ?? new OllamaBackend({ url: config.backendUrl });
  const redis = createRedis(config.redisUrl, 'worker');
  const subscriber = createRedis(config.redisUrl, 'worker');
  redis.on('error', (error) => logger.warn({ err: error }, 'redis connection error'));
  subscriber.on('error', (error) => logger.warn({ err: error }, 'redis subscriber error'));

  const events = new EventLog(redis, keys);
  const fleet = new FleetRegistry(redis, keys);
  const inventory = new ModelInventory(backend, logger);
  const cancelled = new RecentSet(60_000);
  const { gpus, source } = await discoverGpus({
    nvidiaSmiPath: config.nvidiaSmiPath,
    configuredVramBytes: config.gpuVramBytes,
    configuredName: config.gpuName,
    onWarning: (message) => logger.warn(message),
  });
  logger.info({ gpus, source }, 'GPUs discovered');

  const processor = createJobProcessor({
    agentId: config.agentId,
    backend,
    events,
    inventory,
    logger,
    tokenCoalesceMs: config.tokenCoalesceMs,
    keepAlive: config.keepAlive,
    wasCancelled: (jobId) => cancelled.has(jobId),
  });
  const workers = new Map<string, ManualWorker<unknown, JobResult>>();
  const scheduler = new PullScheduler({ agentId: config.agentId, slots: config.slots, workers, logger });

  const openWorker = async (model: string) => {
    if (workers.has(model)) return;
    const worker = new ManualWorker<unknown, JobResult>(modelToQueueName(model), processor, {
      connection: redis,
      prefix: keys.bullPrefix,
      lockDuration: config.lockDurationMs,
      stalledInterval: config.stalledIntervalMs,
      maxStalledCount: 1,
    });
    worker.on('error', (error) => logger.warn({ err: error, model }, 'worker error'));
    workers.set(model, worker);
    await worker.startMaintenance();
    logger.info({ model }, 'serving model queue');
  };
  const syncWorkers = async (models: string[]) => {
    const wanted = new Set(models);
    await Promise.all(models.map(openWorker));
    for (const [model, worker] of workers) {
      if (wanted.has(model)) continue;
      workers.delete(model);
      logger.info({ model }, 'model gone from backend; no longer serving its queue');
      void worker.close().catch(() => undefined);
    }
    scheduler.wake();
  };

  await inventory.refresh();
  await syncWorkers(inventory.models());
  inventory.on('changed', (models) => void syncWorkers(models));
  inventory.start(config.inventoryRefreshMs);

  const startedAt = Date.now();
  let state: AgentHeartbeat['state'] = 'ready';
  const heartbeat = (): AgentHeartbeat => {
    const usedByModels = inventory.loadedForHeartbeat().reduce((sum, model) => sum + model.vram_bytes, 0);
    const gpuView: GpuInfo[] =
      source === 'config'
        ? gpus.map((gpu, index) => ({ ...gpu, vram_used_bytes: index === 0 ? usedByModels : 0 }))
        : gpus;
    return {
      id: config.agentId,
      version: AGENT_VERSION,
      state,
      backend: { kind: backend.kind, url: backend.url },
      gpus: gpuView,
      slots: config.slots,
      in_flight: scheduler.activeJobs,
      models_loaded: inventory.loadedForHeartbeat(),
      models_available: inventory.backendReachable ? inventory.availableForHeartbeat() : [],
      started_at: startedAt,
      updated_at: Date.now(),
    };
  };
  const beat = () =>
    fleet.publish(heartbeat(), config.heartbeatTtlMs).catch((error) => logger.warn({ err: error }, 'heartbeat failed'));
  await beat();
  const heartbeatTimer = setInterval(beat, config.heartbeatIntervalMs);
  heartbeatTimer.unref();

  subscriber.on('message', (channel: string, message: string) => {
    if (channel === keys.workChannel) {
      scheduler.wake(message);
      return;
    }
    if (channel === keys.cancelChannel) onCancel(message);
  });
  const onCancel = (message: string) => {
    let parsed: CancelMessage;
    try {
      parsed = CancelMessage.parse(JSON.parse(message));
    } catch {
      logger.warn({ message: message.slice(0, 200) }, 'ignoring malformed cancel message');
      return;
    }
    cancelled.add(parsed.job_id);
    const worker = workers.get(parsed.model);
    if (worker?.cancelJob(parsed.job_id, parsed.reason)) {
      logger.info({ jobId: parsed.job_id, reason: parsed.reason }, 'cancelling running job');
    }
  };
  await subscriber.subscribe(keys.workChannel, keys.cancelChannel);
  scheduler.startSweep(config.sweepIntervalMs);
  scheduler.wake();
  logger.info({ backend: backend.url, slots: config.slots, models: inventory.models() }, 'agent ready');

  let closing: Promise<void> | undefined;
  return {
    id: config.agentId,
    activeJobs: () => scheduler.activeJobs,
    close: () =>
      (closing ??= (async () => {
        state = 'draining';
        await beat();
        inventory.stop();
        await scheduler.drain();
        clearInterval(heartbeatTimer);
        await fleet.remove(config.agentId).catch(() => undefined);
        await Promise.all([...workers.values()].map((worker) => worker.close()));
        await closeRedis(subscriber);
        await closeRedis(redis);
        if (!deps.backend) await backend.close();
        logger.info('agent stopped');
      })()),
  };
}

export type { Redis };
