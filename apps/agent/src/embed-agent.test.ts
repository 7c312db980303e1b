/**
 * A whole agent (startAgent) on a real Redis, in front of an in-process backend serving one
 * warm embedding model whose embed calls take a while and run one at a time, as Ollama's do:
 * 64 concurrent single-input embed jobs are all claimed at once (EMBED_SLOTS, not the 2
 * AGENT_SLOTS or the backend's 1 parallel slot), ride in few backend calls, and each gets its
 * own vector back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisConnection } from '@switchyard/redis';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import type { Backend, BackendLoadedModel, BackendModel, BackendModelInfo, EmbedRequest, EmbedResponse, GenerateChunk } from '@switchyard/backends';
import { JobRequest, modelToQueueName, redisKeys, type JobResult, type RedisKeys } from '@switchyard/protocol';
import { AdmissionLedger, EventLog, JobLifecycle, closeRedis, createRedis, type ModelQueue } from '@switchyard/redis';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { startAgent, type RunningAgent } from './agent.js';
import { parseConfig } from './config.js';

const MODEL = 'nomic-embed-text:latest';
const silent = pino({ level: 'silent' });

class EmbeddingBackend implements Backend {
  readonly kind = 'ollama' as const;
  readonly url = 'http://embedding-backend';
  readonly calls: number[] = [];
  active = 0;
  maxActive = 0;
  private readonly model: BackendModel = { name: MODEL, digest: 'b'.repeat(64), size_bytes: 2.7e8 };

  async version(): Promise<string> {
    return 'test';
  }
  async listModels(): Promise<BackendModel[]> {
    return [this.model];
  }
  async listLoaded(): Promise<BackendLoadedModel[]> {
    return [{ ...this.model, vram_bytes: 6e8 }];
  }
  async show(): Promise<BackendModelInfo> {
    return { raw: { capabilities: ['embedding'], model_info: { 'general.architecture': 'nomic-bert' } } };
  }
  async embed(request: EmbedRequest): Promise<EmbedResponse> {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    this.calls.push(request.input.length);
    // A per-call cost and a per-input one.
    await new Promise((resolve) => setTimeout(resolve, 40 + request.input.length));
    this.active--;
    return { embeddings: request.input.map((text) => [Number(text.slice(6)), 1]), prompt_tokens: request.input.length * 4, total_ms: 40, load_ms: 0 };
  }
  async *generate(): AsyncIterable<GenerateChunk> {
    throw new Error('not used');
  }
  async load(): Promise<void> {}
  async unload(): Promise<void> {}
  async close(): Promise<void> {}
}

describe('an agent serving an embedding model', () => {
  let redis: RedisConnection;
  let keys: RedisKeys;
  let queue: Queue;
  let lifecycle: JobLifecycle;
  let events: EventLog;
  let agent: RunningAgent;
  const backend = new EmbeddingBackend();

  beforeAll(async () => {
    const prefix = uniquePrefix('embed-agent');
    redis = createRedis(testRedis(), 'worker');
    keys = redisKeys(prefix);
    queue = new Queue(modelToQueueName(MODEL), { connection: redis, prefix: keys.bullPrefix });
    lifecycle = new JobLifecycle(redis, keys, new AdmissionLedger(redis, keys));
    events = new EventLog(redis, keys);
    const config = parseConfig({
      redisUrl: testRedis(),
      redisPrefix: prefix,
      agentId: 'embed-agent-1',
      slots: 2,
      sweepIntervalMs: 20,
      inventoryRefreshMs: 200,
      heartbeatIntervalMs: 200,
      allowEvictingRedis: true,
      logLevel: 'silent',
    });
    agent = await startAgent(config, { logger: silent, backend });
  });
  afterAll(async () => {
    await agent?.close();
    await queue.close();
    await closeRedis(redis);
  });

  it('claims 64 concurrent embed jobs together and serves them in few backend calls, each with its own vector', async () => {
    const ids = Array.from({ length: 64 }, (_, i) => `embed-${i}`);
    await Promise.all(
      ids.map((id, i) =>
        lifecycle.enqueue({
          queue: queue as unknown as ModelQueue,
          data: { id, model: MODEL, tenant: 'acme', request: JobRequest.parse({ kind: 'embed', model: MODEL, input: `input-${i}` }), submitted_at: Date.now() } as never,
          priority: 1,
          queueKey: MODEL,
          queued: { type: 'queued', position: i, depth: 64 },
        }),
      ),
    );
    await expect.poll(() => queue.getCompletedCount(), { timeout: 10_000 }).toBe(64);
    // One call at a time reached the backend, and far fewer calls than jobs.
    expect(backend.maxActive).toBe(1);
    expect(backend.calls.reduce((a, b) => a + b, 0)).toBe(64);
    expect(backend.calls.length, `calls of ${backend.calls.join(', ')} inputs`).toBeLessThanOrEqual(8);
    for (const [i, id] of ids.entries()) {
      const job = await queue.getJob(id);
      const result = job!.returnvalue as JobResult;
      expect(result).toMatchObject({ text: '', finish_reason: 'stop', embeddings: [[i, 1]], usage: { completion_tokens: 0 }, agent: 'embed-agent-1' });
      const log = await events.readAfter(id, 1);
      expect(log.map((event) => event.type)).toEqual(['started', 'done']);
    }
  });
});
