import { describe, expect, expectTypeOf, it } from 'vitest';
import { ErrorCode, SwitchyardClient, SwitchyardError, type JobRequestInput, type StreamEvent, type ToolCallOutcome } from './index.js';
import toolCallFixture from './fixtures/tool-call.json' with { type: 'json' };
import parallelFixture from './fixtures/parallel-tool-calls.json' with { type: 'json' };
import embedFixture from './fixtures/embed.json' with { type: 'json' };
import embedUnsupportedFixture from './fixtures/embed-unsupported.json' with { type: 'json' };

/** A job as recorded from a test stack (see the fixture's `note`). */
interface JobFixture {
  request: unknown;
  accepted: { status: number; body: { id: string; model?: string; status?: string; links: { self: string; events: string } } };
  events: { body: string };
  record: Record<string, unknown>;
}

const TOOL_CALL: JobFixture = toolCallFixture;
const PARALLEL: JobFixture = parallelFixture;
const EMBED: JobFixture = embedFixture;
const EMBED_UNSUPPORTED: { status: number; body: unknown } = embedUnsupportedFixture;

/**
 * A fetch that answers like the API did when the fixture was recorded: POST /v1/jobs with
 * its 202, the events route with its SSE (cut into small chunks, as a network may), and the
 * job's record. Records every request body it was sent.
 */
function replay(job: Pick<JobFixture, 'accepted' | 'events'> & { record?: unknown }, options: { submit?: { status: number; body: unknown } } = {}) {
  const posted: unknown[] = [];
  const fetchImpl = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input));
    const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
    if (init?.method === 'POST' && url.pathname === '/v1/jobs') {
      posted.push(JSON.parse(String(init.body)));
      return options.submit ? json(options.submit.status, options.submit.body) : json(202, job.accepted.body);
    }
    if (url.pathname === job.accepted.body.links.events) {
      const text = job.events.body;
      const chunks = Array.from({ length: Math.ceil(text.length / 37) }, (_, index) => text.slice(index * 37, index * 37 + 37));
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          const chunk = chunks.shift();
          if (chunk === undefined) controller.close();
          else controller.enqueue(encoder.encode(chunk));
        },
      });
      return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream; charset=utf-8' } });
    }
    if (url.pathname === job.accepted.body.links.self && job.record) return json(200, job.record);
    return json(404, { error: { code: 'not_found', message: `${url.pathname} is not in the fixture` } });
  }) as typeof fetch;
  return { client: new SwitchyardClient({ baseUrl: 'http://api.test', fetch: fetchImpl }), posted };
}

/** A job whose stream is made of these events (seq assigned in order). */
function scripted(events: Array<Record<string, unknown> & { type: string }>) {
  const body = events.map((event, index) => `id: ${index + 1}\nevent: ${event.type}\ndata: ${JSON.stringify({ seq: index + 1, ...event })}\n\n`).join('');
  return replay({
    accepted: { status: 202, body: { id: 'job1', model: 'm', status: 'queued', links: { self: '/v1/jobs/job1', events: '/v1/jobs/job1/events' } } },
    events: { body },
  });
}

const DONE = { type: 'done', usage: { prompt_tokens: 1, completion_tokens: 2 }, timings: { queued_ms: 0, load_ms: 0, ttft_ms: 1, total_ms: 2 } };
const call = (index: number, name: string, args: Record<string, unknown>) => ({ type: 'tool_call', index, id: `call_job1_${index}`, name, arguments: args });

describe('tool calls', () => {
  it('stream() yields tool_call events, typed by their type', async () => {
    const { client } = replay(TOOL_CALL);
    const events: StreamEvent[] = [];
    for await (const event of client.stream(TOOL_CALL.accepted.body.id)) {
      events.push(event);
      if (event.type === 'tool_call') {
        expectTypeOf(event.index).toEqualTypeOf<number>();
        expectTypeOf(event.name).toEqualTypeOf<string>();
        expectTypeOf(event.arguments).toEqualTypeOf<Record<string, unknown>>();
      }
    }
    expect(events.map((event) => event.type)).toEqual(['queued', 'started', 'tool_call', 'done']);
    expect(events[2]).toEqual({
      seq: 3,
      type: 'tool_call',
      index: 0,
      id: `call_${TOOL_CALL.accepted.body.id}_0`,
      name: 'get_weather',
      arguments: { city: 'Santiago' },
    });
    expect(events[3]).toMatchObject({ type: 'done', finish_reason: 'tool_calls' });
  });

  it('run() sends tools, tool_choice and parallel_tool_calls, and resolves with the calls in index order', async () => {
    const { client, posted } = replay(PARALLEL);
    const request: JobRequestInput = { ...(PARALLEL.request as JobRequestInput), parallel_tool_calls: true };
    const seen: string[] = [];
    const outcome = await client.run(request, { onEvent: (event) => seen.push(event.type) });
    expect(posted).toEqual([request]);
    expect(seen).toEqual(['queued', 'started', 'tool_call', 'tool_call', 'done']);
    expect(outcome.text).toBe('');
    expect(outcome.done.finish_reason).toBe('tool_calls');
    expect(outcome.tool_calls).toEqual([
      { index: 0, id: `call_${PARALLEL.accepted.body.id}_0`, name: 'get_weather', arguments: { city: 'Hanoi' } },
      { index: 1, id: `call_${PARALLEL.accepted.body.id}_1`, name: 'get_time', arguments: { zone: 'through was' } },
    ]);
    expectTypeOf(outcome.tool_calls).toEqualTypeOf<ToolCallOutcome[] | undefined>();
    expect(outcome.embeddings).toBeUndefined();
  });

  it('run() leaves tool_calls out when the model answered in text', async () => {
    const { client } = scripted([
      { type: 'token', text: 'sunny' },
      { ...DONE, finish_reason: 'stop' },
    ]);
    const outcome = await client.run({ model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'f' } }] });
    expect(outcome).toMatchObject({ text: 'sunny', restarts: 0 });
    expect(outcome).not.toHaveProperty('tool_calls');
  });

  it('run(): a restart voids the calls made before it; a call sent again under its index replaces the first copy', async () => {
    const { client } = scripted([
      call(0, 'get_weather', { city: 'Lost' }),
      { type: 'restarted', reason: 'agent lost', attempt: 2 },
      call(1, 'get_time', { zone: 'UTC' }),
      call(0, 'get_weather', { city: 'Paris' }),
      { type: 'resumed', attempt: 3, after_seq: 4 },
      call(0, 'get_weather', { city: 'Paris' }),
      { ...DONE, finish_reason: 'tool_calls' },
    ]);
    const outcome = await client.run({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    expect(outcome.restarts).toBe(1);
    expect(outcome.tool_calls).toEqual([
      { index: 0, id: 'call_job1_0', name: 'get_weather', arguments: { city: 'Paris' } },
      { index: 1, id: 'call_job1_1', name: 'get_time', arguments: { zone: 'UTC' } },
    ]);
  });

  it('get() shows result.tool_calls', async () => {
    const { client } = replay(PARALLEL);
    const record = await client.get(PARALLEL.accepted.body.id);
    expect(record.result?.finish_reason).toBe('tool_calls');
    expect(record.result?.tool_calls?.map((toolCall) => toolCall.name)).toEqual(['get_weather', 'get_time']);
  });
});

