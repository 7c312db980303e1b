/**
 * The simulated GPU: which models are resident, how much VRAM they hold, who is using them,
 * and who is waiting. It mirrors Ollama's scheduler (server/sched.go) closely enough that an
 * agent written against Ollama meets the same behaviour here:
 *
 * - One runner per model. A runner is `loading` for a time proportional to the model's size,
 *   then `ready`; it serves up to `num_parallel` requests at once — an embedding model one, as
 *   Ollama loads those with a single parallel sequence (and so a KV cache for one).
 * - Waiting requests form one FIFO queue of at most `max_queue` entries (503 beyond). A request
 *   for a resident model whose slots are all taken waits for a slot without holding up the
 *   requests behind it; a request that needs a load it cannot start yet blocks everything behind
 *   it, as Ollama's one-at-a-time pending loop does, so a big model waiting for memory is not
 *   starved by a steady stream of requests for the models it has to evict.
 * - A load that does not fit evicts idle runners, soonest expiry first (then by name); busy
 *   runners are never evicted — the load waits until enough of them go idle. A model that could
 *   not fit even on an empty GPU fails at once (Ollama's "requires more system memory").
 * - Reserved VRAM (resident plus loading runners) never exceeds the budget.
 * - keep_alive: every request sets its runner's keep-alive; the expiry clock runs while the
 *   runner is idle and unloads it when it runs out; 0 unloads as soon as it is idle; forever
 *   never. A request with another num_ctx reloads the model once it is idle, as Ollama does.
 */
import type { Logger } from 'pino';
import { formatGiB, GO_MAX_DURATION_MS } from '@switchyard/protocol';
import { setLongTimeout, type LongTimeout } from './long-timeout.js';
import type { ModelSpec } from './model-spec.js';
import type { SimCounters } from './sim-counters.js';
import { SimError } from './sim-error.js';
import { estimateVramBytes } from './vram-estimate.js';

export interface SchedulerOptions {
  vramBytes: number;
  vramOverheadBytes: number;
  numParallel: number;
  maxQueue: number;
  /** 0 = no limit besides VRAM. */
  maxLoadedModels: number;
  timeScale: number;
  loadBytesPerS: number;
  loadOverheadMs: number;
  counters: SimCounters;
  logger: Logger;
}

export interface AcquireRequest {
  model: ModelSpec;
  /** Context size the runner must have (already clamped to the model's context length). */
  numCtx: number;
  /** keep_alive in ms; Infinity = forever, 0 = unload once idle. */
  keepAliveMs: number;
  /** false for load-only requests: they wait for the model but take no slot. */
  slot: boolean;
  signal: AbortSignal;
}

export interface Lease {
  readonly model: ModelSpec;
  /** Whether this request waited for the model to load. */
  readonly coldStart: boolean;
  /** Gives the slot back; safe to call more than once. */
  release(): void;
}

interface Runner {
  model: ModelSpec;
  state: 'loading' | 'ready';
  vramBytes: number;
  numCtx: number;
  inFlight: number;
  keepAliveMs: number;
  /** ms since epoch; for keep-alive "forever" the far-future instant Ollama reports; Infinity while loading. */
  expiresAt: number;
  loadedAt: number | undefined;
  expiry: LongTimeout | undefined;
  loadTimer: NodeJS.Timeout | undefined;
}

/** A runner as routes and stats see it: its state without the timers. */
export type RunnerView = Omit<Runner, 'expiry' | 'loadTimer'> & { name: string };

interface Pending {
  request: AcquireRequest;
  resolve: (lease: Lease) => void;
  reject: (error: unknown) => void;
  detach: () => void;
  coldStart: boolean;
}

type UnloadReason = 'expired' | 'evicted' | 'reload';

function compareExpiry(a: Runner, b: Runner): number {
  if (a.expiresAt !== b.expiresAt) return a.expiresAt < b.expiresAt ? -1 : 1;
  return a.model.name < b.model.name ? -1 : a.model.name > b.model.name ? 1 : 0;
}

