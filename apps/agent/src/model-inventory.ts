import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { Backend, BackendModel } from '@switchyard/backends';
import { canonicalModelName, normalizeDigest, parseBuildAlias, pinnedQueueModel, splitQueueModel, type VramProfile } from '@switchyard/protocol';
import { architectureFromShow, estimateVramBytes, vramProfile, type ArchitectureNumbers } from './vram-estimate.js';

export interface ModelState {
  /** Canonical name (the queue it is served from). */
  name: string;
  /** Name as the backend spells it. */
  backendName: string;
  digest: string;
  sizeBytes: number;
  /** `/api/show` body, once fetched for this digest. */
  show?: Record<string, unknown>;
  arch?: ArchitectureNumbers;
  estimateBytes: number;
  /** How the estimate grows with context, once the architecture is known: judges a job's own num_ctx. */
  vramProfile?: VramProfile;
  /** Resident in VRAM: bytes, since when, and whether the bytes come from `/api/ps` or our estimate. */
  loaded?: { vramBytes: number; loadedAt: number; measured: boolean };
  /** How long this node's last load of the model took (ms), when this agent made it. */
  lastLoadMs?: number;
  inFlight: number;
  lastUsedAt: number;
  /** Mean slot occupancy of a job (EWMA), for capacity estimates; a default until a job ran here. */
  /** Mean time a job of it held a slot here (moving average); undefined until one ran here. Shared in the heartbeat. */
  serviceMs?: number;
}

/**
 * The inventory's name for a backend model: its canonical name, or for a rollout copy of an
 * old build (`buildAliasName`) the pinned queue key `<model>@<digest>` it serves, so the
 * rest of the agent sees it as that build of the model.
 */
function inventoryName(model: BackendModel): string {
  const name = canonicalModelName(model.name);
  const alias = parseBuildAlias(name);
  const digest = normalizeDigest(model.digest);
  return alias && digest.startsWith(alias.digestPrefix) ? pinnedQueueModel(canonicalModelName(alias.model), digest) : name;
}

/** What a node assumes a job of a model takes before any copy in the fleet has measured it. */
export const DEFAULT_SERVICE_MS = 5_000;

/**
 * What the backend has on disk and in VRAM, keyed by canonical model name, refreshed
 * periodically from `/api/tags` and `/api/ps` and kept current in between by the agent's
 * own loads, unloads and jobs. Emits `changed` when the set of available models changes.
 */
export class ModelInventory extends EventEmitter<{ changed: [models: string[]]; shown: [model: ModelState]; unreachable: [error: unknown] }> {
  private readonly states = new Map<string, ModelState>();
  /** Models being pulled to another build: their old build's queue is served from its rollout copy. */
  private readonly copyServed = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private lastRefreshOk = false;
  /** Why the last refresh failed (undefined after a good one): start-up reports it. */
  lastError: unknown;

  constructor(
    private readonly backend: Backend,
    private readonly logger: Logger,
    private readonly load: { numCtx: number; parallel: number },
  ) {
    super();
    // Every running job listens for `unreachable` (the job runner), and embed jobs run by the dozen.
    this.setMaxListeners(0);
  }

  /** Refreshes now; on a backend failure keeps the previous view and reports false. */
  async refresh(): Promise<boolean> {
    let models: BackendModel[];
    let running: Awaited<ReturnType<Backend['listLoaded']>>;
    try {
      [models, running] = await Promise.all([this.backend.listModels(), this.backend.listLoaded()]);
    } catch (error) {
      const wasReachable = this.lastRefreshOk;
      if (wasReachable) this.logger.warn({ err: error }, 'backend unreachable; keeping the last model list');
      this.lastRefreshOk = false;
      // Told on every failed read, so a request that hangs on a backend that went silent is
      // dropped (see the job runner) whether or not an earlier read had already failed.
      this.emit('unreachable', error);
      this.lastError = error;
      return false;
    }
    this.lastError = undefined;
    // A model whose build changed counts as a change too: its digest-pinned queue is another one.
    const signature = () =>
      [...this.states.values()]
        .map((state) => `${state.name}@${state.digest}`)
        .sort()
        .join('\n');
    const before = signature();
    const seen = new Set<string>();
    for (const model of models) {
      const name = inventoryName(model);
      seen.add(name);
      const existing = this.states.get(name);
      if (existing && existing.digest === model.digest) {
        existing.backendName = model.name;
        existing.sizeBytes = model.size_bytes;
        continue;
      }
      this.states.set(name, {
        name,
        backendName: model.name,
        digest: model.digest,
        sizeBytes: model.size_bytes,
        estimateBytes: estimateVramBytes(model.size_bytes, {}, this.load),
        inFlight: existing?.inFlight ?? 0,
        lastUsedAt: existing?.lastUsedAt ?? 0,
        ...(existing?.serviceMs !== undefined && { serviceMs: existing.serviceMs }),
      });
    }
    for (const name of this.states.keys()) if (!seen.has(name)) this.states.delete(name);

    const now = Date.now();
    const residents = new Map(running.map((model) => [canonicalModelName(model.name), model]));
    for (const state of this.states.values()) {
      // A rollout copy shares its build's blobs, so the backend's runner of that build serves
      // it whichever name loaded it (Ollama keys runners by blob, and `/api/ps` names one).
      const copy = splitQueueModel(state.name).digest !== undefined;
      const resident =
        residents.get(canonicalModelName(state.backendName)) ?? (copy ? running.find((model) => normalizeDigest(model.digest) === normalizeDigest(state.digest)) : undefined);
      if (resident) state.loaded = { vramBytes: resident.vram_bytes, loadedAt: state.loaded?.loadedAt ?? now, measured: true };
      else if (state.inFlight === 0) state.loaded = undefined;
    }
    if (!this.lastRefreshOk) this.logger.info({ models: [...this.states.keys()] }, 'backend reachable');
    this.lastRefreshOk = true;
    await this.fetchMissingShows();
    if (signature() !== before) this.emit('changed', [...this.states.keys()].sort());
    return true;
  }

