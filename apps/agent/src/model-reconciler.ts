import { statfs } from 'node:fs/promises';
import type { Logger } from 'pino';
import { BackendError, type Backend } from '@switchyard/backends';
import {
  buildAliasName,
  catalogHolders,
  formatGB,
  normalizeDigest,
  pinnedQueueModel,
  rolloutStatus,
  splitQueueModel,
  type AgentHeartbeat,
  type CatalogEntry,
  type DiskInfo,
  type ModelPull,
} from '@switchyard/protocol';
import type { ModelCatalogStore } from '@switchyard/redis';
import type { ModelInventory } from './model-inventory.js';

export interface ReconcilerOptions {
  agentId: string;
  backend: Backend;
  inventory: ModelInventory;
  catalog: Pick<ModelCatalogStore, 'list'>;
  /** Every live agent's heartbeat, this one's as it would be published now. */
  fleet: () => Promise<AgentHeartbeat[]>;
  /**
   * The node's pinned models, shared with the lifecycle manager and the heartbeat, which read
   * it on every decision: the reconciler adds the catalog's pinned models this node holds,
   * and removes them again, in place. `configPinned` (PINNED_MODELS) are never removed.
   */
  pinned: string[];
  configPinned: readonly string[];
  /** At most this many downloads at a time (PULL_CONCURRENCY). */
  pullConcurrency: number;
  /** Disk budget for model storage (MODEL_DISK_BYTES); 0: none, the backend host's file system if known. */
  diskBudgetBytes: number;
  /** Where the backend keeps models, when it runs on this host (OLLAMA_MODELS): its file system's size and free space. */
  modelsDir?: string;
  /** Backoff of a failed pull: `retryBaseMs × 2^(attempts-1)`, at most `retryMaxMs`. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Jobs waiting in a queue (a rollout copy of an old build goes only once its pinned queue is empty); default none. */
  queueWaiting?: (queueKey: string) => Promise<number>;
  /**
   * How long that queue must have stayed empty (ROLLOUT_COPY_GRACE_MS): API replicas route by
   * cached views of the catalog and the fleet, and may still send a job to the old build a
   * moment after the rollout moved on here. Default 10 s.
   */
  copyGraceMs?: number;
  /** Jobs of a model claimed here and not yet settled (counted from the claim, before the job body tracks its use). */
  runningOf?: (model: string) => number;
  logger: Logger;
  /** Something the heartbeat reports changed (a pull started, progressed a step, ended). */
  onChange: () => void;
  now?: () => number;
}

interface PullTask extends ModelPull {
  abort: AbortController;
  running: boolean;
  /** A rollout is under way: the build this node holds now stays servable under a copy (`buildAliasName`). */
  keepOldBuild: boolean;
}

/** Why a pull failed, from the backend's error. */
function causeOf(error: unknown): NonNullable<ModelPull['cause']> {
  if (error instanceof DiskFull) return 'disk_full';
  if (error instanceof DigestMismatch) return 'digest_mismatch';
  if (error instanceof BackendError) {
    if (error.code === 'model_not_found') return 'not_found';
    if (/no space left|disk full|not enough space/i.test(error.message)) return 'disk_full';
  }
  return 'backend_error';
}

class DiskFull extends Error {}
class DigestMismatch extends Error {}

/**
 * Moves this node's disk towards the fleet catalog, in the background: pulls the models the
 * catalog places here (at most `pullConcurrency` at a time, each retried with backoff and
 * its progress and failure cause reported in the heartbeat), verifies each build's digest,
 * and deletes what the catalog no longer places here, least recently used first, never a
 * model that is pinned, loaded or in use. A model still downloading is not in the backend's
 * `/api/tags`, so the inventory does not list it and no job for it is claimed here.
 *
 * Where each model goes is `catalogHolders` (packages/protocol/src/model-catalog.ts), the
 * one rule every agent evaluates on the same heartbeats: each acts only on its own row.
 */
export class ModelReconciler {
  private readonly pulls = new Map<string, PullTask>();
  /** Rollout copy → since when nothing routes to it and its queue is empty. */
  private readonly copyIdleSince = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private passing = false;
  private passAgain = false;
  private stopped = false;
  private deleting = false;
  private lastDisk: DiskInfo | undefined;
  private readonly now: () => number;

