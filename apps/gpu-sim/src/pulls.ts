/**
 * Downloads for `/api/pull`: a simulated registry (the config's `registry`, plus `newer`
 * builds), a download timed by size and `pull_bytes_per_s` (times `time_scale`), the disk
 * budget, and faults tests inject (`/sim/faults/pull`).
 *
 * As in Ollama, concurrent pulls of one build share one download, and a client that goes
 * away does not stop it: the model lands on disk anyway.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { diskUsedBytes, type SimContext } from './sim-context.js';
import type { ModelSpec } from './model-spec.js';
import { SimError } from './sim-error.js';

/** One progress report: bytes so far of `total`. */
export interface PullProgress {
  completed: number;
  total: number;
}

export type PullFaultKind = 'drop' | 'digest_mismatch';

interface PullFault {
  kind: PullFaultKind;
  afterFraction: number;
  times: number;
}

/** How a download ended for its followers: installed, refused (an error line), or dropped (the connection cut). */
export type PullOutcome = { kind: 'success' } | { kind: 'error'; message: string } | { kind: 'dropped' };

/** A download in progress, followed by every client pulling the same build. */
export class Download extends EventEmitter<{ progress: [PullProgress] }> {
  completed = 0;
  constructor(
    readonly model: ModelSpec,
    readonly done: Promise<PullOutcome>,
  ) {
    super();
    this.setMaxListeners(0);
  }
}

/** Simulated time between progress lines. */
const PROGRESS_STEP_MS = 100;

export class Pulls {
  private readonly downloads = new Map<string, Download>();
  private readonly faults = new Map<string, PullFault>();

  constructor(private readonly ctx: SimContext) {}

  /**
   * The build `name` (optionally `name@sha256:<hex>`) refers to in the registry; a SimError
   * `model_not_found` with Ollama's message when there is none.
   */
  resolve(name: string): ModelSpec {
    const at = name.indexOf('@');
    const base = at === -1 ? name : name.slice(0, at);
    const wanted =
      at === -1
        ? undefined
        : name
            .slice(at + 1)
            .replace(/^sha256:/, '')
            .toLowerCase();
    const spec = this.ctx.registry.get(base) ?? this.ctx.registry.get(`${base}:latest`);
    if (!spec) throw new SimError('model_not_found', 'pull model manifest: file does not exist');
    if (wanted === undefined || wanted === spec.digest) return spec;
    if (spec.newer && wanted === spec.newer.digest) return { ...spec, digest: spec.newer.digest, size_bytes: spec.newer.size_bytes ?? spec.size_bytes };
    throw new SimError('model_not_found', 'pull model manifest: file does not exist');
  }

  /** Joins the download of this build, or starts it. */
  start(model: ModelSpec): Download {
    const key = `${model.name}@${model.digest}`;
    const running = this.downloads.get(key);
    if (running) return running;
    let download!: Download;
    const done = this.run(model, () => download).finally(() => this.downloads.delete(key));
    download = new Download(model, done);
    this.downloads.set(key, download);
    return download;
  }

  /** The next `times` pulls of `model` fail that way (tests). */
  injectFault(model: string, kind: PullFaultKind, afterFraction = 0.5, times = 1): void {
    this.faults.set(model, { kind, afterFraction, times });
  }

  clearFaults(): void {
    this.faults.clear();
  }

  private takeFault(model: string): PullFault | undefined {
    const fault = this.faults.get(model);
    if (!fault) return undefined;
    if (--fault.times <= 0) this.faults.delete(model);
    return fault;
  }

  private async run(model: ModelSpec, download: () => Download): Promise<PullOutcome> {
    const { ctx } = this;
    const { counters, config } = ctx;
    counters.pullsStarted++;
    // Let the caller subscribe before the first report.
    await Promise.resolve();
    const replaced = ctx.catalog.get(model.name);
    const budget = config.disk_bytes;
    const usedAfter = diskUsedBytes(ctx.catalog) - (replaced?.size_bytes ?? 0) + model.size_bytes;
    if (budget > 0 && usedAfter > budget) {
      counters.pullsFailed++;
      return { kind: 'error', message: `write /root/.ollama/models/blobs/sha256-${model.digest}-partial: no space left on device` };
    }
    const fault = this.takeFault(model.name);
    const total = model.size_bytes;
    const durationMs = (total / config.pull_bytes_per_s) * 1_000;
    const steps = Math.max(1, Math.ceil(durationMs / PROGRESS_STEP_MS));
    for (let step = 1; step <= steps; step++) {
      if (ctx.shutdown.aborted) {
        counters.pullsFailed++;
        return { kind: 'dropped' };
      }
      const completed = step === steps ? total : Math.floor((total * step) / steps);
      if (fault?.kind === 'drop' && completed >= total * fault.afterFraction) {
        counters.pullsFailed++;
        return { kind: 'dropped' };
      }
      const wait = (durationMs / steps) * config.time_scale;
      if (wait > 0) await sleep(wait, undefined, { ref: false });
      counters.pullBytes += completed - download().completed;
      download().completed = completed;
      download().emit('progress', { completed, total });
    }
    // A registry serving the wrong build: what lands is not what was asked for.
    const digest = fault?.kind === 'digest_mismatch' ? createHash('sha256').update(model.digest).digest('hex') : model.digest;
    ctx.catalog.set(model.name, { ...model, digest, modified_at: new Date().toISOString() });
    if (replaced && replaced.digest !== digest) {
      // The old build lives on under a copy's name (`/api/copy`): its warm runner goes with it.
      const copy = [...ctx.catalog.values()].find((other) => other.name !== model.name && other.digest === replaced.digest);
      if (copy) ctx.scheduler.rebind(model.name, copy);
    }
    counters.pullsCompleted++;
    ctx.logger.info({ model: model.name, digest: digest.slice(0, 12), bytes: total }, 'model pulled');
    return { kind: 'success' };
  }
}
