import { describe, expect, it } from 'vitest';
import { AgentHeartbeat, type GpuInfo } from '@switchyard/protocol';
import { HeartbeatBuilder, type HeartbeatBuilderOptions } from './heartbeat-builder.js';
import { LifecycleHistory } from './lifecycle-history.js';
import type { ModelState } from './model-inventory.js';

const GB = 1e9;
const gpus: GpuInfo[] = [
  { index: 0, name: 'configured-gpu', vram_total_bytes: 24 * GB, vram_used_bytes: 0 },
  { index: 1, name: 'configured-gpu', vram_total_bytes: 24 * GB, vram_used_bytes: 0 },
];
const model = (name: string, over: Partial<ModelState> = {}): ModelState => ({
  name,
  backendName: name,
  digest: `${name}-digest`,
  sizeBytes: 4 * GB,
  estimateBytes: 5 * GB,
  inFlight: 0,
  lastUsedAt: 100,
  ...over,
});

/** A builder over fixed parts; `over` replaces any of them. */
function builder(over: Partial<HeartbeatBuilderOptions> = {}) {
  let now = 1_000;
  const options: HeartbeatBuilderOptions = {
    agentId: 'agent-1',
    version: '9.9.9',
    backend: { kind: 'ollama', url: 'http://backend' },
    gpus,
    gpuSource: 'config',
    vramTotalBytes: 48 * GB,
    slots: 4,
    pinned: ['warm'],
    inventory: {
      all: () => [model('warm', { loaded: { vramBytes: 6 * GB, loadedAt: 50, measured: true }, inFlight: 1, serviceMs: 812.4 }), model('cold')],
      backendReachable: true,
    },
    placement: {
      loadingModel: 'cold',
      usedBytes: () => 10 * GB,
      needBytes: (state) => (state.name === 'warm' ? { bytes: 6 * GB, source: 'measured' } : { bytes: 60 * GB, source: 'estimate' }),
    },
    jobs: { activeJobs: 3, runningOf: (name) => (name === 'warm' ? 2 : 0) },
    clock: () => now,
    ...over,
  };
  return { heartbeat: new HeartbeatBuilder(options), advance: (ms: number) => (now += ms) };
}