  constructor(private readonly options: ReconcilerOptions) {
    this.now = options.now ?? Date.now;
  }

  start(intervalMs: number): void {
    void this.pass();
    this.timer = setInterval(() => void this.pass(), intervalMs);
    this.timer.unref();
  }

  /** Stops reconciling and aborts running downloads (Ollama keeps the partial blobs and resumes them next time). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const task of this.pulls.values()) task.abort.abort(new Error('agent stopping'));
  }

  /** Reconciles now (the catalog changed, or a pull ended). Passes never overlap; one asked during a pass runs after it. */
  async pass(): Promise<void> {
    if (this.stopped) return;
    if (this.passing) {
      this.passAgain = true;
      return;
    }
    this.passing = true;
    try {
      do {
        this.passAgain = false;
        await this.reconcileOnce();
      } while (this.passAgain && !this.stopped);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not reconcile with the fleet catalog; retrying at the next pass');
    } finally {
      this.passing = false;
    }
  }

  /** Downloads running, queued or waiting to retry, as the heartbeat reports them. */
  report(): ModelPull[] {
    return [...this.pulls.values()].map(({ abort: _abort, running: _running, ...pull }) => pull);
  }

  /** Disk for models as last read: the budget and/or the file system, and what the models take. */
  disk(): DiskInfo | undefined {
    return this.lastDisk;
  }

  /** Whether a model is downloading here (the scheduler never claims it meanwhile; the inventory does not list it yet). */
  isPulling(model: string): boolean {
    return this.pulls.get(model)?.running === true;
  }

  private async reconcileOnce(): Promise<void> {
    const { options } = this;
    const [entries, agents] = await Promise.all([options.catalog.list(), options.fleet()]);
    await this.readDisk();
    const byName = new Map(entries.map((entry) => [entry.name, entry]));
    const toDelete: string[] = [];
    // Removed from the fleet (`DELETE /api/delete`): unloaded first once no job runs on it.
    const removed: string[] = [];
    const catalogPinned = new Set<string>();
    for (const entry of entries) {
      const row = catalogHolders(entry, agents).nodes.find((node) => node.agent === options.agentId);
      if (!row) continue;
      if (row.state === 'to_pull' || row.state === 'wrong_build') this.queuePull(entry);
      if (entry.removing === true && row.digest !== undefined) removed.push(entry.name);
      else if (row.state === 'extra' && row.digest !== undefined && entry.keep_on_disk !== true) toDelete.push(entry.name);
      if (entry.pinned === true && row.state === 'holds') catalogPinned.add(entry.name);
      // Not wanted here any more: a download of it stops. A pull that failed for want of disk
      // is what excludes this node (others take the copy meanwhile); it is kept, to retry.
      const ownDiskFull = this.pulls.get(entry.name)?.cause === 'disk_full' && row.why?.startsWith('disk full') === true;
      if (row.state !== 'to_pull' && row.state !== 'wrong_build' && row.state !== 'pulling' && !ownDiskFull) this.dropPull(entry.name, 'the catalog no longer places it here');
    }
    for (const model of this.pulls.keys()) if (!byName.has(model)) this.dropPull(model, 'its catalog entry was removed');
    this.syncPinned(catalogPinned);
    await this.retireOldBuilds(byName, agents);
    await this.deleteIdle(toDelete);
    await this.deleteIdle(removed, { unloadFirst: true });
    this.pump();
  }

  private queuePull(entry: CatalogEntry): void {
    const existing = this.pulls.get(entry.name);
    if (existing && (existing.digest ?? '') === (entry.digest ?? '')) return;
    if (existing) this.dropPull(entry.name, 'the catalog asks for another build');
    this.pulls.set(entry.name, {
      model: entry.name,
      ...(entry.digest !== undefined && { digest: entry.digest }),
      state: 'queued',
      attempts: 0,
      started_at: this.now(),
      abort: new AbortController(),
      running: false,
      keepOldBuild: entry.rollout !== undefined && entry.rollout.finished_at === undefined,
    });
    this.options.onChange();
  }

