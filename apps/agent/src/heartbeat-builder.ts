import type { Logger } from 'pino';
import { splitQueueModel, type AgentHeartbeat, type DiskInfo, type GpuInfo, type LifecycleEvent, type ModelPull } from '@switchyard/protocol';
import type { FleetRegistry } from '@switchyard/redis';
import type { ModelInventory, ModelState } from './model-inventory.js';
import type { PlacementView } from './placement-view.js';
import type { PullScheduler } from './pull-scheduler.js';

export interface HeartbeatBuilderOptions {
  agentId: string;
  version: string;
  backend: { kind: AgentHeartbeat['backend']['kind']; url: string };
  /** The GPUs, or a reader of their latest figures (`GpuStatsMonitor.current`). */
  gpus: GpuInfo[] | (() => GpuInfo[]);
  /** Where the GPUs came from: configured ones have no live used figure of their own. */
  gpuSource: 'nvidia-smi' | 'config';
  /** Total VRAM of the node (all GPUs). */
  vramTotalBytes: number;
  slots: number;
  pinned: readonly string[];
  inventory: Pick<ModelInventory, 'all' | 'backendReachable'>;
  placement: Pick<PlacementView, 'loadingModel' | 'usedBytes' | 'needBytes' | 'measuredLoadBytesPerS'> & Partial<Pick<PlacementView, 'loadProgress'>>;
  jobs: Pick<PullScheduler, 'activeJobs' | 'runningOf'> & Partial<Pick<PullScheduler, 'slotJobs'>>;
  /** AGENT_LABELS. */
  labels?: Record<string, string>;
  /** The last loads and unloads (lifecycle-history.ts), shown on the fleet page. */
  history?: { list(): LifecycleEvent[] };
  /** The catalog reconciler: downloads and disk. */
  catalog?: { report(): ModelPull[]; disk(): DiskInfo | undefined };
  /** Per-build job totals (agent metrics): a rollout compares builds on them. */
  buildStats?: () => NonNullable<AgentHeartbeat['build_stats']>;
  clock?: () => number;
}

/** Builds the heartbeat this agent publishes: what it is, what runs, what is loaded and what it could load. */
export class HeartbeatBuilder {
  private state: AgentHeartbeat['state'] = 'ready';
  private readonly startedAt: number;
  private readonly clock: () => number;

  constructor(private readonly options: HeartbeatBuilderOptions) {
    this.clock = options.clock ?? Date.now;
    this.startedAt = this.clock();
  }

  /** From now on the heartbeat says `draining`: placement elsewhere stops counting on this agent. */
  draining(): void {
    this.state = 'draining';
  }

  /** Back to `ready` after an operator's undrain. */
  ready(): void {
    this.state = 'ready';
  }

  build(): AgentHeartbeat {
    const { agentId, version, backend, slots, vramTotalBytes, inventory, placement, jobs } = this.options;
    const usedBytes = placement.usedBytes();
    // Rollout copies of old builds (named `<model>@<digest>` in the inventory) are reported
    // apart: listing them as models would show each as a model of its own.
    const all = inventory.all();
    const models = all.filter((model) => splitQueueModel(model.name).digest === undefined);
    const kept = inventory.backendReachable ? all.filter((model) => splitQueueModel(model.name).digest !== undefined) : [];
    return {
      id: agentId,
      version,
      // Draining wins; otherwise an agent whose backend does not answer is degraded: admission
      // and placement elsewhere count only `ready` agents as serving.
      state: this.state === 'draining' || inventory.backendReachable ? this.state : 'degraded',
      backend: { kind: backend.kind, url: backend.url },
      gpus: this.gpuView(usedBytes),
      slots,
      // Against `slots`: embed jobs run in a budget of their own (EMBED_SLOTS) and are not counted.
      in_flight: jobs.slotJobs ?? jobs.activeJobs,
      vram: { total_bytes: vramTotalBytes, used_bytes: usedBytes, free_bytes: Math.max(0, vramTotalBytes - usedBytes) },
      models_loaded: models.filter((model) => model.loaded).map((model) => this.loaded(model)),
      models_loading: placement.loadingModel ? [placement.loadingModel] : [],
      ...this.lifecycleView(),
      ...loadSpeed(placement.measuredLoadBytesPerS?.()),
      models_available: inventory.backendReachable ? models.map((model) => this.available(model)) : [],
      ...(this.options.labels !== undefined && Object.keys(this.options.labels).length > 0 && { labels: this.options.labels }),
      ...this.catalogView(),
      ...(kept.length > 0 && {
        kept_builds: kept.map((model) => ({
          model: splitQueueModel(model.name).model,
          digest: model.digest,
          size_bytes: model.sizeBytes,
          loaded: model.loaded !== undefined,
          in_flight: Math.max(model.inFlight, this.options.jobs.runningOf(model.name)),
        })),
      }),
      ...this.buildView(),
      started_at: this.startedAt,
      updated_at: this.clock(),
    };
  }

