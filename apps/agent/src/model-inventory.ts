import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Backend, BackendLoadedModel, BackendModel } from '@switchyard/backends';
import { canonicalModelName, type AvailableModel, type LoadedModel } from '@switchyard/protocol';

interface ModelUsage {
  inFlight: number;
  lastUsedAt: number;
}

/**
 * What the backend has on disk and in VRAM, refreshed periodically, keyed by canonical
 * model name (the queue a model is served from), plus this agent's own usage counts.
 * Emits `changed` with the set of available models when it differs from the last refresh.
 */
export class ModelInventory extends EventEmitter<{ changed: [models: string[]] }> {
  private available = new Map<string, BackendModel>();
  private loaded = new Map<string, BackendLoadedModel>();
  private readonly usage = new Map<string, ModelUsage>();
  private timer: NodeJS.Timeout | undefined;
  private lastRefreshOk = false;

  constructor(
    private readonly backend: Backend,
    private readonly logger: Logger,
  ) {
    super();
  }

  /** Refreshes now; on a backend failure keeps the previous view and reports false. */
  async refresh(): Promise<boolean> {
    try {
      const [models, running] = await Promise.all([this.backend.listModels(), this.backend.listLoaded()]);
      const before = [...this.available.keys()].sort().join('\n');
      this.available = new Map(models.map((model) => [canonicalModelName(model.name), model]));
      this.loaded = new Map(running.map((model) => [canonicalModelName(model.name), model]));
      if (!this.lastRefreshOk) this.logger.info({ models: [...this.available.keys()] }, 'backend reachable');
      this.lastRefreshOk = true;
      const after = [...this.available.keys()].sort();
      if (after.join('\n') !== before) this.emit('changed', after);
      return true;
    } catch (error) {
      if (this.lastRefreshOk) this.logger.warn({ err: error }, 'backend unreachable; keeping the last model list');
      this.lastRefreshOk = false;
      return false;
    }
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.refresh(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  get backendReachable(): boolean {
    return this.lastRefreshOk;
  }

  models(): string[] {
    return [...this.available.keys()];
  }

  /** The name to send to the backend for a canonical model name. */
  backendName(model: string): string | undefined {
    return this.available.get(model)?.name;
  }

  isLoaded(model: string): boolean {
    return this.loaded.has(model);
  }

  /** Records that a job for `model` started; the returned function records its end. */
  track(model: string): () => void {
    const usage = this.usage.get(model) ?? { inFlight: 0, lastUsedAt: 0 };
    usage.inFlight++;
    usage.lastUsedAt = Date.now();
    this.usage.set(model, usage);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      usage.inFlight--;
      usage.lastUsedAt = Date.now();
    };
  }

  availableForHeartbeat(): AvailableModel[] {
    return [...this.available].map(([name, model]) => ({ name, digest: model.digest, size_bytes: model.size_bytes }));
  }

  loadedForHeartbeat(): LoadedModel[] {
    return [...this.loaded].map(([name, model]) => {
      const usage = this.usage.get(name);
      return {
        name,
        digest: model.digest,
        vram_bytes: model.vram_bytes,
        in_flight: usage?.inFlight ?? 0,
        last_used_at: usage?.lastUsedAt ?? 0,
      };
    });
  }

  /** Marks a model loaded as soon as a job on it produced output, ahead of the next refresh. */
  markLoaded(model: string): void {
    if (this.loaded.has(model)) return;
    const known = this.available.get(model);
    if (known) this.loaded.set(model, { ...known, vram_bytes: known.size_bytes });
  }
}