describe('embed()', () => {
  const vectors = (EMBED.record as { result: { embeddings: number[][] } }).result.embeddings;

  it('submits a kind "embed" job and resolves with its vectors, in input order', async () => {
    const { client, posted } = replay(EMBED);
    const submitted: string[] = [];
    const events: string[] = [];
    const result = await client.embed('nomic-embed-text:latest', ['first text', 'second text'], {
      dimensions: 8,
      truncate: false,
      priority: 'batch',
      onSubmitted: (job) => submitted.push(job.id),
      onEvent: (event) => events.push(event.type),
    });
    expect(posted).toEqual([{ kind: 'embed', model: 'nomic-embed-text:latest', input: ['first text', 'second text'], dimensions: 8, truncate: false, priority: 'batch' }]);
    expect(result).toEqual(vectors);
    expect(result.map((vector) => vector.length)).toEqual([8, 8]);
    expect(submitted).toEqual([EMBED.accepted.body.id]);
    expect(events).toEqual(['queued', 'started', 'done']);
  });

  it('run() with kind "embed" gives the vectors with the done event (usage, timings)', async () => {
    const { client } = replay(EMBED);
    const outcome = await client.run(EMBED.request as JobRequestInput);
    expect(outcome.embeddings).toEqual(vectors);
    expect(outcome.done.embeddings).toEqual(vectors);
    expect(outcome.done.usage.prompt_tokens).toBe(6);
    expect(outcome.text).toBe('');
    expect(outcome).not.toHaveProperty('tool_calls');
  });

  it('get() shows result.embeddings', async () => {
    const { client } = replay(EMBED);
    expect((await client.get(EMBED.accepted.body.id)).result?.embeddings).toEqual(vectors);
  });

  it('rejects with model_unsupported when the model cannot embed', async () => {
    const { client } = replay(EMBED, { submit: EMBED_UNSUPPORTED });
    const error = (await client.embed('qwen2.5:0.5b', 'x').catch((caught: unknown) => caught)) as SwitchyardError;
    expect(error).toBeInstanceOf(SwitchyardError);
    expect(error).toMatchObject({ code: ErrorCode.modelUnsupported, status: 400 });
    expect(error.message).toMatch(/does not support embeddings/);
  });

  it('rejects with invalid_response when the job ends without one vector per input', async () => {
    const one = scripted([{ ...DONE, finish_reason: 'stop', embeddings: [[0.1, 0.2]] }]);
    expect(await one.client.embed('e', 'a single text')).toEqual([[0.1, 0.2]]);
    const short = scripted([{ ...DONE, finish_reason: 'stop', embeddings: [[0.1, 0.2]] }]);
    await expect(short.client.embed('e', ['a', 'b'])).rejects.toMatchObject({ code: 'invalid_response', message: expect.stringMatching(/1 vector\(s\) for 2 input/) });
    const none = scripted([{ ...DONE, finish_reason: 'stop' }]);
    await expect(none.client.embed('e', 'a')).rejects.toMatchObject({ code: 'invalid_response', message: expect.stringMatching(/no embeddings/) });
  });

  it('passes an error event on as a SwitchyardError with its code and the job id', async () => {
    const { client } = scripted([{ type: 'error', code: 'model_unsupported', message: 'this model does not support embeddings' }]);
    await expect(client.embed('e', 'a')).rejects.toMatchObject({ code: 'model_unsupported', jobId: 'job1' });
  });
});

describe('request types', () => {
  it('accept the fields of both job kinds', () => {
    expectTypeOf<{ kind: 'embed'; model: string; input: string[]; truncate: boolean; dimensions: number }>().toExtend<JobRequestInput>();
    expectTypeOf<{
      model: string;
      messages: [{ role: 'user'; content: string }];
      tools: [{ type: 'function'; function: { name: string; parameters: Record<string, unknown> } }];
      tool_choice: { type: 'function'; function: { name: string } };
      parallel_tool_calls: boolean;
    }>().toExtend<JobRequestInput>();
    expectTypeOf<{ model: string; kind: 'classify' }>().not.toExtend<JobRequestInput>();
  });
});