export class Scheduler {
  private readonly runners = new Map<string, Runner>();
  private readonly pending: Pending[] = [];
  private pumping = false;
  private pumpAgain = false;
  private closed = false;
  private readonly log: Logger;

  constructor(private readonly options: SchedulerOptions) {
    this.log = options.logger;
  }

  /** Requests a runner of this model serves at once: `num_parallel`, or 1 for an embedding model. */
  parallelFor(model: ModelSpec): number {
    return model.embedding ? 1 : this.options.numParallel;
  }

  /** VRAM a model would take with this context size. */
  vramNeed(model: ModelSpec, numCtx: number): number {
    return estimateVramBytes(model, {
      numCtx,
      numParallel: this.parallelFor(model),
      overheadBytes: this.options.vramOverheadBytes,
    });
  }

  /** Nominal (unscaled) load time of a model. */
  loadMs(model: ModelSpec): number {
    return this.options.loadOverheadMs + (model.size_bytes / this.options.loadBytesPerS) * 1_000;
  }

  get vramUsedBytes(): number {
    let used = 0;
    for (const runner of this.runners.values()) used += runner.vramBytes;
    return used;
  }

  get queuedCount(): number {
    return this.pending.length;
  }

  get runningCount(): number {
    let running = 0;
    for (const runner of this.runners.values()) running += runner.inFlight;
    return running;
  }

  /** Runners, resident and loading, longest-lived first (the order of Ollama's /api/ps). */
  runnersView(): RunnerView[] {
    return [...this.runners.values()]
      .map((runner) => ({
        name: runner.model.name,
        model: runner.model,
        state: runner.state,
        vramBytes: runner.vramBytes,
        numCtx: runner.numCtx,
        inFlight: runner.inFlight,
        keepAliveMs: runner.keepAliveMs,
        expiresAt: runner.expiresAt,
        loadedAt: runner.loadedAt,
      }))
      .sort((a, b) => (a.expiresAt === b.expiresAt ? a.name.localeCompare(b.name) : a.expiresAt > b.expiresAt ? -1 : 1));
  }

  /**
   * Waits until the model is loaded (and, for `slot: true`, a slot is free) and returns a
   * lease. Rejects with SimError (too large, queue full, shutting down) or with the signal's
   * AbortError when the caller gives up.
   */
  acquire(request: AcquireRequest): Promise<Lease> {
    if (this.closed) return Promise.reject(new SimError('shutting_down', 'server is shutting down'));
    if (request.signal.aborted) return Promise.reject(request.signal.reason);
    const need = this.vramNeed(request.model, request.numCtx);
    if (need > this.options.vramBytes) {
      return Promise.reject(
        new SimError('model_too_large', `model requires more system memory (${formatGiB(need)} GiB) than is available (${formatGiB(this.options.vramBytes)} GiB)`),
      );
    }
    if (this.pending.length >= this.options.maxQueue) {
      this.options.counters.rejectedTotal++;
      return Promise.reject(new SimError('queue_full', 'server busy, please try again.  maximum pending requests exceeded'));
    }
    return new Promise<Lease>((resolve, reject) => {
      const onAbort = () => {
        const index = this.pending.indexOf(entry);
        if (index === -1) return;
        this.pending.splice(index, 1);
        reject(request.signal.reason);
        // The aborted request may have been the one blocking the loads behind it.
        this.pump();
      };
      const entry: Pending = {
        request,
        resolve,
        reject,
        detach: () => request.signal.removeEventListener('abort', onAbort),
        coldStart: false,
      };
      request.signal.addEventListener('abort', onAbort, { once: true });
      this.pending.push(entry);
      this.pump();
    });
  }

  /**
   * keep_alive 0 on a load-only request: unload now if idle, else as soon as it goes idle.
   * Returns whether the model was resident (or loading).
   */
  expire(modelName: string): boolean {
    const runner = this.runners.get(modelName);
    if (!runner) return false;
    runner.keepAliveMs = 0;
    this.settleIdle(runner);
    return true;
  }

