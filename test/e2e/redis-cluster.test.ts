import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { Cluster } from 'ioredis';
import { Ollama } from 'ollama';
import { redisKeys } from '@switchyard/protocol';
import { closeRedis, createRedis, readRedisSettings, type RedisConnection } from '@switchyard/redis';
import { spawnRedisCluster, type RedisClusterHandle } from '@switchyard/testing';
import { jobStatus, postJob, submitJob } from '../support/client.js';
import { readSse, textOf } from '../support/sse.js';
import { startStack, type Stack } from '../support/stack.js';

const MODEL = 'qwen2.5:0.5b';
const OTHER = 'llama3.2:3b';
/** Real-time tokens (~220/s for MODEL) and instant loads: a held job is the only thing that waits. */
const REAL_TIME_SIM = { time_scale: 1, load_overhead_ms: 0, load_bytes_per_s: 1e12 };
const GRACE_MS = 300;

/**
 * The core of the product on a 3-master Redis Cluster (`REDIS_CLUSTER_NODES`), spawned for
 * this file: heartbeats, submit, stream, resume, cancel, admission limits, placement on two
 * nodes, the compatibility wires and the disconnect grace. Each of them touches keys of
 * several slots (a job's `{id}`, its model queue's `{model}`, the ledger's `{adm}`, the
 * fleet's `{fleet}`), so anything that writes or reads across slots in one command fails
 * here with CROSSSLOT, and a live event published on the wrong shard is never heard.
 */
