import { UnrecoverableError, type Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { BackendError, type Backend, type BackendLoadedModel, type BackendModel, type BackendModelInfo, type EmbedResponse, type GenerateChunk } from '@switchyard/backends';
import { JobErrorCode, formatJobFailure, modelToQueueName, type JobResult } from '@switchyard/protocol';
import { createAgentMetrics, reasonLabel, type AgentMetrics } from './agent-metrics.js';

/** The value of one series of a counter (or a histogram's `_count`), 0 when it has none yet. */
async function valueOf(metrics: AgentMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const histogram = name.endsWith('_count');
  const metric = metrics.registry.getSingleMetric(histogram ? name.slice(0, -'_count'.length) : name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const matches = values.filter(
    (value) =>
      (!histogram || (value as { metricName?: string }).metricName === name) &&
      Object.entries(labels).every(([key, wanted]) => (value.labels as Record<string, unknown>)[key] === wanted),
  );
  return matches.reduce((sum, value) => sum + value.value, 0);
}

/** A backend whose calls fail as each test says. */
class FailingBackend implements Backend {
  readonly kind = 'ollama' as const;
  readonly url = 'http://failing-backend';
  listFailure: Error | undefined;
  async version(): Promise<string> {
    return 'test';
  }
  async listModels(): Promise<BackendModel[]> {
    if (this.listFailure) throw this.listFailure;
    return [];
  }
  async listLoaded(): Promise<BackendLoadedModel[]> {
    return [];
  }
  async show(): Promise<BackendModelInfo> {
    return { raw: {} };
  }
  embed(): Promise<EmbedResponse> {
    return Promise.reject(new Error('not used'));
  }

  async *generate(_request: unknown, signal?: AbortSignal): AsyncIterable<GenerateChunk> {
    yield { type: 'token', text: 'a' };
    if (signal?.aborted) throw Object.assign(new Error('aborted'), { name: 'AbortError' });
    throw new BackendError('stream: connection reset', undefined, 'backend_error');
  }
  async load(_model: string): Promise<void> {
    throw new BackendError('model requires more system memory (9 GiB) than is available', 500, 'backend_error', { outOfMemory: true });
  }
  async unload(): Promise<void> {}
  async close(): Promise<void> {}
}

async function drain(stream: AsyncIterable<GenerateChunk>): Promise<unknown> {
  try {
    for await (const chunk of stream) void chunk;
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('agent metrics', () => {
  it('counts failed backend calls by call and code, and not a generation the caller aborted', async () => {
    const metrics = createAgentMetrics();
    const inner = new FailingBackend();
    const backend = metrics.backend(inner);
    expect(backend.url).toBe('http://failing-backend');
    expect(await backend.listModels()).toEqual([]);
    inner.listFailure = new BackendError('Ollama at http://x failed on /api/tags: ECONNREFUSED', undefined, 'unavailable');
    await expect(backend.listModels()).rejects.toThrow(/ECONNREFUSED/);
    await expect(backend.load('big:70b')).rejects.toThrow(/memory/);
    expect(await drain(backend.generate({ model: 'm' }))).toBeInstanceOf(BackendError);
    const aborted = new AbortController();
    aborted.abort();
    expect((await drain(backend.generate({ model: 'm' }, aborted.signal))) as Error).toMatchObject({ name: 'AbortError' });

    expect(await valueOf(metrics, 'switchyard_agent_backend_errors_total', { operation: 'listModels', code: 'unavailable' })).toBe(1);
    expect(await valueOf(metrics, 'switchyard_agent_backend_errors_total', { operation: 'load', code: 'out_of_memory' })).toBe(1);
    expect(await valueOf(metrics, 'switchyard_agent_backend_errors_total', { operation: 'generate' })).toBe(1);
    expect(await valueOf(metrics, 'switchyard_agent_backend_errors_total')).toBe(3);
  });

  it('passes an early exit from a counted generation on to the backend’s stream, which closes its request, and counts no failure', async () => {
    const metrics = createAgentMetrics();
    const inner = new FailingBackend();
    let closed = false;
    inner.generate = async function* () {
      try {
        yield { type: 'token', text: 'a' } as GenerateChunk;
        yield { type: 'token', text: 'b' } as GenerateChunk;
      } finally {
        closed = true;
      }
    };
    const seen: GenerateChunk[] = [];
    for await (const chunk of metrics.backend(inner).generate({ model: 'm' })) {
      seen.push(chunk);
      break;
    }
    expect(seen).toEqual([{ type: 'token', text: 'a' }]);
    expect(closed).toBe(true);
    expect(await valueOf(metrics, 'switchyard_agent_backend_errors_total')).toBe(0);
  });

  it('counts each job the processor is handed as a claim of its queue, and how it ended', async () => {
    const metrics = createAgentMetrics();
    const outcomes: Array<() => Promise<JobResult>> = [
      async () => ({ text: 'ok', finish_reason: 'stop' }) as JobResult,
      async () => {
        throw new UnrecoverableError(formatJobFailure(JobErrorCode.cancelled, 'cancelled by the client'));
      },
      async () => {
        throw new Error('this attempt no longer holds the job (fenced)');
      },
    ];
    const processor = metrics.jobs(() => outcomes.shift()!());
    // BullMQ hands a processor an AbortSignal only when it declares a third parameter.
    expect(processor.length).toBe(3);
    const job = (queueKey: string) => ({ queueName: modelToQueueName(queueKey) }) as Job<unknown, JobResult>;
    await processor(job('qwen2.5:0.5b'));
    await expect(processor(job('qwen2.5:0.5b@abc123'))).rejects.toThrow(/cancelled/);
    await expect(processor(job('qwen2.5:0.5b'))).rejects.toThrow(/fenced/);

    expect(await valueOf(metrics, 'switchyard_agent_claims_total', { queue: 'qwen2.5:0.5b' })).toBe(2);
    expect(await valueOf(metrics, 'switchyard_agent_claims_total', { queue: 'qwen2.5:0.5b@abc123' })).toBe(1);
    expect(await valueOf(metrics, 'switchyard_agent_jobs_finished_total', { model: 'qwen2.5:0.5b', outcome: 'completed' })).toBe(1);
    expect(await valueOf(metrics, 'switchyard_agent_jobs_finished_total', { model: 'qwen2.5:0.5b', outcome: 'cancelled' })).toBe(1);
    expect(await valueOf(metrics, 'switchyard_agent_jobs_finished_total', { model: 'qwen2.5:0.5b', outcome: 'interrupted' })).toBe(1);
  });

  it('labels loads and unloads by the leading word of their reason, and times loads and rounds', async () => {
    const metrics = createAgentMetrics();
    metrics.modelLoaded('llama3.1:70b', 'starving 42 s', 12.5);
    metrics.loadFailed('llama3.1:70b', 'no_copy', true);
    metrics.modelUnloaded('qwen2.5:0.5b', 'evicted for llama3.1:70b');
    metrics.leaseHeld('llama3.1:8b');
    metrics.placementRound()();
    expect(reasonLabel('extra_copy')).toBe('extra_copy');
    expect(await valueOf(metrics, 'switchyard_agent_model_loads_total', { model: 'llama3.1:70b', reason: 'starving', outcome: 'loaded' })).toBe(1);
    expect(await valueOf(metrics, 'switchyard_agent_model_loads_total', { reason: 'no_copy', outcome: 'out_of_memory' })).toBe(1);
    expect(await valueOf(metrics, 'switchyard_agent_model_load_seconds_count', { model: 'llama3.1:70b' })).toBe(1);
    expect(await valueOf(metrics, 'switchyard_agent_model_unloads_total', { model: 'qwen2.5:0.5b', reason: 'evicted' })).toBe(1);
    expect(await valueOf(metrics, 'switchyard_agent_warm_lease_waits_total', { model: 'llama3.1:8b' })).toBe(1);
    expect(await valueOf(metrics, 'switchyard_agent_placement_round_seconds_count')).toBe(1);
  });

  it('serves its own series with help text, and the process metrics once per process, on every agent', async () => {
    const first = createAgentMetrics();
    const second = createAgentMetrics();
    first.leaseHeld('m');
    const [one, two] = [await first.registry.metrics(), await second.registry.metrics()];
    for (const text of [one, two]) {
      expect(text).toMatch(/^# HELP switchyard_agent_process_cpu_user_seconds_total /m);
      expect(text).toMatch(/^# HELP switchyard_agent_claims_total Jobs this agent claimed/m);
      // Every series is the agent's: nothing outside the prefix.
      expect(text.match(/^# TYPE (\S+)/gm)!.every((line) => line.startsWith('# TYPE switchyard_agent_'))).toBe(true);
    }
    // Registries of their own: one agent's counts are not another's.
    expect(one).toContain('switchyard_agent_warm_lease_waits_total{model="m"} 1');
    expect(two).not.toContain('switchyard_agent_warm_lease_waits_total{model="m"}');
  });

  it('reads its gauges from the heartbeat at scrape time', async () => {
    const metrics = createAgentMetrics();
    let inFlight = 1;
    metrics.watchNode(
      () =>
        ({
          state: 'ready',
          gpus: [],
          in_flight: inFlight,
          slots: 4,
          models_loaded: [
            { name: 'a:1b', vram_bytes: 2e9 },
            { name: 'b:7b', vram_bytes: 7e9 },
          ],
          vram: { total_bytes: 24e9, used_bytes: 9e9, free_bytes: 15e9 },
        }) as never,
    );
    expect(await metrics.registry.metrics()).toContain('switchyard_agent_jobs_running 1');
    inFlight = 3;
    const text = await metrics.registry.metrics();
    expect(text).toContain('switchyard_agent_jobs_running 3');
    expect(text).toContain('switchyard_agent_slots 4');
    expect(text).toContain('switchyard_agent_models_loaded 2');
    expect(text).toContain('switchyard_agent_vram_used_bytes 9000000000');
    expect(text).toContain('switchyard_agent_model_vram_bytes{model="b:7b"} 7000000000');
    expect(text).toContain('switchyard_agent_state{state="ready"} 1');
    expect(text).toContain('switchyard_agent_state{state="degraded"} 0');
  });

  it('reports each GPU’s nvidia-smi figures, leaving out the ones it has none of', async () => {
    const metrics = createAgentMetrics();
    let gpus: unknown[] = [
      { index: 0, name: 'NVIDIA L40S', vram_total_bytes: 48e9, vram_used_bytes: 40e9, utilization_percent: 97, temperature_c: 71, power_w: 318.44, power_limit_w: 350 },
      // [N/A] for utilisation and power: no series, not a 0.
      { index: 1, name: 'NVIDIA L40S', vram_total_bytes: 48e9, vram_used_bytes: 1e9, temperature_c: 38 },
    ];
    metrics.watchNode(() => ({ state: 'degraded', gpus, models_loaded: [], in_flight: 0, slots: 1 }) as never);
    let text = await metrics.registry.metrics();
    expect(text).toContain('switchyard_agent_gpu_utilization_ratio{gpu="0",name="NVIDIA L40S"} 0.97');
    expect(text).toContain('switchyard_agent_gpu_temperature_celsius{gpu="1",name="NVIDIA L40S"} 38');
    expect(text).toContain('switchyard_agent_gpu_power_watts{gpu="0",name="NVIDIA L40S"} 318.44');
    expect(text).toContain('switchyard_agent_gpu_power_limit_watts{gpu="0",name="NVIDIA L40S"} 350');
    expect(text).toContain('switchyard_agent_gpu_vram_used_bytes{gpu="1",name="NVIDIA L40S"} 1000000000');
    expect(text).not.toMatch(/switchyard_agent_gpu_utilization_ratio\{gpu="1"/);
    expect(text).not.toMatch(/switchyard_agent_gpu_power_watts\{gpu="1"/);
    expect(text).not.toMatch(/NaN/);
    expect(text).toContain('switchyard_agent_state{state="degraded"} 1');
    // A figure that stops coming (nvidia-smi failing) leaves no stale series.
    gpus = [{ index: 0, name: 'NVIDIA L40S', vram_total_bytes: 48e9, vram_used_bytes: 40e9 }];
    text = await metrics.registry.metrics();
    expect(text).not.toMatch(/switchyard_agent_gpu_temperature_celsius\{/);
    expect(text).toContain('# TYPE switchyard_agent_gpu_temperature_celsius gauge');
  });

  it('reports the Redis connection and the age of the last heartbeat that reached Redis', async () => {
    const metrics = createAgentMetrics();
    let connected = true;
    let last: number | undefined;
    metrics.watchLinks({ redisConnected: () => connected, lastHeartbeatAt: () => last, heartbeatTtlMs: 6_000, startedAt: Date.now() - 30_000 });
    let text = await metrics.registry.metrics();
    expect(text).toContain('switchyard_agent_redis_connected 1');
    expect(text).toContain('switchyard_agent_heartbeat_ttl_seconds 6');
    // None landed yet: counted from the start.
    expect(Number(/^switchyard_agent_heartbeat_age_seconds (\S+)$/m.exec(text)![1])).toBeGreaterThanOrEqual(30);
    connected = false;
    last = Date.now();
    text = await metrics.registry.metrics();
    expect(text).toContain('switchyard_agent_redis_connected 0');
    expect(Number(/^switchyard_agent_heartbeat_age_seconds (\S+)$/m.exec(text)![1])).toBeLessThan(30);
  });
});