  private buildView(): Pick<AgentHeartbeat, 'build_stats'> {
    const stats = this.options.buildStats?.() ?? [];
    return stats.length > 0 ? { build_stats: stats } : {};
  }

  private lifecycleView(): Pick<AgentHeartbeat, 'loads_in_progress' | 'lifecycle_log'> {
    const progress = this.options.placement.loadProgress?.();
    const log = this.options.history?.list() ?? [];
    return { ...(progress !== undefined && { loads_in_progress: [progress] }), ...(log.length > 0 && { lifecycle_log: log }) };
  }

  private catalogView(): Pick<AgentHeartbeat, 'disk' | 'pulls'> {
    const catalog = this.options.catalog;
    if (!catalog) return {};
    const disk = catalog.disk();
    const pulls = catalog.report();
    return { ...(disk !== undefined && { disk }), ...(pulls.length > 0 && { pulls }) };
  }

  /** nvidia-smi's figures as read; configured GPUs show this agent's own account, all on the first. */
  private gpuView(usedBytes: number): GpuInfo[] {
    const { gpuSource } = this.options;
    const gpus = typeof this.options.gpus === 'function' ? this.options.gpus() : this.options.gpus;
    return gpuSource === 'config' ? gpus.map((gpu, index) => ({ ...gpu, vram_used_bytes: index === 0 ? usedBytes : 0 })) : gpus;
  }

  private loaded(model: ModelState): AgentHeartbeat['models_loaded'][number] {
    return {
      name: model.name,
      digest: model.digest,
      vram_bytes: model.loaded!.vramBytes,
      in_flight: Math.max(model.inFlight, this.options.jobs.runningOf(model.name)),
      last_used_at: model.lastUsedAt,
      loaded_at: model.loaded!.loadedAt,
      pinned: this.options.pinned.includes(model.name),
      ...(model.serviceMs !== undefined && { service_ms: Math.round(model.serviceMs) }),
    };
  }

  private available(model: ModelState): AgentHeartbeat['models_available'][number] {
    const need = this.options.placement.needBytes(model);
    return {
      name: model.name,
      digest: model.digest,
      size_bytes: model.sizeBytes,
      vram_need_bytes: need.bytes,
      vram_need_source: need.source,
      vram_estimate_bytes: model.estimateBytes,
      fits: need.bytes <= this.options.vramTotalBytes,
      ...(model.vramProfile && { vram_profile: model.vramProfile }),
    };
  }
}

/** Publishes the built heartbeat now and every interval, until stopped. */
export class HeartbeatPublisher {
  private timer: NodeJS.Timeout | undefined;
  /** When a heartbeat last reached Redis (ms since epoch); `/metrics` reports its age. */
  lastPublishedAt: number | undefined;

  constructor(private readonly options: { registry: Pick<FleetRegistry, 'publish'>; builder: HeartbeatBuilder; ttlMs: number; logger: Logger }) {}

  async publish(): Promise<void> {
    await this.options.registry.publish(this.options.builder.build(), this.options.ttlMs);
    this.lastPublishedAt = Date.now();
  }

  /** Publishes once (a failure is logged, start-up goes on), then every `intervalMs`. */
  async start(intervalMs: number): Promise<void> {
    const { logger } = this.options;
    await this.publish().catch((error) => logger.warn({ err: error }, 'heartbeat failed'));
    this.timer = setInterval(() => void this.publish().catch((error) => logger.warn({ err: error }, 'heartbeat failed')), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** The measured load throughput, once there is one (see AgentHeartbeat.load_bytes_per_s). */
function loadSpeed(bytesPerS: number | undefined): Pick<AgentHeartbeat, 'load_bytes_per_s'> {
  return bytesPerS !== undefined && Number.isFinite(bytesPerS) && bytesPerS > 0 ? { load_bytes_per_s: Math.round(bytesPerS) } : {};
}
