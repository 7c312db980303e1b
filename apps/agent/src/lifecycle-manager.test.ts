import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RedisConnection } from '@switchyard/redis';
import { pino, type Logger } from 'pino';
import { BackendError, type Backend, type BackendLoadedModel, type BackendModel, type BackendModelInfo, type EmbedResponse, type GenerateChunk } from '@switchyard/backends';
import { redisKeys, type AgentHeartbeat, type RedisKeys } from '@switchyard/protocol';
import { FleetRegistry, QueueRegistry, closeRedis, createRedis } from '@switchyard/redis';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { DemandTracker } from './demand-tracker.js';
import { FleetState } from './fleet-state.js';
import { LifecycleManager, type LifecycleOptions } from './lifecycle-manager.js';
import { ModelInventory } from './model-inventory.js';

const SELF = 'agent-m';
const GB = 1e9;
/** Every model weighs 6 GB on disk: estimated at ~8 GB of VRAM, measured (when resident) at 8 GB; a load takes ~3 s at 2 GB/s. */
const SIZE = 6 * GB;
const RESIDENT_BYTES = 8 * GB;
const VRAM = 20 * GB;
const MIN_RESIDENCY_MS = 60_000;
const IDLE_UNLOAD_MS = 600_000;
const EXTRA_COPY_IDLE_MS = 60_000;
const DRAIN_FOR_COLD_AFTER_MS = 30_000;
const DRAIN_TIMEOUT_MS = 600_000;
const UNFIT_COOLDOWN_MS = 60_000;
const silent = pino({ level: 'silent' });

const digestOf = (name: string) => `sha256:${Buffer.from(name).toString('hex').padEnd(64, '0').slice(0, 64)}`;

/**
 * The backend of the node, in process: models on disk, which are resident (at
 * `RESIDENT_BYTES` each), and loads the test can hold (`holdLoads`) or fail (`failLoads`).
 */
class FakeBackend implements Backend {
  readonly kind = 'ollama' as const;
  readonly url = 'http://fake-backend';
  readonly loads: string[] = [];
  readonly unloads: string[] = [];
  readonly resident = new Set<string>();
  failLoads: BackendError | undefined;
  /** Called as a load runs: the test's load clock moves by how long it pretends the load took. */
  onLoad: (model: string) => void = () => undefined;
  private hold: Promise<void> | undefined;
  private releaseHold: (() => void) | undefined;

  constructor(private readonly models: Array<{ name: string; size?: number }>) {}

  holdLoads(): () => void {
    this.hold = new Promise((resolve) => (this.releaseHold = resolve));
    return () => {
      this.hold = undefined;
      this.releaseHold?.();
    };
  }

  private entry(name: string): BackendModel {
    const model = this.models.find((candidate) => candidate.name === name)!;
    return { name, digest: digestOf(name), size_bytes: model.size ?? SIZE };
  }
  async version(): Promise<string> {
    return 'fake';
  }
  async listModels(): Promise<BackendModel[]> {
    return this.models.map((model) => this.entry(model.name));
  }
  async listLoaded(): Promise<BackendLoadedModel[]> {
    return [...this.resident].map((name) => ({ ...this.entry(name), vram_bytes: RESIDENT_BYTES }));
  }
  async show(): Promise<BackendModelInfo> {
    return { raw: {} };
  }
  embed(): Promise<EmbedResponse> {
    return Promise.reject(new Error('not used'));
  }

  async *generate(): AsyncIterable<GenerateChunk> {
    throw new Error('the lifecycle manager does not generate');
  }
  async load(model: string): Promise<void> {
    this.loads.push(model);
    this.onLoad(model);
    await this.hold;
    if (this.failLoads) throw this.failLoads;
    this.resident.add(model);
  }
  async unload(model: string): Promise<void> {
    this.unloads.push(model);
    this.resident.delete(model);
  }
  async close(): Promise<void> {}
}