describe('on a Redis Cluster of three masters', () => {
  let cluster: RedisClusterHandle;
  let stack: Stack;
  let redis: RedisConnection;

  beforeAll(async () => {
    cluster = await spawnRedisCluster({ masters: 3 });
    stack = await startStack({
      redisClusterNodes: cluster.nodes,
      nodes: [
        { sim: { ...REAL_TIME_SIM }, agent: { slots: 2 } },
        { sim: { ...REAL_TIME_SIM }, agent: { slots: 2 } },
      ],
      api: { disconnectGraceMs: GRACE_MS, maintenanceIntervalMs: 100 },
    });
    redis = createRedis(stack.redisTarget, 'worker');
  }, 60_000);
  afterAll(async () => {
    if (redis) await closeRedis(redis);
    await stack?.close();
    await cluster?.stop();
  });

  const keys = () => redisKeys(stack.prefix);
  /** The master port that serves a key's slot. */
  const shardOf = async (key: string): Promise<string> => {
    const slot = Number(await redis.cluster('KEYSLOT', key));
    const range = (await redis.cluster('SLOTS')).find(([from, to]) => slot >= from && slot <= to)!;
    return String(range[2]![1]);
  };

  it('lists both agents from their heartbeats (one MULTI and one MGET in the {fleet} slot)', async () => {
    await expect
      .poll(async () => ((await fetch(`${stack.apiUrl}/v1/agents`).then((r) => r.json())) as any).data?.map((agent: any) => agent.id).sort(), { timeout: 10_000 })
      .toEqual(['agent-0', 'agent-1']);
  });

  it('submits and streams jobs whose keys live on different shards, each to done with the text of its record', async () => {
    const jobs = await Promise.all(Array.from({ length: 6 }, (_, i) => submitJob(stack, { model: MODEL, prompt: `cluster job ${i}`, options: { seed: i, num_predict: 12 } })));
    const streams = await Promise.all(jobs.map((job) => readSse(`${stack.apiUrl}${job.links.events}`)));
    for (const [index, sse] of streams.entries()) {
      expect(sse.status).toBe(200);
      expect(sse.events[0]!.type).toBe('queued');
      expect(sse.events.at(-1)!.type).toBe('done');
      expect(sse.events.map((event) => event.seq)).toEqual(sse.events.map((_, i) => i + 1));
      const record = await fetch(`${stack.apiUrl}/v1/jobs/${jobs[index].id}`).then((r) => r.json() as Promise<any>);
      expect(record.status).toBe('completed');
      expect(record.result.text).toBe(textOf(sse.events));
    }
    // The jobs' records and channels are spread over the shards, so the relay was too. Ids
    // are random: should all six share a master (one run in 243), more jobs settle it.
    const shards = new Set(await Promise.all(jobs.map((job) => shardOf(keys().job(job.id)))));
    for (let extra = 0; shards.size < 2 && extra < 40; extra++) {
      const job = await submitJob(stack, { model: MODEL, prompt: `cluster job extra ${extra}`, options: { num_predict: 2 } });
      expect((await readSse(`${stack.apiUrl}${job.links.events}`)).events.at(-1)!.type).toBe('done');
      shards.add(await shardOf(keys().job(job.id)));
    }
    expect(shards.size).toBeGreaterThan(1);
    // A job's shard channel is in its slot: the scripts that append its events may publish it.
    const slot = (key: string) => redis.cluster('KEYSLOT', key);
    expect(await slot(keys().jobChannel(jobs[0].id))).toBe(await slot(keys().job(jobs[0].id)));
  });

  it('resumes a stream with Last-Event-ID, no gap and no duplicate', async () => {
    const hold = stack.hold({ prompt: 'resume on a cluster', afterTokens: 4 });
    const job = await submitJob(stack, { model: MODEL, prompt: 'resume on a cluster', options: { seed: 3, num_predict: 40 } });
    const url = `${stack.apiUrl}${job.links.events}`;
    await hold.reached();
    const first = await readSse(url, { stopAfter: (event) => event.type === 'token' });
    const lastSeen = first.events.at(-1)!;
    hold.release();
    const rest = await readSse(url, { lastEventId: String(lastSeen.seq) });
    expect(rest.events[0]!.seq).toBe(lastSeen.seq + 1);
    const all = [...first.events, ...rest.events];
    expect(all.map((event) => event.seq)).toEqual(all.map((_, index) => index + 1));
    expect(all.at(-1)!.type).toBe('done');
  });

  it('cancels a running job: its stream ends cancelled and so does its record', async () => {
    const hold = stack.hold({ prompt: 'cancel on a cluster', afterTokens: 3 });
    const job = await submitJob(stack, { model: MODEL, prompt: 'cancel on a cluster', options: { num_predict: 2000 } });
    const streamed = readSse(`${stack.apiUrl}${job.links.events}`);
    await hold.reached();
    await expect.poll(() => jobStatus(stack, job.id), { timeout: 10_000 }).toBe('running');
    const cancel = await fetch(`${stack.apiUrl}/v1/jobs/${job.id}`, { method: 'DELETE' });
    expect(cancel.status).toBe(200);
    expect((await streamed).events.at(-1)).toMatchObject({ type: 'error', code: 'cancelled' });
    expect(await jobStatus(stack, job.id)).toBe('cancelled');
  });

  it('holds a queue depth limit set at run time (the {adm} ledger), then lifts it', async () => {
    const limits = (body: unknown) => fetch(`${stack.apiUrl}/admin/limits`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    expect((await limits({ [`queue_depth:${MODEL}`]: 0 })).status).toBe(200);
    const refused = await postJob(stack, { model: MODEL, prompt: 'refused' });
    expect(refused.status).toBe(429);
    expect(refused.json.error.code).toBe('queue_full');
    expect((await limits({ [`queue_depth:${MODEL}`]: null })).status).toBe(200);
    const job = await submitJob(stack, { model: MODEL, prompt: 'accepted again', options: { num_predict: 2 } });
    expect((await readSse(`${stack.apiUrl}${job.links.events}`)).events.at(-1)!.type).toBe('done');
  });

  it('places a second model on a node and serves both models from their own queues (other slots)', async () => {
    const [a, b] = await Promise.all([
      submitJob(stack, { model: MODEL, prompt: 'model one', options: { num_predict: 3 } }),
      submitJob(stack, { model: OTHER, prompt: 'model two', options: { num_predict: 3 } }),
    ]);
    for (const job of [a, b]) expect((await readSse(`${stack.apiUrl}${job.links.events}`)).events.at(-1)!.type).toBe('done');
    const records = await Promise.all([a, b].map((job) => fetch(`${stack.apiUrl}/v1/jobs/${job.id}`).then((r) => r.json() as Promise<any>)));
    expect(records.map((record) => record.model)).toEqual([MODEL, OTHER]);
    expect(records.every((record) => /^agent-[01]$/.test(record.agent))).toBe(true);
    // Both loaded, as the next heartbeats say.
    await expect
      .poll(async () => ((await fetch(`${stack.apiUrl}/api/ps`).then((r) => r.json())) as any).models.map((model: any) => model.name), { timeout: 10_000 })
      .toEqual(expect.arrayContaining([MODEL, OTHER]));
  });

  it('streams through the OpenAI and Ollama wires', async () => {
    const openai = new OpenAI({ baseURL: `${stack.apiUrl}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 30_000 });
    const stream = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi over openai' }], stream: true, max_tokens: 8 });
    let text = '';
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text.length).toBeGreaterThan(0);
    expect(finish).toBe('length');

    const ollama = new Ollama({ host: stack.apiUrl });
    const parts: string[] = [];
    let done = false;
    for await (const part of await ollama.chat({ model: MODEL, messages: [{ role: 'user', content: 'hi over ollama' }], stream: true, options: { num_predict: 8 } })) {
      parts.push(part.message.content);
      done ||= part.done;
    }
    expect(done).toBe(true);
    expect(parts.join('').length).toBeGreaterThan(0);
  });

  it('cancels a queued job once its only stream went away for the grace, and keeps one whose stream stays open', async () => {
    // Both slots of both nodes held: the jobs below stay queued.
    const hold = stack.hold({ prompt: 'occupy' });
    const blockers = await Promise.all(Array.from({ length: 4 }, () => submitJob(stack, { model: MODEL, prompt: 'occupy', options: { num_predict: 100 } })));
    await hold.reached(4);
    const left = await submitJob(stack, { model: MODEL, prompt: 'streamed, then left' });
    const kept = await submitJob(stack, { model: MODEL, prompt: 'streamed throughout' });
    const leaving = new AbortController();
    const keptOpen = new AbortController();
    const leftStream = readSse(`${stack.apiUrl}${left.links.events}`, { signal: leaving.signal, timeoutMs: 30_000 }).catch(() => undefined);
    const keptStream = readSse(`${stack.apiUrl}${kept.links.events}`, { signal: keptOpen.signal, timeoutMs: 30_000 }).catch(() => undefined);
    // Each stream's presence mark is in its job's slot.
    await expect.poll(async () => redis.exists(keys().jobStreamed(left.id)), { timeout: 10_000 }).toBe(1);
    await expect.poll(async () => redis.exists(keys().jobStreamed(kept.id)), { timeout: 10_000 }).toBe(1);
    leaving.abort();
    await leftStream;
    await expect.poll(() => jobStatus(stack, left.id), { timeout: 15_000 }).toBe('cancelled');
    // Far past the grace, the stream still open keeps its job queued.
    expect(await jobStatus(stack, kept.id)).toBe('queued');
    keptOpen.abort();
    await keptStream;
    hold.release();
    await Promise.all(blockers.map((job) => fetch(`${stack.apiUrl}/v1/jobs/${job.id}`, { method: 'DELETE' })));
    await fetch(`${stack.apiUrl}/v1/jobs/${kept.id}`, { method: 'DELETE' });
  });

  it("answers an operator's reads: metrics, readiness, models, limits, the catalog, Bull Board, a job", async () => {
    const job = await submitJob(stack, { model: MODEL, prompt: 'for the admin view', options: { num_predict: 2 } });
    await readSse(`${stack.apiUrl}${job.links.events}`);
    for (const path of ['/metrics', '/readyz', '/v1/models', '/api/tags', '/api/ps', '/admin/limits', '/admin/models', '/admin/queues/api/queues', `/v1/jobs/${job.id}`]) {
      const response = await fetch(`${stack.apiUrl}${path}`);
      expect(response.status, path).toBe(200);
      await response.body?.cancel();
    }
    const show = await fetch(`${stack.apiUrl}/api/show`, { method: 'POST', body: JSON.stringify({ model: MODEL }) });
    expect(show.status).toBe(200);
    const metrics = await fetch(`${stack.apiUrl}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/switchyard_/);
  });

  it('checks the settings of every master, naming an evicting policy set on one of them only', async () => {
    expect((await readRedisSettings(redis)).problems.map((problem) => problem.setting)).not.toContain('maxmemory-policy');
    const [, second] = (redis as Cluster).nodes('master');
    await second!.config('SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      const reading = await readRedisSettings(redis);
      expect(reading.problems.filter((problem) => problem.setting === 'maxmemory-policy')).toEqual([expect.objectContaining({ value: 'allkeys-lru' })]);
    } finally {
      await second!.config('SET', 'maxmemory-policy', 'noeviction');
    }
  });
});
