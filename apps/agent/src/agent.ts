import type { Logger } from 'pino';
import { OllamaBackend, type Backend } from '@switchyard/backends';
import { redisKeys, canonicalModelName, splitQueueModel, type AgentHeartbeat } from '@switchyard/protocol';
import {
  AdmissionLedger,
  CachedRead,
  FleetRegistry,
  JobLifecycle,
  ModelCatalogStore,
  QueueRegistry,
  checkRedisSettingsAtStart,
  closeRedis,
  createRedis,
  describeRedisTarget,
  redisTarget,
} from '@switchyard/redis';
import { startAgentHttp } from './agent-http.js';
import { createAgentMetrics } from './agent-metrics.js';
import { firstInventoryRead } from './backend-warnings.js';
import type { AgentConfig } from './config.js';
import { ControlListener } from './control-listener.js';
import { DemandTracker } from './demand-tracker.js';
import { FleetState } from './fleet-state.js';
import { GpuStatsMonitor, discoverGpus } from './gpu-discovery.js';
import { HeartbeatBuilder, HeartbeatPublisher } from './heartbeat-builder.js';
import { LifecycleHistory } from './lifecycle-history.js';
import { createJobProcessor } from './job-runner.js';
import { LifecycleManager, type LifecycleOptions } from './lifecycle-manager.js';
import { ModelInventory } from './model-inventory.js';
import { ModelReconciler } from './model-reconciler.js';
import { shareModelDetails } from './model-details.js';
import { PlacementRelay, claimDelay, claimRule } from './placement-view.js';
import { EmbedBatcher } from './embed-batcher.js';
import { PullScheduler } from './pull-scheduler.js';
import { readWaitStats } from './queue-stats.js';
import { RecentSet } from './recent-set.js';
import { reportRedisTrouble } from './redis-reporting.js';
import { AgentShutdown } from './shutdown.js';
import { WorkerSet } from './worker-set.js';

export const AGENT_VERSION = '0.2.0';