  private dropPull(model: string, why: string): void {
    const task = this.pulls.get(model);
    if (!task) return;
    this.pulls.delete(model);
    if (task.running) {
      this.options.logger.info({ model, why }, 'model download stopped');
      task.abort.abort(new Error(why));
    }
    this.options.onChange();
  }

  /** Starts queued downloads (and failed ones whose backoff has passed) while pull slots are free. */
  private pump(): void {
    let running = [...this.pulls.values()].filter((task) => task.running).length;
    for (const task of this.pulls.values()) {
      if (running >= this.options.pullConcurrency) return;
      if (task.running || (task.retry_at !== undefined && task.retry_at > this.now())) continue;
      running++;
      void this.runPull(task);
    }
  }

  private async runPull(task: PullTask): Promise<void> {
    const { backend, inventory, logger } = this.options;
    if (!backend.pull) return;
    task.running = true;
    task.state = 'pulling';
    task.attempts++;
    delete task.retry_at;
    this.options.onChange();
    const replaced = inventory.get(task.model);
    const log = logger.child({ model: task.model, ...(task.digest !== undefined && { digest: task.digest.slice(0, 12) }) });
    log.info({ attempt: task.attempts }, 'pulling a model the catalog places here');
    try {
      if (task.keepOldBuild && replaced && backend.copy) {
        await this.keepBuild(replaced);
        inventory.serveOldBuildFromCopy(task.model, true);
      }
      // A rollback finds the build it returns to kept here under its rollout copy: no download.
      const kept = task.digest !== undefined ? inventory.get(pinnedQueueModel(task.model, task.digest)) : undefined;
      if (kept && backend.copy) {
        log.info('restoring the build kept under its rollout copy');
        await backend.copy(kept.backendName, replaced?.backendName ?? task.model, task.abort.signal);
      } else if (task.digest !== undefined && replaced !== undefined) {
        // The name here already holds another build, likely what the registry serves under the name: ask for the build by digest.
        await this.download(task, `${task.model}@sha256:${task.digest}`, replaced.sizeBytes);
      } else {
        await this.download(task, task.model, replaced?.sizeBytes ?? 0);
      }
      task.state = 'verifying';
      this.options.onChange();
      await inventory.refresh();
      let got = inventory.get(task.model)?.digest.replace(/^sha256:/, '');
      if (task.digest !== undefined && got !== task.digest) {
        // The registry's current build is not the one asked for: ask for that build by digest.
        log.info({ got: got?.slice(0, 12) }, 'the registry served another build; pulling the asked one by digest');
        await this.download(task, `${task.model}@sha256:${task.digest}`, inventory.get(task.model)?.sizeBytes ?? 0);
        await inventory.refresh();
        got = inventory.get(task.model)?.digest.replace(/^sha256:/, '');
        if (got !== task.digest)
          throw new DigestMismatch(`the backend holds ${task.model} as ${got?.slice(0, 12) ?? 'nothing'} after the pull; the catalog asks for ${task.digest.slice(0, 12)}`);
      }
      if (this.pulls.get(task.model) === task) this.pulls.delete(task.model);
      log.info({ digest: got?.slice(0, 12), attempts: task.attempts }, 'model pulled');
    } catch (error) {
      if (task.abort.signal.aborted) return;
      const cause = causeOf(error);
      const delay = Math.min(this.options.retryMaxMs, this.options.retryBaseMs * 2 ** (task.attempts - 1));
      task.state = 'failed';
      task.cause = cause;
      task.error = error instanceof Error ? error.message : String(error);
      task.retry_at = this.now() + delay;
      log.warn({ cause, err: task.error, retryInMs: delay, attempt: task.attempts }, 'model pull failed; retrying with backoff');
      setTimeout(() => void this.pass(), delay + 10).unref();
    } finally {
      inventory.serveOldBuildFromCopy(task.model, false);
      task.running = false;
      this.options.onChange();
      if (!this.stopped) setImmediate(() => void this.pass());
    }
  }