/** A ready peer's heartbeat, with the models it holds loaded (and what runs on them). */
function peer(
  id: string,
  loaded: Array<{ name: string; inFlight?: number }>,
  options: { slots?: number; freeBytes?: number; available?: string[]; loadBytesPerS?: number } = {},
): AgentHeartbeat {
  const inFlight = loaded.reduce((sum, model) => sum + (model.inFlight ?? 0), 0);
  return {
    id,
    version: 'test',
    state: 'ready',
    backend: { kind: 'ollama', url: 'http://peer' },
    gpus: [{ index: 0, name: 'gpu', vram_total_bytes: VRAM, vram_used_bytes: 0 }],
    slots: options.slots ?? 1,
    in_flight: inFlight,
    models_loaded: loaded.map((model) => ({
      name: model.name,
      digest: digestOf(model.name),
      vram_bytes: RESIDENT_BYTES,
      in_flight: model.inFlight ?? 0,
      last_used_at: Date.now(),
      // A job there takes a tenth of a second: its copies are not overloaded.
      service_ms: 100,
    })),
    models_available: (options.available ?? []).map((name) => ({ name, digest: digestOf(name), size_bytes: SIZE, fits: true })),
    vram: { total_bytes: VRAM, used_bytes: VRAM - (options.freeBytes ?? 0), free_bytes: options.freeBytes ?? 0 },
    ...(options.loadBytesPerS !== undefined && { load_bytes_per_s: options.loadBytesPerS }),
    started_at: Date.now(),
    updated_at: Date.now(),
  };
}

