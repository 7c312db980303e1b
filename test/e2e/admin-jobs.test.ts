import { Redis } from 'ioredis';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelToQueueName, redisKeys } from '@switchyard/protocol';
import { readSse, textOf } from '../support/sse.js';
import { startStack, type Stack } from '../support/stack.js';

const MODEL = 'qwen2.5:0.5b';
const OTHER_MODEL = 'llama3.2:3b';
const ALICE = 'alice-key-0123456789abcdef';
const ADMIN = 'admin-key-0123456789abcdef';
type Who = 'alice' | 'admin' | 'nobody';

interface Answer {
  status: number;
  json: any;
}

async function call(stack: Stack, path: string, options: { method?: string; who?: Who; body?: unknown } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (options.who === 'alice') headers.Authorization = `Bearer ${ALICE}`;
  if (options.who === 'admin') headers.Authorization = `Bearer ${ADMIN}`;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${stack.apiUrl}${path}`, {
    method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
    headers,
    ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  let json: any = text;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: kept as text
  }
  return { status: response.status, json };
}

async function submit(stack: Stack, body: Record<string, unknown>): Promise<any> {
  const answer = await call(stack, '/v1/jobs', { who: 'alice', body });
  expect(answer.status, JSON.stringify(answer.json)).toBe(202);
  return answer.json;
}

const eventsUrl = (stack: Stack, id: string) => `${stack.apiUrl}/v1/jobs/${id}/events?key=${ALICE}`;
const jobOf = async (stack: Stack, id: string) => (await call(stack, `/v1/jobs/${id}`, { who: 'alice' })).json;
/** A job that holds the agent's only slot until cancelled (20 000 tokens: over a minute at 220 tokens/s). */
const long = (prompt: string) => ({ model: MODEL, prompt, detach: true, options: { num_predict: 20_000 } });

/** Resolves once the job streams its first token: it is running on the agent. */
async function running(stack: Stack, id: string): Promise<void> {
  const sse = await readSse(eventsUrl(stack, id), { stopAfter: (event) => event.type === 'token' });
  expect(sse.events.at(-1)?.type).toBe('token');
}

/** The board's GET API for one job: what Bull Board knows of it. */
async function boardJob(stack: Stack, id: string): Promise<{ status: string; job: any }> {
  const answer = await call(stack, `/admin/queues/api/queues/${encodeURIComponent(MODEL)}/${id}`, { who: 'admin' });
  expect(answer.status, JSON.stringify(answer.json)).toBe(200);
  return answer.json;
}

async function boardQueue(stack: Stack): Promise<any> {
  const answer = await call(stack, `/admin/queues/api/queues?activeQueue=${encodeURIComponent(MODEL)}&page=1&jobsPerPage=50`, { who: 'admin' });
  expect(answer.status).toBe(200);
  return answer.json.queues.find((queue: any) => queue.name === MODEL);
}

/** Every non-GET/HEAD route the server has under `prefix`, read from Fastify's route table. */
function writeRoutes(stack: Stack, prefix: string): Array<{ method: string; url: string }> {
  const routes: Array<{ method: string; url: string }> = [];
  const ancestors: string[] = [];
  for (const line of stack.api.app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^([│ ]*)[├└]── (.+?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    const url = (ancestors[depth - 1] ?? '') + match[2]!;
    ancestors[depth] = url;
    ancestors.length = depth + 1;
    for (const method of (match[3] ?? '').split(', ').filter(Boolean)) {
      if (url.startsWith(prefix) && method !== 'GET' && method !== 'HEAD') routes.push({ method, url });
    }
  }
  return routes;
}

/** A body each write route of the board would accept, were it served. */
function bodyFor(url: string): unknown {
  if (url.endsWith('/update-data')) return { data: { id: 'rewritten', model: MODEL, tenant: 'mallory', request: { model: MODEL, prompt: 'rewritten' } } };
  if (url.endsWith('/priority')) return { priority: 1 };
  if (url.endsWith('/delay')) return { runAt: Date.now() };
  if (url.endsWith('/add')) return { name: 'generate', data: { prompt: 'smuggled' }, options: {} };
  if (url.endsWith('/concurrency')) return { concurrency: 1 };
  if (url.endsWith('/rate-limit')) return { max: 1, duration: 60_000 };
  if (url.endsWith('/obliterate')) return { force: true };
  return {};
}

describe('operators act on jobs through Switchyard, not through Bull Board', () => {
  let stack: Stack;
  let redis: Redis;
  beforeAll(async () => {
    // Real time, answers as long as num_predict, one slot: a long job holds the agent while the
    // test acts, and a second job waits in the queue behind it.
    stack = await startStack({
      api: { apiKeys: `alice:${ALICE}`, adminApiKeys: ADMIN },
      nodes: [
        {
          sim: { time_scale: 1, load_overhead_ms: 0, load_bytes_per_s: 1e12, response_tokens_min: 1_000_000, response_tokens_max: 1_000_000 },
          agent: { slots: 1 },
        },
      ],
    });
    redis = new Redis(stack.redisUrl);
  });
  afterAll(async () => {
    await redis?.quit();
    await stack?.close();
  });

  const simStats = async () => (await fetch(`${stack.sims[0]!.url}/sim/stats`).then((response) => response.json())) as { requests_total: number };
  let queuedId: string;
  let cancelledRunningId: string;
  let blockerId: string;

  it("refuses every write route of Bull Board's API (403/405) and none of them changes a job or the queue", async () => {
    // A job cancelled on the GPU (BullMQ keeps it as failed) and one waiting behind a blocker.
    const cancelledRunning = await submit(stack, long('cancelled while running'));
    cancelledRunningId = cancelledRunning.id;
    await running(stack, cancelledRunningId);
    const cancel = await call(stack, `/admin/jobs/${cancelledRunningId}`, { method: 'DELETE', who: 'admin' });
    expect(cancel.status, JSON.stringify(cancel.json)).toBe(200);
    expect(cancel.json).toMatchObject({ id: cancelledRunningId, status: 'cancelled', tenant: 'alice', error: { code: 'cancelled' } });
    expect((await readSse(eventsUrl(stack, cancelledRunningId))).events.at(-1)).toMatchObject({ type: 'error', code: 'cancelled' });
    await expect.poll(async () => (await boardJob(stack, cancelledRunningId)).status, { timeout: 10_000 }).toBe('failed');

    const blocker = await submit(stack, long('holds the only slot'));
    blockerId = blocker.id;
    await running(stack, blockerId);
    const queued = await submit(stack, { model: MODEL, prompt: 'waits its turn', idempotency_key: 'once', detach: true, options: { num_predict: 3 } });
    queuedId = queued.id;
    expect((await jobOf(stack, queuedId)).status).toBe('queued');

    const before = {
      queued: await boardJob(stack, queuedId),
      cancelled: await boardJob(stack, cancelledRunningId),
      queue: await boardQueue(stack),
      sim: await simStats(),
    };
    expect(before.queued.status).toMatch(/^(waiting|prioritized)$/);

    const routes = writeRoutes(stack, '/admin/queues');
    expect(routes.length).toBeGreaterThanOrEqual(23);
    expect(routes).toContainEqual({ method: 'PATCH', url: '/admin/queues/api/queues/:queueName/:jobId/update-data' });
    expect(routes).toContainEqual({ method: 'PUT', url: '/admin/queues/api/queues/:queueName/:jobId/retry' });
    const answers: string[] = [];
    for (const { method, url } of routes) {
      for (const jobId of url.includes(':jobId') ? [queuedId, cancelledRunningId] : [queuedId]) {
        const path = url.replace(':queueName', encodeURIComponent(MODEL)).replace(':jobId', jobId).replace(':queueStatus', 'failed').replace(':schedulerId', 'none');
        for (const who of ['admin', 'alice', 'nobody'] as const) {
          const answer = await call(stack, path, { method, who, body: bodyFor(url) });
          answers.push(`${who} ${method} ${path} -> ${answer.status}`);
          const allowed = who === 'nobody' ? [401, 403, 405] : [403, 405];
          expect(allowed, `${who} ${method} ${path}: ${answer.status} ${JSON.stringify(answer.json)}`).toContain(answer.status);
        }
      }
    }

    const after = {
      queued: await boardJob(stack, queuedId),
      cancelled: await boardJob(stack, cancelledRunningId),
      queue: await boardQueue(stack),
      sim: await simStats(),
    };
    expect(after.queued.job.data).toEqual(before.queued.job.data);
    expect(after.queued.job.opts).toEqual(before.queued.job.opts);
    expect(after.queued.status).toBe(before.queued.status);
    expect(after.cancelled.status).toBe('failed');
    expect(after.cancelled.job.attempts).toBe(before.cancelled.job.attempts);
    expect(after.cancelled.job.failedReason).toBe(before.cancelled.job.failedReason);
    expect(after.queue.isPaused).toBe(false);
    expect(after.queue.counts).toEqual(before.queue.counts);
    expect(after.queue.globalConcurrency).toEqual(before.queue.globalConcurrency);
    // Nothing reached the GPU: the cancelled job was not run again, nothing was added.
    expect(after.sim.requests_total).toBe(before.sim.requests_total);
    expect((await jobOf(stack, cancelledRunningId)).status).toBe('cancelled');
    expect((await jobOf(stack, queuedId)).status).toBe('queued');
  }, 60_000);

  it("cancels another tenant's queued job with an admin key; tenant keys get 403, no key 401", async () => {
    for (const [method, path] of [
      ['DELETE', `/admin/jobs/${queuedId}`],
      ['POST', `/admin/jobs/${cancelledRunningId}/resubmit`],
    ] as const) {
      const tenant = await call(stack, path, { method, who: 'alice' });
      expect(tenant.status, `${method} ${path}`).toBe(403);
      expect(tenant.json.error.code).toBe('forbidden');
      expect((await call(stack, path, { method, who: 'nobody' })).status, `${method} ${path}`).toBe(401);
    }
    expect((await jobOf(stack, queuedId)).status).toBe('queued');
    // The tenant route sees only the caller's own jobs: the admin's key cannot cancel there.
    expect((await call(stack, `/v1/jobs/${queuedId}`, { method: 'DELETE', who: 'admin' })).status).toBe(404);

    const cancel = await call(stack, `/admin/jobs/${queuedId}`, { method: 'DELETE', who: 'admin' });
    expect(cancel.status, JSON.stringify(cancel.json)).toBe(200);
    expect(cancel.json).toMatchObject({ id: queuedId, status: 'cancelled', tenant: 'alice' });
    const sse = await readSse(eventsUrl(stack, queuedId));
    expect(sse.events.at(-1)).toMatchObject({ type: 'error', code: 'cancelled', message: 'cancelled by an operator while queued' });
    expect(sse.events.map((event) => event.type)).not.toContain('started');
    expect((await jobOf(stack, queuedId)).status).toBe('cancelled');
    // Over already: a conflict, as on the tenant route.
    const again = await call(stack, `/admin/jobs/${queuedId}`, { method: 'DELETE', who: 'admin' });
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe('job_finished');
    expect((await call(stack, '/admin/jobs/no-such-job', { method: 'DELETE', who: 'admin' })).status).toBe(404);
  }, 60_000);

  it('resubmits a job cancelled while queued as a new job of its tenant that runs to done; the original stays cancelled', async () => {
    // Free the slot first: the resubmitted job would otherwise wait behind the blocker.
    expect((await call(stack, `/admin/jobs/${blockerId}`, { method: 'DELETE', who: 'admin' })).status).toBe(200);
    const resubmit = await call(stack, `/admin/jobs/${queuedId}/resubmit`, { method: 'POST', who: 'admin' });
    expect(resubmit.status, JSON.stringify(resubmit.json)).toBe(202);
    const copy = resubmit.json;
    expect(copy).toMatchObject({ model: MODEL, status: 'queued', tenant: 'alice', resubmitted_from: queuedId, links: { events: `/v1/jobs/${copy.id}/events` } });
    expect(copy.id).not.toBe(queuedId);

    const sse = await readSse(eventsUrl(stack, copy.id));
    expect(sse.events[0]?.type).toBe('queued');
    const done = sse.events.at(-1);
    expect(done).toMatchObject({ type: 'done', usage: { completion_tokens: 3 } });
    const record = await jobOf(stack, copy.id);
    expect(record).toMatchObject({ status: 'completed', result: { text: textOf(sse.events) } });
    expect((await jobOf(stack, queuedId)).status).toBe('cancelled');
    // The same request, without the idempotency key: a repeat of that key still answers the original.
    const { job } = await boardJob(stack, copy.id);
    expect(job.data).toMatchObject({ tenant: 'alice', request: { model: MODEL, prompt: 'waits its turn', options: { num_predict: 3 } } });
    expect(job.data.request).not.toHaveProperty('idempotency_key');
    const repeat = await call(stack, '/v1/jobs', { who: 'alice', body: { model: MODEL, prompt: 'waits its turn', idempotency_key: 'once', options: { num_predict: 3 } } });
    expect(repeat.status).toBe(200);
    expect(repeat.json.id).toBe(queuedId);
  }, 60_000);

  it('resubmits a job cancelled while running (its request read from BullMQ) and one that expired in the queue (from the job index)', async () => {
    const copy = await call(stack, `/admin/jobs/${cancelledRunningId}/resubmit`, { method: 'POST', who: 'admin' });
    expect(copy.status, JSON.stringify(copy.json)).toBe(202);
    expect(copy.json.id).not.toBe(cancelledRunningId);
    await running(stack, copy.json.id);
    expect((await boardJob(stack, copy.json.id)).job.data.request).toMatchObject({ prompt: 'cancelled while running', options: { num_predict: 20_000 } });
    expect((await jobOf(stack, cancelledRunningId)).status).toBe('cancelled');

    // The copy holds the slot; a job of another model with a short deadline expires behind it.
    const late = await submit(stack, { model: OTHER_MODEL, prompt: 'too late', deadline_ms: 2_500, options: { num_predict: 3 } });
    expect((await readSse(eventsUrl(stack, late.id), { timeoutMs: 15_000 })).events.at(-1)).toMatchObject({ type: 'error', code: 'deadline_exceeded' });
    expect((await jobOf(stack, late.id)).status).toBe('expired');
    expect((await call(stack, `/admin/jobs/${copy.json.id}`, { method: 'DELETE', who: 'admin' })).status).toBe(200);

    const again = await call(stack, `/admin/jobs/${late.id}/resubmit`, { method: 'POST', who: 'admin' });
    expect(again.status, JSON.stringify(again.json)).toBe(202);
    expect(again.json).toMatchObject({ model: OTHER_MODEL, tenant: 'alice', resubmitted_from: late.id });
    expect((await readSse(eventsUrl(stack, again.json.id))).events.at(-1)).toMatchObject({ type: 'done' });
    expect((await jobOf(stack, late.id)).status).toBe('expired');
  }, 60_000);

  it('answers 404 for an unknown job and 409 when the request is no longer stored', async () => {
    const missing = await call(stack, '/admin/jobs/no-such-job/resubmit', { method: 'POST', who: 'admin' });
    expect(missing.status).toBe(404);
    expect(missing.json.error.code).toBe('job_not_found');

    const finished = await submit(stack, { model: MODEL, prompt: 'short', options: { num_predict: 3 } });
    expect((await readSse(eventsUrl(stack, finished.id))).events.at(-1)?.type).toBe('done');
    // Its BullMQ record gone, as when a queue's retention count drops it: the index entry remains.
    const queue = new Queue(modelToQueueName(MODEL), { connection: redis, prefix: redisKeys(stack.prefix).bullPrefix });
    await queue.waitUntilReady();
    await expect.poll(() => queue.getJobState(finished.id), { timeout: 5_000 }).toBe('completed');
    expect(await queue.remove(finished.id)).toBe(1);
    await queue.close();
    const gone = await call(stack, `/admin/jobs/${finished.id}/resubmit`, { method: 'POST', who: 'admin' });
    expect(gone.status).toBe(409);
    expect(gone.json.error.message).toMatch(/no longer stored/);
  }, 60_000);
});