  /**
   * Keeps the build a node holds now servable while its name is pulled to another one: a copy
   * under `buildAliasName` (same blobs, no disk), which the inventory lists as that build's
   * pinned queue, so jobs pinned to the old build (and unpinned ones until the rollout's
   * gate opens) keep running here.
   */
  private async keepBuild(current: { name: string; backendName: string; digest: string }): Promise<void> {
    const { backend, inventory, logger } = this.options;
    if (inventory.get(pinnedQueueModel(current.name, current.digest))) return;
    await backend.copy!(current.backendName, buildAliasName(current.name, current.digest));
    await inventory.refresh();
    logger.info({ model: current.name, digest: normalizeDigest(current.digest).slice(0, 12) }, 'old build kept under a rollout copy while the new one is pulled');
  }

  /**
   * Deletes rollout copies of old builds nothing routes to any more: the model's own name holds
   * that build again, or the catalog wants another build, the rollout sends unpinned jobs
   * elsewhere and no job pinned to it waits or runs here.
   */
  private async retireOldBuilds(entries: Map<string, CatalogEntry>, agents: AgentHeartbeat[]): Promise<void> {
    const { inventory, backend, logger } = this.options;
    if (!backend.delete) return;
    for (const copy of inventory.all()) {
      const { model, digest } = splitQueueModel(copy.name);
      if (digest === undefined || copy.inFlight > 0 || (this.options.runningOf?.(copy.name) ?? 0) > 0) continue;
      const primary = inventory.get(model);
      const entry = entries.get(model);
      // The name holds this build again (a rollback restored it): the copy is redundant, unless
      // the name is about to be pulled to another build, which is what the copy is kept for.
      const redundant = primary !== undefined && normalizeDigest(primary.digest) === digest && !this.pulls.has(model) && (entry?.digest ?? digest) === digest;
      if (!redundant) {
        if (primary !== undefined && normalizeDigest(primary.digest) === digest) continue;
        if (entry?.digest === digest) continue;
        const status = entry ? rolloutStatus(entry, agents) : undefined;
        if (status && status.from === digest && status.to_share < 1) {
          this.copyIdleSince.delete(copy.name);
          continue;
        }
        if (((await this.options.queueWaiting?.(copy.name)) ?? 0) > 0) {
          this.copyIdleSince.delete(copy.name);
          continue;
        }
        const graceMs = this.options.copyGraceMs ?? 10_000;
        let since = this.copyIdleSince.get(copy.name);
        if (since === undefined) {
          since = this.now();
          this.copyIdleSince.set(copy.name, since);
          // Looked at again once the grace is over, not only at the next pass.
          if (!this.stopped) setTimeout(() => void this.pass(), graceMs + 10).unref();
        }
        if (this.now() - since < graceMs) continue;
      }
      this.copyIdleSince.delete(copy.name);
      try {
        if (copy.loaded !== undefined) {
          inventory.markUnloaded(copy.name);
          await backend.unload(copy.backendName);
        }
        await backend.delete(copy.backendName);
        logger.info(
          { model, digest: digest.slice(0, 12), why: redundant ? 'the model holds that build again' : 'the rollout moved on and no job needs it' },
          'rollout copy of an old build deleted',
        );
      } catch (error) {
        logger.warn({ err: error, model: copy.name }, 'could not delete a rollout copy of an old build');
      }
      await inventory.refresh();
      this.options.onChange();
    }
  }

  /** One `/api/pull` stream to its end, recording progress and refusing one that would overrun the disk budget. */
  private async download(task: PullTask, name: string, freedBytes: number): Promise<void> {
    const { backend } = this.options;
    let checked = false;
    for await (const line of backend.pull!(name, task.abort.signal)) {
      if (line.total !== undefined && line.total > 0) {
        task.total_bytes = line.total;
        task.completed_bytes = line.completed ?? 0;
        if (!checked) {
          checked = true;
          await this.makeRoom(task.model, line.total - freedBytes);
        }
      }
    }
  }