describe('the heartbeat an agent publishes', () => {
  it('says what runs, what is loaded and loading, and what could load and whether it fits', () => {
    const { heartbeat, advance } = builder();
    advance(500);
    expect(heartbeat.build()).toEqual({
      id: 'agent-1',
      version: '9.9.9',
      state: 'ready',
      backend: { kind: 'ollama', url: 'http://backend' },
      gpus: [
        { ...gpus[0], vram_used_bytes: 10 * GB },
        { ...gpus[1], vram_used_bytes: 0 },
      ],
      slots: 4,
      in_flight: 3,
      vram: { total_bytes: 48 * GB, used_bytes: 10 * GB, free_bytes: 38 * GB },
      models_loaded: [
        // The scheduler's count is ahead of the inventory's: it counts from the claim.
        { name: 'warm', digest: 'warm-digest', vram_bytes: 6 * GB, in_flight: 2, last_used_at: 100, loaded_at: 50, pinned: true, service_ms: 812 },
      ],
      models_loading: ['cold'],
      models_available: [
        { name: 'warm', digest: 'warm-digest', size_bytes: 4 * GB, vram_need_bytes: 6 * GB, vram_need_source: 'measured', vram_estimate_bytes: 5 * GB, fits: true },
        { name: 'cold', digest: 'cold-digest', size_bytes: 4 * GB, vram_need_bytes: 60 * GB, vram_need_source: 'estimate', vram_estimate_bytes: 5 * GB, fits: false },
      ],
      started_at: 1_000,
      updated_at: 1_500,
    });
  });

  it('keeps nvidia-smi figures as read', () => {
    const measured = gpus.map((gpu) => ({ ...gpu, vram_used_bytes: 7 * GB }));
    const { heartbeat } = builder({ gpus: measured, gpuSource: 'nvidia-smi' });
    expect(heartbeat.build().gpus).toEqual(measured);
  });

  it('reads the GPU monitor’s latest figures at each build', () => {
    let latest = gpus.map((gpu) => ({ ...gpu, utilization_percent: 10 }));
    const { heartbeat } = builder({ gpus: () => latest, gpuSource: 'nvidia-smi' });
    expect(heartbeat.build().gpus[0]!.utilization_percent).toBe(10);
    latest = gpus.map((gpu) => ({ ...gpu, utilization_percent: 95, temperature_c: 70 }));
    expect(heartbeat.build().gpus[1]).toMatchObject({ utilization_percent: 95, temperature_c: 70 });
  });

  it('lists nothing as available while the backend does not answer, and never a negative free figure', () => {
    const { heartbeat } = builder({
      inventory: { all: () => [model('cold')], backendReachable: false },
      placement: { loadingModel: undefined, usedBytes: () => 50 * GB, needBytes: () => ({ bytes: GB, source: 'estimate' }) },
    });
    const beat = heartbeat.build();
    expect(beat.models_available).toEqual([]);
    expect(beat.models_loading).toEqual([]);
    expect(beat.vram?.free_bytes).toBe(0);
  });

  it('says draining once told, the in-flight count staying live', () => {
    let active = 1;
    const { heartbeat } = builder({
      jobs: {
        get activeJobs() {
          return active;
        },
        runningOf: () => 0,
      },
    });
    heartbeat.draining();
    active = 0;
    expect(heartbeat.build()).toMatchObject({ state: 'draining', in_flight: 0 });
  });

  it('says degraded while its backend does not answer (and lists nothing to serve), draining winning over it', () => {
    const inventory = { all: () => [model('warm', { loaded: { vramBytes: 6 * GB, loadedAt: 50, measured: true } })], backendReachable: false };
    const { heartbeat } = builder({ inventory });
    expect(heartbeat.build()).toMatchObject({ state: 'degraded', models_available: [] });
    inventory.backendReachable = true;
    expect(heartbeat.build()).toMatchObject({ state: 'ready' });
    inventory.backendReachable = false;
    heartbeat.draining();
    expect(heartbeat.build()).toMatchObject({ state: 'draining' });
  });

  it('carries the load under way with its expected duration, and the last loads and unloads with their reasons, bounded', () => {
    let clock = 5_000;
    const history = new LifecycleHistory(3, () => clock++);
    const counted: string[] = [];
    const hooks = history.observing({
      modelLoaded: (name, reason) => counted.push(`loaded ${name} ${reason}`),
      loadFailed: (name, reason, oom) => counted.push(`failed ${name} ${reason} ${oom}`),
      modelUnloaded: (name, reason) => counted.push(`unloaded ${name} ${reason}`),
      leaseHeld: () => undefined,
      placementRound: () => () => undefined,
    });
    const { heartbeat } = builder({
      history,
      placement: {
        loadingModel: 'cold',
        loadProgress: () => ({ model: 'cold', started_at: 900, expected_ms: 4_000 }),
        usedBytes: () => 10 * GB,
        needBytes: () => ({ bytes: 5 * GB, source: 'estimate' }),
      },
    });
    expect(heartbeat.build().lifecycle_log).toBeUndefined();
    hooks.modelLoaded('a', 'no_copy', 1.23456);
    hooks.modelUnloaded('a', 'evicted for b');
    hooks.loadFailed('b', 'queue_too_old', true);
    hooks.modelUnloaded('c', 'idle');
    const beat = heartbeat.build();
    expect(beat.loads_in_progress).toEqual([{ model: 'cold', started_at: 900, expected_ms: 4_000 }]);
    // The oldest of four fell off a list of three; the metrics saw every one.
    expect(beat.lifecycle_log).toEqual([
      { at: 5_001, kind: 'unloaded', model: 'a', reason: 'evicted for b' },
      { at: 5_002, kind: 'load_failed', model: 'b', reason: 'queue_too_old', out_of_memory: true },
      { at: 5_003, kind: 'unloaded', model: 'c', reason: 'idle' },
    ]);
    expect(counted).toEqual(['loaded a no_copy', 'unloaded a evicted for b', 'failed b queue_too_old true', 'unloaded c idle']);
    expect(AgentHeartbeat.parse(beat)).toEqual(beat);
    expect(builder().heartbeat.build()).not.toHaveProperty('loads_in_progress');
  });
});