export interface RunningAgent {
  readonly id: string;
  /** Where its /healthz, /readyz and /metrics answer (AGENT_HTTP_HOST, AGENT_HTTP_PORT). */
  readonly httpUrl: string;
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

/**
 * Starts an agent: connections, the parts of the node, then the loops. A composition root:
 * it only puts the parts together, in dependency order; each concern lives in its own module.
 */
export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<RunningAgent> {
  const logger = deps.logger.child({ agentId: config.agentId });
  const startedAt = Date.now();
  const keys = redisKeys(config.redisPrefix);
  const metrics = createAgentMetrics();
  const backend = metrics.backend(
    deps.backend ??
      new OllamaBackend({
        url: config.backendUrl,
        keepAlive: config.keepAlive,
        timeouts: { bodyMs: config.backendStallMs, metadataMs: config.backendReadTimeoutMs },
      }),
  );
  // Named so `CLIENT LIST` and MONITOR show which process a command came from.
  const target = redisTarget(config);
  const redis = createRedis(target, 'worker', { connectionName: `sy-agent-${config.agentId}` });
  // Plain pub/sub only (work, cancel, control, catalog): no shard subscribers under Cluster.
  const subscriber = createRedis(target, 'worker', { connectionName: `sy-agent-sub-${config.agentId}` });
  const reportRedis = reportRedisTrouble({ redisUrl: describeRedisTarget(target), logger, commands: redis, subscriber });
  // Durability settings (appendonly, appendfsync, maxmemory-policy), before anything runs on Redis: an evicting one is refused.
  await checkRedisSettingsAtStart(redis, { redisUrl: describeRedisTarget(target), allowEvicting: config.allowEvictingRedis, logger }).catch(async (error: unknown) => {
    await Promise.all([closeRedis(redis), closeRedis(subscriber)]);
    throw error;
  });

  // A job's transitions as an agent takes them (claim, start, stream, finish); see packages/redis/src/job/lifecycle.ts.
  const jobLifecycle = new JobLifecycle(redis, keys, new AdmissionLedger(redis, keys));
  const registry = new FleetRegistry(redis, keys);
  const fleet = new FleetState(redis, keys, registry, config.agentId, logger);
  const queues = new QueueRegistry(redis, keys);
  const demand = new DemandTracker(config.demandWindowMs);
  const inventory = new ModelInventory(backend, logger, { numCtx: config.backendNumCtx, parallel: config.backendParallel });
  const http = await startAgentHttp({ host: config.httpHost, port: config.httpPort, agentId: config.agentId, registry: metrics.registry, redis, inventory, logger });
  const cancelled = new RecentSet(60_000);
  // Mutable: the catalog reconciler adds and removes the catalog's pinned models in place.
  const configPinned = config.pinnedModels.map(canonicalModelName);
  const pinned = [...configPinned];
  const { gpus, source, fields, vramTotalBytes } = await nodeGpus(config, logger);
  // Utilisation, temperature, power and VRAM used move: re-read while the agent runs (configured GPUs have none).
  const gpuStats = new GpuStatsMonitor({ nvidiaSmiPath: config.nvidiaSmiPath, fields, gpus, onWarning: (message) => logger.warn(message) });
  if (source === 'nvidia-smi' && config.gpuStatsIntervalMs > 0) gpuStats.start(config.gpuStatsIntervalMs);

  // Jobs: the processor, the per-queue workers that run it, the scheduler that claims through them.
  const processor = createJobProcessor({
    agentId: config.agentId,
    backend,
    lifecycle: jobLifecycle,
    inventory,
    logger,
    vramTotalBytes,
    tokenCoalesceMs: config.tokenCoalesceMs,
    keepAlive: config.keepAlive,
    embedder: new EmbedBatcher(backend, { maxInputs: config.embedBatchMaxInputs, windowMs: config.embedBatchWindowMs }),
    wasCancelled: (jobId) => cancelled.has(jobId),
    backendFreed: (token) => scheduler.backendFreed(token),
  });
  const workers = new WorkerSet({
    redis,
    bullPrefix: keys.bullPrefix,
    processor: metrics.jobs(processor, (queueKey) => inventory.get(inventory.modelOfQueue(queueKey))?.digest),
    inventory,
    lockDurationMs: config.lockDurationMs,
    stalledIntervalMs: config.stalledIntervalMs,
    reportRedis,
    logger,
  });
  // The scheduler and the heartbeat read the lifecycle manager, which needs both: see PlacementRelay.
  const placement = new PlacementRelay();
  const scheduler = new PullScheduler({
    agentId: config.agentId,
    slots: config.slots,
    embedSlots: config.embedSlots,
    isEmbedQueue: (queueKey) => inventory.isEmbeddingModel(inventory.modelOfQueue(queueKey)),
    workers: workers.workers,
    modelOfQueue: (queueKey) => inventory.modelOfQueue(queueKey),
    logger,
    canClaim: claimRule({ inventory, placement, parallelPerCopy: config.backendParallel, embedSlots: config.embedSlots }),
    claimDelayMs: claimDelay(config.claimSpreadMs),
    requeue: (jobId, attempt) => jobLifecycle.requeue(jobId, attempt),
  });
  const history = new LifecycleHistory();
  const heartbeat = new HeartbeatBuilder({
    agentId: config.agentId,
    version: AGENT_VERSION,
    backend,
    gpus: () => gpuStats.current(),
    gpuSource: source,
    vramTotalBytes,
    slots: config.slots,
    pinned,
    inventory,
    placement,
    jobs: scheduler,
    labels: config.labels,
    history,
    catalog: { report: () => reconciler.report(), disk: () => reconciler.disk() },
    buildStats: () => metrics.buildStats(),
  });
  metrics.watchNode(() => heartbeat.build());
  const publisher = new HeartbeatPublisher({ registry, builder: heartbeat, ttlMs: config.heartbeatTtlMs, logger });
  metrics.watchLinks({ redisConnected: () => redis.status === 'ready', lastHeartbeatAt: () => publisher.lastPublishedAt, heartbeatTtlMs: config.heartbeatTtlMs, startedAt });
  // The fleet catalog: this node's disk reconciled with the desired state (model-reconciler.ts).
  const reconciler = new ModelReconciler({
    agentId: config.agentId,
    backend,
    inventory,
    catalog: new ModelCatalogStore(redis, keys),
    // A fresh read each pass (every few seconds): a stale view could place a copy twice.
    fleet: async () => [...(await registry.live()).filter((agent) => agent.id !== config.agentId), heartbeat.build()],
    pinned,
    configPinned,
    pullConcurrency: config.pullConcurrency,
    diskBudgetBytes: config.modelDiskBytes,
    ...(config.ollamaModelsDir !== undefined && { modelsDir: config.ollamaModelsDir }),
    retryBaseMs: config.pullRetryBaseMs,
    retryMaxMs: config.pullRetryMaxMs,
    runningOf: (model) => scheduler.runningOf(model),
    copyGraceMs: config.rolloutCopyGraceMs,
    queueWaiting: async (queueKey) => (await readWaitStats(queues, new Map([[queueKey, [queueKey]]]))).get(queueKey)?.waiting ?? 0,
    logger,
    onChange: () => void publisher.publish().catch(() => undefined),
  });
  const lifecycle = createLifecycle(config, {
    backend,
    inventory,
    fleet,
    queues,
    demand,
    logger,
    vramTotalBytes,
    pinned,
    metrics: history.observing(metrics),
    workers,
    scheduler,
    publisher,
  });
  placement.attach(lifecycle);
  const control = new ControlListener({
    subscriber,
    keys,
    demand,
    inventory,
    scheduler,
    lifecycle,
    cancelled,
    workers,
    logger,
    agentId: config.agentId,
    // An operator's drain: claim nothing and say so at once; running jobs finish here.
    onControl: (action) => {
      if (action === 'drain') {
        scheduler.pause();
        heartbeat.draining();
      } else {
        heartbeat.ready();
        scheduler.resume();
      }
      void publisher.publish().catch(() => undefined);
    },
  });
  shareModelDetails({ inventory, fleet, agentId: config.agentId, logger });

  // Start-up, in order: the backend's models and their queues, the first heartbeat, then the loops.
  await firstInventoryRead({ inventory, backendUrl: backend.url, setting: deps.backendSetting ?? 'BACKEND_URL', refreshMs: config.inventoryRefreshMs, logger });
  await workers.sync();
  scheduler.wake();
  inventory.on('changed', () => void workers.sync().then(() => scheduler.wake()));
  inventory.start(config.inventoryRefreshMs);
  await publisher.start(config.heartbeatIntervalMs);
  await control.start();
  lifecycle.start(config.placementIntervalMs);
  reconciler.start(config.catalogReconcileMs);
  subscriber.on('message', (channel: string) => {
    if (channel === keys.catalogChannel) void reconciler.pass();
  });
  await subscriber.subscribe(keys.catalogChannel);
  scheduler.startSweep(config.sweepIntervalMs);
  scheduler.wake();
  logger.info({ backend: backend.url, slots: config.slots, models: inventory.models(), pinned }, 'agent ready');
  http.ready();

  const shutdown = new AgentShutdown({
    agentId: config.agentId,
    workChannel: keys.workChannel,
    parts: { heartbeat, publisher, registry, inventory, lifecycle, scheduler, workers, queues, redis, subscriber },
    // A backend passed in is the caller's to close.
    ownedBackend: deps.backend ? undefined : backend,
    logger,
  });
  return {
    id: config.agentId,
    httpUrl: http.url,
    activeJobs: () => scheduler.activeJobs,
    heartbeat: () => heartbeat.build(),
    // Readiness says `draining` from the first word of a stop; /metrics answers until the connections are closed.
    handBack: () => {
      reconciler.stop();
      gpuStats.stop();
      http.stopping();
      return shutdown.handBack();
    },
    close: () => {
      reconciler.stop();
      gpuStats.stop();
      http.stopping();
      return shutdown.close().finally(() => http.close());
    },
  };
}

/** The lifecycle manager with its settings from the config; the parts it calls are built before it. */
function createLifecycle(
  config: AgentConfig,
  parts: Pick<LifecycleOptions, 'backend' | 'inventory' | 'fleet' | 'queues' | 'demand' | 'logger' | 'vramTotalBytes' | 'pinned' | 'metrics'> & {
    workers: WorkerSet;
    scheduler: PullScheduler;
    publisher: HeartbeatPublisher;
  },
): LifecycleManager {
  const { workers, scheduler, publisher, ...services } = parts;
  return new LifecycleManager({
    ...services,
    agentId: config.agentId,
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
    parallelPerCopy: config.backendParallel,
    slots: config.slots,
    keepAlive: config.keepAlive,
    initialLoadBytesPerS: config.loadBytesPerSecond,
    queueKeys: (model) => workers.queueKeysOf(model),
    runningOf: (model) => scheduler.runningOf(model),
    onWarm: (model) => {
      void publisher.publish().catch(() => undefined);
      scheduler.wake(model);
    },
    publishHeartbeat: () => publisher.publish(),
    // Unannounced work for a cold model is noticed about a heartbeat (plus a round) later: the staleness the fleet view has anyway.
    fullScanMs: config.heartbeatIntervalMs,
  });
}

/** The node's GPUs, and their VRAM summed. */
async function nodeGpus(config: AgentConfig, logger: Logger) {
  const { gpus, source, fields } = await discoverGpus({
    nvidiaSmiPath: config.nvidiaSmiPath,
    configuredVramBytes: config.gpuVramBytes,
    configuredName: config.gpuName,
    onWarning: (message) => logger.warn(message),
  });
  // Ollama spreads a model over a node's GPUs, so placement accounts the node as one pool.
  const vramTotalBytes = gpus.reduce((sum, gpu) => sum + gpu.vram_total_bytes, 0);
  logger.info({ gpus, source, vram_total_bytes: vramTotalBytes }, 'GPUs discovered');
  return { gpus, source, fields, vramTotalBytes };
}