  /** Deletes what the catalog no longer wants here (LRU first) until `bytes` fit the disk; refuses with DiskFull when they cannot. */
  private async makeRoom(model: string, bytes: number): Promise<void> {
    await this.readDisk();
    const free = this.lastDisk?.free_bytes;
    if (free === undefined || bytes <= free) return;
    const entries = await this.options.catalog.list();
    const agents = await this.options.fleet();
    const unwanted = entries
      .filter((entry) => entry.name !== model)
      .filter((entry) => {
        const row = catalogHolders(entry, agents).nodes.find((node) => node.agent === this.options.agentId);
        return row !== undefined && row.digest !== undefined && (row.state === 'extra' || entry.removing === true) && (entry.keep_on_disk !== true || entry.removing === true);
      })
      .map((entry) => entry.name);
    await this.deleteIdle(unwanted);
    await this.readDisk();
    const after = this.lastDisk?.free_bytes ?? 0;
    if (bytes > after) {
      throw new DiskFull(
        `${model} needs ${formatGB(bytes)} GB; ${formatGB(after)} GB free of ${formatGB(this.lastDisk?.total_bytes ?? 0)} GB for models on ${this.options.agentId}`,
      );
    }
  }

  /**
   * Deletes the given models that are idle here (no job, not pinned, and not loaded unless
   * `unloadFirst`, which unloads an idle loaded one first), least recently used first.
   */
  private async deleteIdle(models: string[], { unloadFirst = false } = {}): Promise<void> {
    const { backend, inventory, logger } = this.options;
    if (!backend.delete || models.length === 0) return;
    if (this.deleting) {
      logger.debug({ models }, 'a deletion is under way; these wait for the next pass');
      return;
    }
    this.deleting = true;
    try {
      const idle = models
        .map((name) => inventory.get(name))
        .filter(
          (state): state is NonNullable<typeof state> =>
            state !== undefined && (unloadFirst || state.loaded === undefined) && state.inFlight === 0 && !this.options.pinned.includes(state.name),
        )
        .sort((a, b) => a.lastUsedAt - b.lastUsedAt);
      for (const state of idle) {
        try {
          if (state.loaded !== undefined) {
            inventory.markUnloaded(state.name);
            await backend.unload(state.backendName);
          }
          await backend.delete(state.backendName);
          logger.info({ model: state.name, digest: state.digest.slice(0, 12), bytes: state.sizeBytes }, 'model deleted from disk: the catalog no longer places it here');
        } catch (error) {
          logger.warn({ err: error, model: state.name }, 'could not delete a model the catalog no longer places here');
        }
      }
      if (idle.length > 0) {
        await inventory.refresh();
        this.options.onChange();
      }
    } finally {
      this.deleting = false;
    }
  }

  private syncPinned(catalogPinned: Set<string>): void {
    const { pinned, configPinned } = this.options;
    for (let i = pinned.length - 1; i >= 0; i--) {
      const model = pinned[i]!;
      if (!configPinned.includes(model) && !catalogPinned.has(model)) pinned.splice(i, 1);
    }
    for (const model of catalogPinned) if (!pinned.includes(model)) pinned.push(model);
  }

  /** Disk for models: the budget when set (less what the models take), else the models directory's file system when local. */
  private async readDisk(): Promise<void> {
    // A build under two names (a rollout copy) is stored once.
    const sizes = new Map(this.options.inventory.all().map((model) => [normalizeDigest(model.digest), model.sizeBytes]));
    const used = [...sizes.values()].reduce((sum, size) => sum + size, 0);
    const budget = this.options.diskBudgetBytes;
    let fs: { total: number; free: number } | undefined;
    if (this.options.modelsDir) {
      try {
        const stats = await statfs(this.options.modelsDir);
        fs = { total: stats.blocks * stats.bsize, free: stats.bavail * stats.bsize };
      } catch {
        fs = undefined;
      }
    }
    if (budget > 0) {
      const free = Math.max(0, budget - used);
      this.lastDisk = { total_bytes: budget, used_bytes: used, free_bytes: fs ? Math.min(free, fs.free) : free };
    } else if (fs) {
      this.lastDisk = { total_bytes: fs.total, used_bytes: used, free_bytes: fs.free };
    } else {
      this.lastDisk = { total_bytes: 0, used_bytes: used };
    }
  }
}