describe('LifecycleManager on a real Redis with an in-process backend, driven by its own clock', () => {
  let redis: RedisConnection;
  const closers: Array<() => Promise<unknown>> = [];

  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterAll(async () => {
    await closeRedis(redis);
  });

  /**
   * One node under a fresh prefix: its backend (the models named, those in `resident`
   * loaded already), inventory, fleet view and queues, and a LifecycleManager whose clock is
   * the real one plus `clock.offset` (the inventory's load and use times stay real, so only
   * moving forward is meaningful).
   */
  async function setup(models: Array<{ name: string; size?: number }>, options: { resident?: string[]; pinned?: string[]; slots?: number; logger?: Logger } = {}) {
    const keys: RedisKeys = redisKeys(uniquePrefix('lifecycle'));
    const backend = new FakeBackend(models);
    for (const name of options.resident ?? []) backend.resident.add(name);
    const inventory = new ModelInventory(backend, silent, { numCtx: 4096, parallel: 1 });
    await inventory.refresh();
    const registry = new FleetRegistry(redis, keys);
    // Re-read on every round: the test changes the fleet between rounds.
    const fleet = new FleetState(redis, keys, registry, SELF, silent, 0);
    const queues = new QueueRegistry(redis, keys);
    closers.push(() => queues.close());
    const demand = new DemandTracker(30_000);
    const clock = { offset: 0 };
    /** The clock loads are timed by: each load takes `perLoadMs` on it (0: too quick to measure, as a resident model's). */
    const loadClock = { now: 0, perLoadMs: 0 };
    backend.onLoad = () => void (loadClock.now += loadClock.perLoadMs);
    const running = new Map<string, number>();
    const warmed: string[] = [];
    /** Lease holder of each heartbeat published before a lease release: peers must see the copy first. */
    const leaseAtHeartbeat: Array<string | null> = [];
    let lastWarmed = '';
    const lifecycleOptions: LifecycleOptions = {
      agentId: SELF,
      backend,
      inventory,
      fleet,
      queues,
      demand,
      logger: options.logger ?? silent,
      tuning: {
        minResidencyMs: MIN_RESIDENCY_MS,
        idleUnloadMs: IDLE_UNLOAD_MS,
        extraCopyIdleMs: EXTRA_COPY_IDLE_MS,
        maxLoaded: 0,
        recencyTauMs: 120_000,
        demandHorizonMs: 60_000,
        displacementMargin: 2,
      },
      displacementAgingMs: 10_000,
      drainForColdAfterMs: DRAIN_FOR_COLD_AFTER_MS,
      drainTimeoutMs: DRAIN_TIMEOUT_MS,
      minExpectedLoadMs: 250,
      unfitCooldownMs: UNFIT_COOLDOWN_MS,
      vramTotalBytes: VRAM,
      parallelPerCopy: 1,
      pinned: options.pinned ?? [],
      keepAlive: -1,
      initialLoadBytesPerS: 2 * GB,
      queueKeys: (model) => [model],
      runningOf: (model) => running.get(model) ?? 0,
      onWarm: (model) => void warmed.push(model),
      publishHeartbeat: async () => {
        leaseAtHeartbeat.push(await redis.get(keys.warmLease(lastWarmed)));
      },
      // Every round reads every cold model's queues: nothing here depends on announcements.
      fullScanMs: 0,
      now: () => Date.now() + clock.offset,
      loadClock: () => loadClock.now,
      ...(options.slots !== undefined && { slots: options.slots }),
    };
    const lifecycle = new LifecycleManager(lifecycleOptions);
    closers.push(() => lifecycle.stop());

    let counter = 0;
    /** A waiting job; `waitedMs` back-dates its submission against the manager's clock. */
    const addJob = async (model: string, waitedMs?: number) => {
      const jobId = `${model.replace(/[^A-Za-z0-9]/g, '_')}-${++counter}`;
      await queues.get(model).add('generate', {} as never, { jobId, ...(waitedMs !== undefined && { timestamp: Date.now() + clock.offset - waitedMs }) });
    };
    /** One round, and the load it started (if any) to its end: `onWarm` is called after every load, failed or not. */
    const round = async () => {
      const warmsBefore = warmed.length;
      const loadsBefore = backend.loads.length;
      await lifecycle.tick();
      if (lifecycle.loadingModel === undefined && backend.loads.length === loadsBefore) return;
      lastWarmed = lifecycle.loadingModel ?? backend.loads.at(-1)!;
      await expect.poll(() => warmed.length).toBeGreaterThan(warmsBefore);
    };
    /** One round that starts a load and leaves it under way (the backend holds it); the function returned ends it. */
    const roundHoldingLoad = async () => {
      const release = backend.holdLoads();
      const warmsBefore = warmed.length;
      const loadsBefore = backend.loads.length;
      await lifecycle.tick();
      await expect.poll(() => backend.loads.length).toBeGreaterThan(loadsBefore);
      lastWarmed = lifecycle.loadingModel!;
      return async () => {
        release();
        await expect.poll(() => warmed.length).toBeGreaterThan(warmsBefore);
      };
    };
    const publishPeer = (heartbeat: AgentHeartbeat) => registry.publish(heartbeat, 60_000);
    return { keys, backend, inventory, lifecycle, demand, clock, loadClock, running, warmed, leaseAtHeartbeat, addJob, round, roundHoldingLoad, publishPeer };
  }

  it('warms a cold model jobs wait for: reserves its VRAM and holds the warm lease during the load, publishes its heartbeat before releasing the lease', async () => {
    const { keys, backend, inventory, lifecycle, warmed, leaseAtHeartbeat, addJob, roundHoldingLoad, round } = await setup([{ name: 'a:1b' }]);
    await round();
    expect(backend.loads).toEqual([]);

    await addJob('a:1b');
    const finish = await roundHoldingLoad();
    expect(backend.loads).toEqual(['a:1b']);
    expect(lifecycle.loadingModel).toBe('a:1b');
    // What the heartbeat reports as the load under way, against the load time expected here.
    expect(lifecycle.loadProgress()).toEqual({ model: 'a:1b', started_at: expect.any(Number), expected_ms: Math.round(lifecycle.expectedLoadMs(inventory.get('a:1b')!)) });
    expect(lifecycle.usedBytes()).toBe(lifecycle.needBytes(inventory.get('a:1b')!).bytes);
    expect(await redis.get(keys.warmLease('a:1b'))).toBe(SELF);
    // One load at a time: a round during the load starts nothing.
    await lifecycle.tick();
    expect(backend.loads).toEqual(['a:1b']);

    await finish();
    expect(warmed).toEqual(['a:1b']);
    expect(inventory.isLoaded('a:1b')).toBe(true);
    expect(lifecycle.loadingModel).toBeUndefined();
    expect(lifecycle.loadProgress()).toBeUndefined();
    expect(lifecycle.usedBytes()).toBe(RESIDENT_BYTES);
    expect(leaseAtHeartbeat).toEqual([SELF]);
    expect(await redis.get(keys.warmLease('a:1b'))).toBeNull();
    // The VRAM it measured is shared with the fleet on the next round.
    await round();
    expect(await redis.hget(keys.measuredVram, `a:1b@${digestOf('a:1b')}`)).toBe(String(RESIDENT_BYTES));
  });

  it('leaves a model to the agent holding its warm lease, and never warms one that cannot fit the node', async () => {
    const { keys, backend, addJob, round } = await setup([{ name: 'a:1b' }, { name: 'huge:70b', size: 40 * GB }]);
    await addJob('a:1b');
    await addJob('huge:70b');
    await redis.set(keys.warmLease('a:1b'), 'agent-other', 'PX', 60_000);
    await round();
    expect(backend.loads).toEqual([]);
    await redis.del(keys.warmLease('a:1b'));
    await round();
    expect(backend.loads).toEqual(['a:1b']);
  });

  it('loads beside a peer holding the warm lease once more jobs wait than the copy loading can take, into free VRAM only', async () => {
    const { keys, backend, addJob, round, roundHoldingLoad } = await setup([{ name: 'a:1b' }]);
    // One slot a copy (this setup's parallelPerCopy): one waiting job is the peer's load's.
    await redis.set(keys.warmLease('a:1b'), 'agent-other', 'PX', 60_000);
    await addJob('a:1b');
    await round();
    expect(backend.loads).toEqual([]);
    // A second job would wait for a second load after the first: this node loads beside it.
    await addJob('a:1b');
    const finish = await roundHoldingLoad();
    expect(backend.loads).toEqual(['a:1b']);
    expect(await redis.get(keys.warmLease('a:1b', 1))).toBe(SELF);
    expect(await redis.get(keys.warmLease('a:1b'))).toBe('agent-other');
    await finish();
    expect(await redis.get(keys.warmLease('a:1b', 1))).toBeNull();

    // Free VRAM that a model asked for lately would need is not taken for a load beside another.
    const wanted = await setup([{ name: 'a:1b' }, { name: 'big:14b', size: 14 * GB }]);
    await redis.set(wanted.keys.warmLease('a:1b'), 'agent-other', 'PX', 60_000);
    wanted.demand.record('big:14b');
    await wanted.addJob('a:1b');
    await wanted.addJob('a:1b');
    await wanted.round();
    // The room goes to the model asked for (a refill), not to a second copy of a:1b.
    expect(wanted.backend.loads).toEqual(['big:14b']);

    // With the node full of idle models, a load beside another would evict one: it waits.
    const full = await setup([{ name: 'a:1b' }, { name: 'b:1b' }, { name: 'c:1b' }], { resident: ['b:1b', 'c:1b'] });
    await redis.set(full.keys.warmLease('a:1b'), 'agent-other', 'PX', 60_000);
    full.clock.offset = MIN_RESIDENCY_MS + 60_000;
    await full.addJob('a:1b');
    await full.addJob('a:1b');
    await full.round();
    expect(full.backend.loads).toEqual([]);
    expect(full.backend.unloads).toEqual([]);
  });

  it('runs a round at once when work is announced for a model cold here', async () => {
    const { backend, lifecycle, addJob } = await setup([{ name: 'a:1b' }]);
    await addJob('a:1b');
    lifecycle.workAnnounced('a:1b');
    await expect.poll(() => backend.loads).toEqual(['a:1b']);
  });

  it('leaves a job to a peer copy with a free slot; warms a second copy once the copies are busy and the job has waited longer than a load', async () => {
    const { backend, clock, addJob, round, publishPeer } = await setup([{ name: 'a:1b' }]);
    await addJob('a:1b');
    await publishPeer(peer('agent-p', [{ name: 'a:1b' }]));
    clock.offset = 60_000;
    await round();
    expect(backend.loads).toEqual([]);

    await publishPeer(peer('agent-p', [{ name: 'a:1b', inFlight: 1 }]));
    // Waited less than a load (~3 s): the busy copy will get to it sooner than a new one.
    clock.offset = 1_000;
    await round();
    expect(backend.loads).toEqual([]);
    clock.offset = 5_000;
    await round();
    expect(backend.loads).toEqual(['a:1b']);
  });

  it('loads a pinned model without waiting work or a lease, and never unloads it for idleness', async () => {
    const { keys, backend, inventory, clock, roundHoldingLoad, round } = await setup([{ name: 'p:1b' }], { pinned: ['p:1b'] });
    const finish = await roundHoldingLoad();
    expect(backend.loads).toEqual(['p:1b']);
    expect(await redis.get(keys.warmLease('p:1b'))).toBeNull();
    await finish();
    clock.offset = 10 * IDLE_UNLOAD_MS;
    await round();
    expect(inventory.isLoaded('p:1b')).toBe(true);
    expect(backend.unloads).toEqual([]);
  });

  it('unloads a model idle for the idle time, not sooner, and not while a job runs on it', async () => {
    const { backend, inventory, clock, running, round } = await setup([{ name: 'a:1b' }], { resident: ['a:1b'] });
    clock.offset = IDLE_UNLOAD_MS - 1_000;
    await round();
    expect(backend.unloads).toEqual([]);

    clock.offset = IDLE_UNLOAD_MS + 1_000;
    running.set('a:1b', 1);
    await round();
    expect(backend.unloads).toEqual([]);

    running.set('a:1b', 0);
    await round();
    expect(backend.unloads).toEqual(['a:1b']);
    expect(inventory.isLoaded('a:1b')).toBe(false);
  });

  it('scales back an idle extra copy, keeping the copy of the lowest agent id', async () => {
    const kept = await setup([{ name: 'a:1b' }], { resident: ['a:1b'] });
    // The peer sorts after this agent: this copy is the keeper.
    await kept.publishPeer(peer('agent-z', [{ name: 'a:1b' }]));
    kept.clock.offset = Math.max(EXTRA_COPY_IDLE_MS, MIN_RESIDENCY_MS) + 1_000;
    await kept.round();
    expect(kept.backend.unloads).toEqual([]);

    // The copy on the higher id goes once idle, when its VRAM is wanted: b:1b, asked for lately, does not fit beside a:1b and c:1b.
    const extra = await setup([{ name: 'a:1b' }, { name: 'b:1b' }, { name: 'c:1b' }], { resident: ['a:1b', 'c:1b'] });
    await extra.publishPeer(peer('agent-a', [{ name: 'a:1b' }]));
    extra.demand.record('b:1b');
    extra.clock.offset = EXTRA_COPY_IDLE_MS - 1_000;
    await extra.round();
    expect(extra.backend.unloads).toEqual([]);
    extra.clock.offset = Math.max(EXTRA_COPY_IDLE_MS, MIN_RESIDENCY_MS) + 1_000;
    await extra.round();
    expect(extra.backend.unloads).toEqual(['a:1b']);
  });

  it('keeps an idle extra copy while nothing wants its VRAM: the next burst finds it warm', async () => {
    const plenty = await setup([{ name: 'a:1b' }, { name: 'b:1b' }], { resident: ['a:1b'] });
    await plenty.publishPeer(peer('agent-a', [{ name: 'a:1b' }]));
    // b:1b was asked for, but fits in the VRAM free beside a:1b.
    plenty.demand.record('b:1b');
    plenty.clock.offset = Math.max(EXTRA_COPY_IDLE_MS, MIN_RESIDENCY_MS) + 1_000;
    await plenty.round();
    expect(plenty.backend.unloads).toEqual([]);
    // The idle rule still applies.
    plenty.clock.offset = IDLE_UNLOAD_MS + 1_000;
    await plenty.round();
    expect(plenty.backend.unloads).toContain('a:1b');
  });

  it('evicts an idle model past its minimum residency to warm a waiting one, and closes the victim to claims until the load ends', async () => {
    const { backend, inventory, lifecycle, clock, addJob, roundHoldingLoad, round } = await setup([{ name: 'a:1b' }, { name: 'b:1b' }, { name: 'c:1b' }], {
      resident: ['b:1b', 'c:1b'],
    });
    await addJob('a:1b');
    // Young residents are kept: the job has not waited long enough to starve.
    await round();
    expect(backend.loads).toEqual([]);

    clock.offset = MIN_RESIDENCY_MS + 60_000;
    const finish = await roundHoldingLoad();
    expect(backend.unloads).toHaveLength(1);
    const victim = backend.unloads[0]!;
    expect(['b:1b', 'c:1b']).toContain(victim);
    expect(backend.loads).toEqual(['a:1b']);
    expect(lifecycle.isDraining(victim)).toBe(true);
    await finish();
    expect(lifecycle.isDraining(victim)).toBe(false);
    expect(inventory.isLoaded('a:1b')).toBe(true);
    expect(inventory.isLoaded(victim)).toBe(false);
    await round();
    expect(backend.loads).toEqual(['a:1b']);
  });

  it('leaves a waiting job to a peer that can load it into free VRAM rather than evict here, until it has waited a load time', async () => {
    const { backend, clock, addJob, round, publishPeer } = await setup([{ name: 'a:1b' }, { name: 'b:1b' }, { name: 'c:1b' }], { resident: ['b:1b', 'c:1b'] });
    await publishPeer(peer('agent-p', [], { freeBytes: VRAM, available: ['a:1b'] }));
    clock.offset = MIN_RESIDENCY_MS + 60_000;
    // A load here takes ~3 s; the job has waited 1 s.
    await addJob('a:1b', 1_000);
    await round();
    expect(backend.unloads).toEqual([]);
    expect(backend.loads).toEqual([]);

    clock.offset += 5_000;
    await round();
    expect(backend.unloads).toHaveLength(1);
    expect(backend.loads).toEqual(['a:1b']);
  });

  it('drains busy models for a starving one: closes a victim to claims, evicts it once its jobs are done, then loads', async () => {
    const { keys, backend, inventory, lifecycle, clock, running, addJob, round } = await setup([{ name: 'a:1b' }, { name: 'b:1b' }, { name: 'c:1b' }], {
      resident: ['b:1b', 'c:1b'],
    });
    running.set('b:1b', 1);
    running.set('c:1b', 1);
    await addJob('a:1b');
    clock.offset = DRAIN_FOR_COLD_AFTER_MS - 1_000;
    await round();
    expect(['b:1b', 'c:1b'].some((name) => lifecycle.isDraining(name))).toBe(false);

    clock.offset = DRAIN_FOR_COLD_AFTER_MS + 1_000;
    await round();
    const victims = ['b:1b', 'c:1b'].filter((name) => lifecycle.isDraining(name));
    expect(victims).toHaveLength(1);
    const victim = victims[0]!;
    expect(await redis.get(keys.warmLease('a:1b'))).toBe(SELF);
    expect(backend.unloads).toEqual([]);
    // Still busy: the drain waits.
    await round();
    expect(backend.loads).toEqual([]);

    running.set(victim, 0);
    await round();
    expect(backend.unloads).toEqual([victim]);
    expect(backend.loads).toEqual(['a:1b']);
    expect(inventory.isLoaded('a:1b')).toBe(true);
    expect(lifecycle.isDraining(victim)).toBe(false);
    expect(await redis.get(keys.warmLease('a:1b'))).toBeNull();
  });

  it('gives up a drain whose victims stay busy past the drain timeout, releasing the lease and reopening the victim', async () => {
    const { keys, backend, lifecycle, clock, running, addJob, round } = await setup([{ name: 'a:1b' }, { name: 'b:1b' }, { name: 'c:1b' }], {
      resident: ['b:1b', 'c:1b'],
    });
    running.set('b:1b', 1);
    running.set('c:1b', 1);
    await addJob('a:1b');
    clock.offset = DRAIN_FOR_COLD_AFTER_MS + 1_000;
    await round();
    const victim = ['b:1b', 'c:1b'].find((name) => lifecycle.isDraining(name))!;
    expect(victim).toBeDefined();

    clock.offset += DRAIN_TIMEOUT_MS;
    await round();
    expect(backend.unloads).toEqual([]);
    expect(backend.loads).toEqual([]);
    await expect.poll(() => redis.get(keys.warmLease('a:1b'))).toBeNull();
    expect(lifecycle.isDraining(victim)).toBe(false);
  });

  it('does not retry a model whose load failed for lack of memory until the cooldown has passed', async () => {
    const { backend, clock, addJob, round } = await setup([{ name: 'a:1b' }]);
    await addJob('a:1b');
    backend.failLoads = new BackendError('model requires more system memory', 500, 'backend_error', { outOfMemory: true });
    await round();
    expect(backend.loads).toEqual(['a:1b']);
    await round();
    expect(backend.loads).toEqual(['a:1b']);

    backend.failLoads = undefined;
    clock.offset = UNFIT_COOLDOWN_MS + 1_000;
    await round();
    expect(backend.loads).toEqual(['a:1b', 'a:1b']);
  });

  it('refills a model asked for recently that no agent holds, into free VRAM only', async () => {
    const free = await setup([{ name: 'a:1b' }]);
    free.demand.record('a:1b');
    await free.round();
    expect(free.backend.loads).toEqual(['a:1b']);

    // The same, with the node full of idle models: a refill evicts nothing.
    const full = await setup([{ name: 'a:1b' }, { name: 'b:1b' }, { name: 'c:1b' }], { resident: ['b:1b', 'c:1b'] });
    full.demand.record('a:1b');
    full.clock.offset = MIN_RESIDENCY_MS + 1_000;
    await full.round();
    expect(full.backend.loads).toEqual([]);
    expect(full.backend.unloads).toEqual([]);
  });

  it('learns a load time from the first load at once and averages later ones in; shares the throughput it measured', async () => {
    const { backend, inventory, lifecycle, loadClock, addJob, round } = await setup([{ name: 'a:1b' }, { name: 'b:1b' }]);
    const a = () => lifecycle.expectedLoadMs(inventory.get('a:1b')!);
    const b = () => lifecycle.expectedLoadMs(inventory.get('b:1b')!);
    // The prior: 6 GB at the configured 2 GB/s.
    expect(a()).toBe(3_000);
    expect(lifecycle.measuredLoadBytesPerS()).toBeUndefined();

    loadClock.perLoadMs = 600;
    await addJob('a:1b');
    await round();
    expect(backend.loads).toEqual(['a:1b']);
    // One load replaces the prior: this model, and the node's throughput for every other one.
    expect(a()).toBe(600);
    expect(lifecycle.measuredLoadBytesPerS()).toBe(10 * GB);
    expect(b()).toBe(600);

    loadClock.perLoadMs = 1_000;
    await addJob('b:1b');
    await round();
    expect(backend.loads).toEqual(['a:1b', 'b:1b']);
    expect(b()).toBe(1_000);
    // The node's throughput averages 10 and 6 GB/s; a's own load time stays as measured.
    expect(lifecycle.measuredLoadBytesPerS()).toBe(8 * GB);
    expect(a()).toBe(600);
  });

  it('estimates loads it has never made from the throughput its peers measured, not the configured prior', async () => {
    const { inventory, lifecycle, round, publishPeer } = await setup([{ name: 'a:1b' }]);
    await publishPeer(peer('agent-p', [], { loadBytesPerS: 30 * GB }));
    await publishPeer(peer('agent-q', [], { loadBytesPerS: 20 * GB }));
    await publishPeer(peer('agent-r', [], { loadBytesPerS: 10 * GB }));
    await round();
    // The median of the three: 6 GB at 20 GB/s.
    expect(lifecycle.expectedLoadMs(inventory.get('a:1b')!)).toBe(300);
  });

  it('adds a copy before any job waits when the arrivals ask for more copies than there are, into free VRAM and idle slots only, and logs why', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    // A peer copy; 20 arrivals within a second, 0.1 s a job, one slot a copy: 2 slots busy, four copies wanted.
    const hot = await setup([{ name: 'a:1b' }], { slots: 2, logger });
    await hot.publishPeer(peer('agent-p', [{ name: 'a:1b' }]));
    for (let i = 0; i < 20; i++) hot.demand.record('a:1b');
    await hot.round();
    expect(hot.backend.loads).toEqual(['a:1b']);
    const warming = lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((line) => line.msg === 'warming model');
    expect(warming).toMatchObject({ model: 'a:1b', reason: 'demand_rising', copies_elsewhere: 1, copies_wanted: 4, waiting: 0 });
    expect(warming!.arrival_per_s).toBeGreaterThanOrEqual(20);

    // Two arrivals: 0.2 slots busy, the one copy is enough.
    const lukewarm = await setup([{ name: 'a:1b' }], { slots: 2 });
    await lukewarm.publishPeer(peer('agent-p', [{ name: 'a:1b' }]));
    for (let i = 0; i < 2; i++) lukewarm.demand.record('a:1b');
    await lukewarm.round();
    expect(lukewarm.backend.loads).toEqual([]);

    // Hot, but no job of the model has finished anywhere and its copy runs none: the busy
    // slots are the jobs running (none), not arrivals × a 5 s default, so no copy yet.
    const unmeasured = await setup([{ name: 'a:1b' }], { slots: 2 });
    const fresh = peer('agent-p', [{ name: 'a:1b' }]);
    for (const loaded of fresh.models_loaded) delete loaded.service_ms;
    await unmeasured.publishPeer(fresh);
    for (let i = 0; i < 20; i++) unmeasured.demand.record('a:1b');
    await unmeasured.round();
    expect(unmeasured.backend.loads).toEqual([]);

    // Hot, but every slot here is busy with another model.
    const busy = await setup([{ name: 'a:1b' }, { name: 'b:1b' }], { slots: 2, resident: ['b:1b'] });
    await busy.publishPeer(peer('agent-p', [{ name: 'a:1b' }]));
    busy.running.set('b:1b', 2);
    for (let i = 0; i < 20; i++) busy.demand.record('a:1b');
    await busy.round();
    expect(busy.backend.loads).toEqual([]);

    // Hot, slots idle, but VRAM only behind idle models: a copy for demand evicts nothing.
    const full = await setup([{ name: 'a:1b' }, { name: 'b:1b' }, { name: 'c:1b' }], { slots: 2, resident: ['b:1b', 'c:1b'] });
    await full.publishPeer(peer('agent-p', [{ name: 'a:1b' }]));
    for (let i = 0; i < 20; i++) full.demand.record('a:1b');
    full.clock.offset = MIN_RESIDENCY_MS + 1_000;
    await full.round();
    expect(full.backend.loads).toEqual([]);
    expect(full.backend.unloads).toEqual([]);
  });

  it('runs a round asked for while one is under way right after it, so an announcement is not lost', async () => {
    const { backend, lifecycle, warmed, addJob } = await setup([{ name: 'a:1b' }]);
    const first = lifecycle.tick();
    await addJob('a:1b');
    lifecycle.workAnnounced('a:1b');
    await first;
    await expect.poll(() => backend.loads).toEqual(['a:1b']);
    await expect.poll(() => warmed).toEqual(['a:1b']);
  });
});