  /** `/api/show` once per digest: architecture numbers for the VRAM estimate. */
  private async fetchMissingShows(): Promise<void> {
    for (const state of this.states.values()) {
      if (state.show) continue;
      try {
        const info = await this.backend.show(state.backendName);
        state.show = info.raw;
        state.arch = architectureFromShow(info.raw);
        state.estimateBytes = estimateVramBytes(state.sizeBytes, state.arch, this.load);
        state.vramProfile = vramProfile(state.sizeBytes, state.arch, this.load.parallel);
        this.emit('shown', state);
      } catch (error) {
        this.logger.debug({ err: error, model: state.name }, 'could not read model details; estimating from size');
      }
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

  /**
   * A job's backend request failed the way a dead backend fails (connection refused or reset,
   * a stream cut off): until a refresh succeeds again (which re-reads `/api/tags` and
   * `/api/ps`: a restarted Ollama has nothing loaded) the agent claims nothing and its
   * heartbeat says `degraded`.
   */
  markUnreachable(error: unknown): void {
    this.lastError = error;
    // No 'unreachable' event here: that says the health reads fail, and one failed request
    // must not drop the other quiet ones (a cold load) on a backend that still answers; the
    // refresh below emits it if the backend is really down.
    if (!this.lastRefreshOk) return;
    this.lastRefreshOk = false;
    this.logger.warn({ err: error }, 'backend unreachable (a job request failed); claiming nothing until it answers again');
    // Ask again soon rather than at the next period: a backend back in a second serves in a second.
    setTimeout(() => void this.refresh(), 200).unref();
  }

  models(): string[] {
    return [...this.states.keys()];
  }

  all(): ModelState[] {
    return [...this.states.values()];
  }

  get(model: string): ModelState | undefined {
    return this.states.get(model);
  }

  /**
   * The model that serves a queue key: the old build's rollout copy (`<model>@<digest>`)
   * for that build's pinned queue once the model's own name holds another build, else the
   * model itself.
   */
  modelOfQueue(queueKey: string): string {
    const { model, digest } = splitQueueModel(queueKey);
    if (digest === undefined || !this.states.has(queueKey)) return model;
    if (this.copyServed.has(model)) return queueKey;
    const primary = this.states.get(model);
    return primary && normalizeDigest(primary.digest) === digest ? model : queueKey;
  }

  /**
   * While `model` is pulled to another build, its old build's queue is served from the
   * rollout copy even though the name still holds that build: the backend switches the name
   * when the download ends, before this inventory reads it again, and a job pinned to the old
   * build must not run on the new one in between.
   */
  serveOldBuildFromCopy(model: string, on: boolean): void {
    if (on) this.copyServed.add(model);
    else this.copyServed.delete(model);
  }

  /** The name to send to the backend for a canonical model name. */
  backendName(model: string): string | undefined {
    return this.states.get(model)?.backendName;
  }

  /**
   * A model that only embeds (`/api/show` capabilities has `embedding`, not `completion`): its
   * queue holds embed jobs, claimed in their own budget and batched. False until its details were read.
   */
  isEmbeddingModel(model: string): boolean {
    const capabilities = this.states.get(model)?.show?.['capabilities'];
    return Array.isArray(capabilities) && capabilities.includes('embedding') && !capabilities.includes('completion');
  }

  isLoaded(model: string): boolean {
    return this.states.get(model)?.loaded !== undefined;
  }

  /** Records a load this agent made (ahead of the next `/api/ps`). */
  markLoaded(model: string, vramBytes?: number, loadMs?: number): void {
    // The figure is provisional until the next `/api/ps` read replaces it.
    const state = this.states.get(model);
    if (!state) return;
    if (loadMs !== undefined) state.lastLoadMs = loadMs;
    state.loaded ??= { vramBytes: vramBytes ?? state.estimateBytes, loadedAt: Date.now(), measured: false };
  }

  markUnloaded(model: string): void {
    const state = this.states.get(model);
    if (state) state.loaded = undefined;
  }

  /** Records that a job for `model` started; the returned function records its end. */
  track(model: string): () => void {
    const state = this.states.get(model);
    if (!state) return () => undefined;
    const startedAt = Date.now();
    state.inFlight++;
    state.lastUsedAt = startedAt;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      state.inFlight--;
      state.lastUsedAt = Date.now();
      // EWMA so capacity estimates follow a change of prompt sizes within a few jobs.
      const tookMs = state.lastUsedAt - startedAt;
      state.serviceMs = state.serviceMs === undefined ? tookMs : 0.8 * state.serviceMs + 0.2 * tookMs;
    };
  }
}