  /**
   * Moves a loaded runner to another name of the same build (Ollama keys runners by the
   * model's blob, so after `ollama cp M M-old` and a pull of a new M, `M-old` is still the
   * warm runner and `M` loads afresh). Jobs running on it carry on.
   */
  rebind(fromName: string, to: ModelSpec): boolean {
    const runner = this.runners.get(fromName);
    if (!runner || this.runners.has(to.name)) return false;
    this.runners.delete(fromName);
    runner.model = to;
    this.runners.set(to.name, runner);
    return true;
  }

  /** Rejects everything waiting, cancels every timer and forgets all runners. */
  close(): void {
    this.closed = true;
    for (const entry of this.pending.splice(0)) {
      entry.detach();
      entry.reject(new SimError('shutting_down', 'server is shutting down'));
    }
    for (const runner of this.runners.values()) {
      runner.expiry?.cancel();
      if (runner.loadTimer) clearTimeout(runner.loadTimer);
    }
    this.runners.clear();
  }

  /** Re-examines the queue; re-entrant calls (unload → pump) fold into one more pass. */
  private pump(): void {
    if (this.closed) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        this.schedulePass();
      } while (this.pumpAgain && !this.closed);
    } finally {
      this.pumping = false;
    }
  }

  private schedulePass(): void {
    for (const entry of [...this.pending]) {
      const { model, numCtx, slot } = entry.request;
      // Ollama keys runners by blob: a copy of a build (`/api/copy`) is served by the runner
      // another of its names loaded.
      let runner = this.runners.get(model.name) ?? [...this.runners.values()].find((other) => other.model.digest === model.digest && other.numCtx === numCtx);
      if (runner && runner.numCtx === numCtx) {
        if (runner.state === 'loading') {
          entry.coldStart = true;
          continue;
        }
        if (!slot || runner.inFlight < this.parallelFor(model)) this.grant(entry, runner);
        continue; // waits for a slot; the requests behind it are still looked at
      }
      if (runner) {
        // Loaded with another context size: Ollama reloads it, once nobody uses it.
        if (runner.state !== 'ready' || runner.inFlight > 0) return;
        this.unload(runner, 'reload');
        runner = undefined;
      }
      const need = this.vramNeed(model, numCtx);
      if (!this.makeRoom(need)) return; // head-of-line: loads behind this one wait too
      this.startLoad(entry, need);
    }
  }

  /** Frees enough VRAM (and a model slot) for `need` by evicting idle runners, or reports it cannot yet. */
  private makeRoom(need: number): boolean {
    const limit = this.options.maxLoadedModels;
    let free = this.options.vramBytes - this.vramUsedBytes;
    let count = this.runners.size;
    const fits = () => need <= free && (limit === 0 || count < limit);
    if (fits()) return true;
    const idle = [...this.runners.values()].filter((runner) => runner.state === 'ready' && runner.inFlight === 0).sort(compareExpiry);
    const victims: Runner[] = [];
    for (const runner of idle) {
      if (fits()) break;
      victims.push(runner);
      free += runner.vramBytes;
      count--;
    }
    if (!fits()) return false;
    for (const victim of victims) this.unload(victim, 'evicted');
    return true;
  }

  private startLoad(entry: Pending, need: number): void {
    const { model, numCtx, keepAliveMs } = entry.request;
    const runner: Runner = {
      model,
      state: 'loading',
      vramBytes: need,
      numCtx,
      inFlight: 0,
      keepAliveMs,
      expiresAt: Number.POSITIVE_INFINITY,
      loadedAt: undefined,
      expiry: undefined,
      loadTimer: undefined,
    };
    this.runners.set(model.name, runner);
    entry.coldStart = true;
    const counters = this.options.counters;
    counters.loadsTotal++;
    const used = this.vramUsedBytes;
    if (used > this.options.vramBytes) {
      // Unreachable by construction; shout if it ever happens rather than hide it.
      this.log.error({ used, budget: this.options.vramBytes }, 'VRAM budget exceeded');
    }
    counters.vramHighWaterBytes = Math.max(counters.vramHighWaterBytes, used);
    const delayMs = this.loadMs(model) * this.options.timeScale;
    this.log.debug({ model: model.name, vram_bytes: need, num_ctx: numCtx, delay_ms: delayMs }, 'loading model');
    const loadStarted = performance.now();
    const finishLoad = () => {
      // Node timers can fire a fraction of a millisecond early by the monotonic clock the
      // routes measure durations with; a load must never report less than its simulated time.
      const remaining = delayMs - (performance.now() - loadStarted);
      if (remaining > 0) {
        runner.loadTimer = setTimeout(finishLoad, Math.ceil(remaining));
        return;
      }
      runner.loadTimer = undefined;
      if (this.runners.get(model.name) !== runner) return;
      runner.state = 'ready';
      runner.loadedAt = Date.now();
      runner.expiresAt = this.expiryFrom(runner.loadedAt, runner.keepAliveMs);
      this.log.info({ model: model.name, vram_bytes: need }, 'model loaded');
      this.pump();
      this.settleIdle(runner);
    };
    runner.loadTimer = setTimeout(finishLoad, delayMs);
  }

  private grant(entry: Pending, runner: Runner): void {
    const index = this.pending.indexOf(entry);
    if (index !== -1) this.pending.splice(index, 1);
    entry.detach();
    runner.keepAliveMs = entry.request.keepAliveMs;
    runner.expiry?.cancel();
    runner.expiry = undefined;
    runner.expiresAt = this.expiryFrom(Date.now(), runner.keepAliveMs);
    if (!entry.request.slot) {
      entry.resolve({ model: runner.model, coldStart: entry.coldStart, release: () => undefined });
      this.settleIdle(runner);
      return;
    }
    runner.inFlight++;
    let released = false;
    entry.resolve({
      model: runner.model,
      coldStart: entry.coldStart,
      release: () => {
        if (released) return;
        released = true;
        if (this.runners.get(runner.model.name) !== runner) return;
        runner.inFlight--;
        // Hand the slot to a waiting request before deciding the runner is idle.
        this.pump();
        this.settleIdle(runner);
      },
    });
  }

  /** An idle runner starts its expiry clock, or goes at once when keep_alive is 0. */
  private settleIdle(runner: Runner): void {
    if (this.closed || this.runners.get(runner.model.name) !== runner) return;
    if (runner.state !== 'ready' || runner.inFlight > 0) return;
    runner.expiry?.cancel();
    runner.expiry = undefined;
    if (runner.keepAliveMs <= 0) {
      this.unload(runner, 'expired');
      this.pump();
      return;
    }
    const now = Date.now();
    runner.expiresAt = this.expiryFrom(now, runner.keepAliveMs);
    if (runner.keepAliveMs === Number.POSITIVE_INFINITY) return;
    runner.expiry = setLongTimeout(runner.keepAliveMs, () => {
      runner.expiry = undefined;
      if (this.runners.get(runner.model.name) !== runner || runner.inFlight > 0) return;
      this.unload(runner, 'expired');
      this.pump();
    });
  }

  private unload(runner: Runner, reason: UnloadReason): void {
    runner.expiry?.cancel();
    runner.expiry = undefined;
    if (runner.loadTimer) clearTimeout(runner.loadTimer);
    if (this.runners.get(runner.model.name) === runner) this.runners.delete(runner.model.name);
    const counters = this.options.counters;
    counters.unloadsTotal++;
    if (reason === 'evicted') counters.evictionsTotal++;
    this.log.info({ model: runner.model.name, reason, vram_bytes: runner.vramBytes }, 'model unloaded');
  }

  private expiryFrom(now: number, keepAliveMs: number): number {
    return keepAliveMs === Number.POSITIVE_INFINITY ? now + GO_MAX_DURATION_MS : now + keepAliveMs;
  }
}
