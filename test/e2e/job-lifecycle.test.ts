import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamEvent } from '@switchyard/protocol';
import { getJob, postJob as submit } from '../support/client.js';
import { readSse, textOf } from '../support/sse.js';
import { startStack, type Stack } from '../support/stack.js';

const MODEL = 'qwen2.5:0.5b';

function expectContiguous(events: StreamEvent[]): void {
  expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index + 1));
}

describe('whole path: REST → BullMQ → agent → gpu-sim → pub/sub → SSE', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack?.close());

  it('streams every token in order and ends with done and usage', async () => {
    const prompt = 'Why is the sky blue?';
    const { status, json, headers } = await submit(stack, { model: MODEL, prompt, options: { seed: 7, num_predict: 40 } });
    expect(status).toBe(202);
    expect(json).toMatchObject({ model: MODEL, status: 'queued', links: { self: `/v1/jobs/${json.id}`, events: `/v1/jobs/${json.id}/events` } });
    expect(headers.get('x-queue-depth')).toMatch(/^\d+$/);

    const sse = await readSse(`${stack.apiUrl}${json.links.events}`);
    expect(sse.status).toBe(200);
    expect(sse.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(sse.headers.get('cache-control')).toMatch(/no-cache/);
    expect(sse.headers.get('x-accel-buffering')).toBe('no');
    expectContiguous(sse.events);
    expect(sse.messages.every((message) => message.id === String(JSON.parse(message.data).seq))).toBe(true);
    expect(sse.messages.every((message) => message.event === JSON.parse(message.data).type)).toBe(true);

    const types = sse.events.map((event) => event.type);
    expect(types.indexOf('started')).toBeLessThan(types.indexOf('token'));
    const done = sse.events.at(-1)!;
    expect(done.type).toBe('done');
    if (done.type !== 'done') throw new Error('unreachable');
    expect(done.usage.completion_tokens).toBeGreaterThan(0);
    expect(done.usage.prompt_tokens).toBeGreaterThan(0);

    // The text relayed equals what the simulator generates for the same request, directly.
    const direct = await fetch(`${stack.sims[0]!.url}/api/generate`, {
      method: 'POST',
      body: JSON.stringify({ model: MODEL, prompt, stream: false, options: { seed: 7, num_predict: 40 } }),
    }).then((response) => response.json() as Promise<{ response: string; eval_count: number }>);
    expect(textOf(sse.events)).toBe(direct.response);
    expect(done.usage.completion_tokens).toBe(direct.eval_count);

    const record = await getJob(stack, json.id);
    expect(record).toMatchObject({ id: json.id, model: MODEL, status: 'completed', agent: 'agent-0' });
    expect(record.result.text).toBe(direct.response);
    expect(record.usage).toEqual(done.usage);
    expect(record.timings.total_ms).toBeGreaterThanOrEqual(record.timings.ttft_ms);
  });

  it('answers 204 to a reconnect after everything was delivered', async () => {
    const { json } = await submit(stack, { model: MODEL, prompt: 'short', options: { num_predict: 3 } });
    const first = await readSse(`${stack.apiUrl}${json.links.events}`);
    const last = first.events.at(-1)!;
    expect(last.type).toBe('done');
    const again = await fetch(`${stack.apiUrl}${json.links.events}`, { headers: { 'Last-Event-ID': String(last.seq) } });
    expect(again.status).toBe(204);
    // Without Last-Event-ID a finished job replays its whole log.
    const replay = await readSse(`${stack.apiUrl}${json.links.events}`);
    expect(replay.events).toEqual(first.events);
  });

  it('serves chat requests too', async () => {
    const { status, json } = await submit(stack, {
      model: MODEL,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hello' },
      ],
    });
    expect(status).toBe(202);
    const sse = await readSse(`${stack.apiUrl}${json.links.events}`);
    expect(sse.events.at(-1)!.type).toBe('done');
    expect(textOf(sse.events).length).toBeGreaterThan(0);
  });

  it('refuses a model no agent has instead of queueing it forever', async () => {
    const { status, json } = await submit(stack, { model: 'no-such-model:1b', prompt: 'x' });
    expect(status).toBe(404);
    expect(json.error.code).toBe('model_not_found');
    expect(json.error.message).toContain('no-such-model:1b');
    expect(json.error.message).toContain(MODEL);
  });

  it('accepts the short and namespaced forms of a model name as the same model', async () => {
    const { status, json } = await submit(stack, { model: 'library/qwen2.5:0.5b', prompt: 'x', options: { num_predict: 2 } });
    expect(status).toBe(202);
    expect(json.model).toBe(MODEL);
  });

  it('returns the existing job for a repeated idempotency key', async () => {
    const body = { model: MODEL, prompt: 'once', idempotency_key: `k-${Date.now()}` };
    const first = await submit(stack, body);
    const second = await submit(stack, body);
    expect(first.status).toBe(202);
    expect(second.status).toBe(200);
    expect(second.json.id).toBe(first.json.id);
  });

  it('lists models with queue depth, agents with heartbeats, and health', async () => {
    const models = await fetch(`${stack.apiUrl}/v1/models`).then((r) => r.json() as Promise<any>);
    const qwen = models.data.find((model: any) => model.id === MODEL);
    expect(qwen).toMatchObject({ servable: true, agents: ['agent-0'], queue: { waiting: expect.any(Number), active: expect.any(Number) } });
    const agents = await fetch(`${stack.apiUrl}/v1/agents`).then((r) => r.json() as Promise<any>);
    expect(agents.data).toHaveLength(1);
    expect(agents.data[0]).toMatchObject({ id: 'agent-0', state: 'ready', slots: 4 });
    expect(agents.data[0].models_available.map((m: any) => m.name)).toContain(MODEL);
    expect((await fetch(`${stack.apiUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${stack.apiUrl}/readyz`);
    expect(ready.status).toBe(200);
  });

  it('exposes metrics with queue depth and an LLM-sized TTFT histogram', async () => {
    const text = await fetch(`${stack.apiUrl}/metrics`).then((r) => r.text());
    expect(text).toContain(`switchyard_queue_depth{model="${MODEL}",state="waiting"}`);
    expect(text).toMatch(/switchyard_time_to_first_token_seconds_bucket\{le="120",model="qwen2.5:0.5b",cold="(true|false)"\} [1-9]/);
    expect(text).toMatch(/switchyard_jobs_submitted_total\{model="qwen2.5:0.5b",priority="interactive"\} [1-9]/);
    expect(text).toContain('switchyard_http_requests_total{method="POST",route="/v1/jobs",status="202"}');
  });
});
