import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { Ollama, type ChatResponse } from 'ollama';
import { ChatOpenAI } from '@langchain/openai';
import { ChatOllama } from '@langchain/ollama';
import { HumanMessage, ToolMessage, type AIMessage } from '@langchain/core/messages';
import { Redis } from 'ioredis';
import { redisKeys } from '@switchyard/protocol';
import { ScriptedJobs } from '@switchyard/redis';
import { getJob, jobStatus, submitJob } from '../support/client.js';
import { readSse } from '../support/sse.js';
import { startStack, type Stack } from '../support/stack.js';

/**
 * Tool calls through the queue on the three wires, judged by the official clients unchanged:
 * openai-node (create, stream, runTools), ollama-js, LangChain (ChatOpenAI, ChatOllama), and
 * the native job API (tool_call events, result.tool_calls). The simulator's tool-capable chat
 * models call a tool when offered tools and answer in text once the last message is a tool's
 * result.
 */

const MODEL = 'qwen2.5:0.5b';
/** A vision model without tool support, in the simulator's catalog. */
const NO_TOOLS_MODEL = 'llava:7b';
const EMBEDDING_MODEL = 'nomic-embed-text:latest';

const WEATHER = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'The current weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string', description: 'the city' } }, required: ['city'] },
  },
};
const TIME = {
  type: 'function' as const,
  function: { name: 'get_time', description: 'The current time in a time zone', parameters: { type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'] } },
};

function openAiClient(stack: Stack): OpenAI {
  return new OpenAI({ baseURL: `${stack.apiUrl}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 30_000 });
}

async function post(stack: Stack, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(`${stack.apiUrl}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, json: await response.json() };
}

describe('tool calls on every wire, judged by the official clients', () => {
  let stack: Stack;
  let openai: OpenAI;
  let ollama: Ollama;
  beforeAll(async () => {
    stack = await startStack({ nodes: [{ agent: { slots: 2 } }] });
    openai = openAiClient(stack);
    ollama = new Ollama({ host: stack.apiUrl });
  });
  afterAll(async () => {
    await stack?.close();
  });

  describe('OpenAI (openai-node)', () => {
    it('answers a call non-streamed: content null, JSON-string arguments, finish_reason tool_calls; the job record shows the calls', async () => {
      const { data: completion, response } = await openai.chat.completions
        .create({ model: MODEL, messages: [{ role: 'user', content: 'What is the weather in Paris?' }], tools: [WEATHER], tool_choice: 'required' })
        .withResponse();
      const choice = completion.choices[0]!;
      expect(choice.finish_reason).toBe('tool_calls');
      expect(choice.message.content).toBeNull();
      const calls = choice.message.tool_calls!;
      expect(calls.length).toBeGreaterThan(0);
      const call = calls[0]!;
      expect(call).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
      expect(call.id).toMatch(/^call_/);
      if (call.type !== 'function') throw new Error('a function call');
      const args = JSON.parse(call.function.arguments) as Record<string, unknown>;
      expect(typeof args['city']).toBe('string');

      const jobId = response.headers.get('x-switchyard-job-id')!;
      const record = await getJob(stack, jobId);
      expect(record).toMatchObject({ status: 'completed', result: { finish_reason: 'tool_calls' } });
      expect(record.result.tool_calls[0]).toEqual({ id: call.id, name: 'get_weather', arguments: args });
    });

    it('calls the named tool for tool_choice {function}, and no tool for tool_choice none', async () => {
      const named = await openai.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'What time is it in Tokyo?' }],
        tools: [WEATHER, TIME],
        tool_choice: { type: 'function', function: { name: 'get_time' } },
      });
      expect(named.choices[0]!.message.tool_calls!.map((call) => (call.type === 'function' ? call.function.name : call.type))).toEqual(expect.arrayContaining(['get_time']));
      expect(named.choices[0]!.message.tool_calls!.every((call) => call.type === 'function' && call.function.name === 'get_time')).toBe(true);

      const none = await openai.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
        tools: [WEATHER],
        tool_choice: 'none',
        max_tokens: 20,
      });
      expect(none.choices[0]!.message.tool_calls).toBeUndefined();
      expect(none.choices[0]!.finish_reason).toMatch(/^(stop|length)$/);
      expect(none.choices[0]!.message.content!.length).toBeGreaterThan(0);
    });

    it('streams a call as ChatCompletionStream assembles it: opening chunk, argument fragments, finish_reason tool_calls', async () => {
      const raw = await openai.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'Weather in Rome?' }],
        tools: [WEATHER],
        tool_choice: 'required',
        stream: true,
      });
      const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
      for await (const chunk of raw) chunks.push(chunk);
      const deltas = chunks.flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? []);
      expect(deltas[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'get_weather', arguments: '' } });
      expect(deltas[0]!.id).toMatch(/^call_/);
      const fragments = deltas.filter((delta) => delta.index === 0).slice(1);
      expect(fragments.length).toBeGreaterThan(1);
      for (const fragment of fragments) expect(fragment.id).toBeUndefined();
      expect(JSON.parse(fragments.map((fragment) => fragment.function!.arguments).join(''))).toHaveProperty('city');
      expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('tool_calls');

      // The helper that assembles a stream (and emits its tool-call events) reads the same.
      const stream = openai.chat.completions.stream({ model: MODEL, messages: [{ role: 'user', content: 'Weather in Oslo?' }], tools: [WEATHER], tool_choice: 'required' });
      const done: Array<{ name: string; arguments: string }> = [];
      stream.on('tool_calls.function.arguments.done', (event) => done.push({ name: event.name, arguments: event.arguments }));
      const final = await stream.finalChatCompletion();
      const call = final.choices[0]!.message.tool_calls![0]!;
      expect(final.choices[0]!.finish_reason).toBe('tool_calls');
      if (call.type !== 'function') throw new Error('a function call');
      expect(done).toEqual([{ name: 'get_weather', arguments: call.function.arguments }]);
      expect(JSON.parse(call.function.arguments)).toHaveProperty('city');
    });

    it('runs a whole tool round trip with runTools: the call, the tool result sent back by id, the final answer in text', async () => {
      const seen: unknown[] = [];
      const runner = openai.chat.completions.runTools({
        model: MODEL,
        messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
        tools: [
          {
            type: 'function',
            function: {
              name: 'get_weather',
              description: WEATHER.function.description,
              parameters: WEATHER.function.parameters,
              parse: JSON.parse,
              function: (args: { city: string }) => {
                seen.push(args);
                return { city: args.city, forecast: 'sunny', celsius: 21 };
              },
            },
          },
        ],
        // No max_tokens: the runner refuses an answer cut at the length limit (LengthFinishReasonError).
      });
      const content = await runner.finalContent();
      expect(seen.length).toBeGreaterThan(0);
      expect(typeof (seen[0] as { city: unknown }).city).toBe('string');
      expect(content).toBeTruthy();
      const messages = runner.messages;
      const toolTurn = messages.find((message) => message.role === 'tool') as { tool_call_id: string } | undefined;
      const assistant = messages.find((message) => message.role === 'assistant' && 'tool_calls' in message && message.tool_calls) as
        { tool_calls: Array<{ id: string }> } | undefined;
      expect(toolTurn?.tool_call_id).toBe(assistant?.tool_calls[0]!.id);
      expect(messages.at(-1)).toMatchObject({ role: 'assistant', content });
      // The tool turn reached the model named by the call its tool_call_id answers.
      expect(content).toMatch(/^The get_weather tool returned /);
    });

    it('answers parallel calls, streamed each under its own index, and one call with parallel_tool_calls false', async () => {
      const messages = [{ role: 'user' as const, content: 'Weather and time in Tokyo?' }];
      const both = await openai.chat.completions.create({ model: MODEL, messages, tools: [WEATHER, TIME] });
      const names = both.choices[0]!.message.tool_calls!.map((call) => (call.type === 'function' ? call.function.name : ''));
      expect(names.sort()).toEqual(['get_time', 'get_weather']);
      expect(new Set(both.choices[0]!.message.tool_calls!.map((call) => call.id)).size).toBe(2);

      const stream = openai.chat.completions.stream({ model: MODEL, messages, tools: [WEATHER, TIME] });
      const final = await stream.finalChatCompletion();
      const streamed = final.choices[0]!.message.tool_calls!;
      expect(streamed.map((call) => (call.type === 'function' ? call.function.name : '')).sort()).toEqual(['get_time', 'get_weather']);
      for (const call of streamed) if (call.type === 'function') expect(() => JSON.parse(call.function.arguments)).not.toThrow();

      const one = await openai.chat.completions.create({ model: MODEL, messages, tools: [WEATHER, TIME], parallel_tool_calls: false });
      expect(one.choices[0]!.message.tool_calls).toHaveLength(1);
    });

    it('streams a runTools round trip too', async () => {
      const runner = openai.chat.completions.runTools({
        model: MODEL,
        messages: [{ role: 'user', content: 'Weather in Lima?' }],
        tools: [
          {
            type: 'function',
            function: {
              name: 'get_weather',
              description: 'weather',
              parameters: WEATHER.function.parameters,
              parse: JSON.parse,
              function: (_args: { city: string }) => 'cloudy, 14 °C',
            },
          },
        ],
        stream: true,
        max_tokens: 30,
      });
      const content = await runner.finalContent();
      expect(content).toBeTruthy();
      expect(runner.messages.some((message) => message.role === 'tool' && message.content === 'cloudy, 14 °C')).toBe(true);
    });
  });

  describe('Ollama (ollama-js)', () => {
    it('answers calls with object arguments, streamed and not, and takes the tool result back by tool_name', async () => {
      const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
      const whole = await ollama.chat({ model: MODEL, messages, tools: [WEATHER], stream: false });
      expect(whole.done).toBe(true);
      const call = whole.message.tool_calls![0]!;
      expect(call.function.name).toBe('get_weather');
      expect(typeof call.function.arguments['city']).toBe('string');

      const parts: ChatResponse[] = [];
      for await (const part of await ollama.chat({ model: MODEL, messages, tools: [WEATHER], stream: true })) parts.push(part);
      const streamedCalls = parts.flatMap((part) => part.message.tool_calls ?? []);
      expect(streamedCalls[0]!.function).toMatchObject({ name: 'get_weather' });
      expect(typeof streamedCalls[0]!.function.arguments).toBe('object');
      expect(parts.at(-1)!.done).toBe(true);

      const answer = await ollama.chat({
        model: MODEL,
        messages: [...messages, whole.message, { role: 'tool', content: '{"forecast":"sunny"}', tool_name: 'get_weather' } as never],
        tools: [WEATHER],
        stream: false,
        options: { num_predict: 30 },
      });
      expect(answer.message.tool_calls ?? []).toEqual([]);
      expect(answer.message.content.length).toBeGreaterThan(0);
    });
  });

  describe('LangChain', () => {
    it('ChatOpenAI.bindTools reads the calls as LangChain tool calls and takes the ToolMessage back', async () => {
      const model = new ChatOpenAI({ model: MODEL, apiKey: 'sk-test', configuration: { baseURL: `${stack.apiUrl}/v1` }, maxRetries: 0 }).bindTools([WEATHER]);
      const question = new HumanMessage('What is the weather in Paris?');
      const called = (await model.invoke([question])) as AIMessage;
      expect(called.tool_calls?.[0]).toMatchObject({ name: 'get_weather', type: 'tool_call' });
      expect(typeof called.tool_calls![0]!.args['city']).toBe('string');
      const answer = (await model.invoke([question, called, new ToolMessage({ content: 'sunny', tool_call_id: called.tool_calls![0]!.id! })])) as AIMessage;
      expect(answer.tool_calls ?? []).toEqual([]);
      expect(String(answer.content).length).toBeGreaterThan(0);
    });

    it('ChatOllama.bindTools reads the calls the same way', async () => {
      const model = new ChatOllama({ model: MODEL, baseUrl: stack.apiUrl, maxRetries: 0 }).bindTools([WEATHER]);
      const question = new HumanMessage('What is the weather in Paris?');
      const called = (await model.invoke([question])) as AIMessage;
      expect(called.tool_calls?.[0]).toMatchObject({ name: 'get_weather' });
      expect(typeof called.tool_calls![0]!.args['city']).toBe('string');
      const answer = (await model.invoke([question, called, new ToolMessage({ content: 'sunny', tool_call_id: called.tool_calls![0]!.id! })])) as AIMessage;
      expect(String(answer.content).length).toBeGreaterThan(0);
    });
  });

  describe('native jobs', () => {
    it('streams tool_call events over SSE and shows result.tool_calls on the record', async () => {
      const job = await submitJob(stack, { model: MODEL, messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [WEATHER], tool_choice: 'required' });
      const { events, messages } = await readSse(`${stack.apiUrl}${job.links.events}`, { stopAfter: (event) => event.type === 'done' || event.type === 'error' });
      // The SSE event name is the type, as for every event.
      expect(messages.some((message) => message.event === 'tool_call')).toBe(true);
      const calls = events.filter((event) => event.type === 'tool_call');
      expect(calls[0]).toMatchObject({ index: 0, id: `call_${job.id}_0`, name: 'get_weather' });
      expect(typeof calls[0]!.arguments['city']).toBe('string');
      const done = events.at(-1)!;
      expect(done).toMatchObject({ type: 'done', finish_reason: 'tool_calls' });
      await expect.poll(async () => (await getJob(stack, job.id)).status).toBe('completed');
      const record = await getJob(stack, job.id);
      expect(record.result.tool_calls).toEqual(calls.map(({ id, name, arguments: args }) => ({ id, name, arguments: args })));
    });
  });

  describe('capabilities (the fleet shared each model /api/show capabilities)', () => {
    it('refuses tools on a model without tool support, and chat on an embedding model, before queueing, on every wire', async () => {
      // The agents share model info shortly after they start.
      const keys = redisKeys(stack.prefix);
      const redis = new Redis(stack.redisUrl);
      try {
        await expect.poll(() => redis.exists(keys.modelInfo(NO_TOOLS_MODEL), keys.modelInfo(EMBEDDING_MODEL)), { timeout: 10_000 }).toBe(2);
      } finally {
        redis.disconnect();
      }
      const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];

      const openAi = await post(stack, '/v1/chat/completions', { model: NO_TOOLS_MODEL, messages, tools: [WEATHER] });
      expect(openAi.status).toBe(400);
      expect(openAi.json.error).toMatchObject({ code: 'model_unsupported', param: 'tools', type: 'invalid_request_error' });
      expect(openAi.json.error.message).toMatch(/llava:7b.*tools/);

      const ollamaWire = await post(stack, '/api/chat', { model: NO_TOOLS_MODEL, messages, tools: [WEATHER], stream: false });
      expect(ollamaWire.status).toBe(400);
      expect(ollamaWire.json.error).toMatch(/llava:7b.*does not support tools/);

      const native = await post(stack, '/v1/jobs', { model: NO_TOOLS_MODEL, messages, tools: [WEATHER] });
      expect(native).toMatchObject({ status: 400, json: { error: { code: 'model_unsupported' } } });

      // tool_choice none sends no tools: not refused.
      const none = await post(stack, '/v1/chat/completions', { model: NO_TOOLS_MODEL, messages, tools: [WEATHER], tool_choice: 'none', max_tokens: 5 });
      expect(none.status).toBe(200);

      for (const [path, body] of [
        ['/v1/chat/completions', { model: EMBEDDING_MODEL, messages }],
        ['/v1/completions', { model: EMBEDDING_MODEL, prompt: 'hi' }],
        ['/api/chat', { model: EMBEDDING_MODEL, messages, stream: false }],
        ['/api/generate', { model: EMBEDDING_MODEL, prompt: 'hi' }],
        ['/v1/jobs', { model: EMBEDDING_MODEL, prompt: 'hi' }],
      ] as const) {
        const { status, json } = await post(stack, path, body);
        expect(status, path).toBe(400);
        expect(JSON.stringify(json), path).toMatch(/nomic-embed-text:latest.*does not support (chat|generate).*completion/);
      }
      const error = await openai.chat.completions.create({ model: EMBEDDING_MODEL, messages: [{ role: 'user', content: 'hi' }] }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error).toMatchObject({ code: 'model_unsupported' });
    });
  });

  describe('calls and failures written into a job log as an agent writes them', () => {
    let redis: Redis;
    let scripted: ScriptedJobs;
    beforeAll(() => {
      redis = new Redis(stack.redisUrl);
      scripted = new ScriptedJobs(redis, redisKeys(stack.prefix));
    });
    afterAll(() => redis?.disconnect());

    /** A job held queued behind two held ones (the agent has two slots), so only the script writes its events. */
    async function queuedBehindBlockers(): Promise<void> {
      stack.hold({ prompt: 'occupy a slot', afterTokens: 1 });
      for (let i = 0; i < 2; i++) {
        const blocker = await submitJob(stack, { model: 'llama3.1:8b', prompt: 'occupy a slot', options: { num_predict: 1_000 } });
        await expect.poll(() => jobStatus(stack, blocker.id), { timeout: 10_000 }).toBe('running');
      }
    }

    it('a job the backend refused as beyond the model (model_unsupported) is a 400 non-streamed and an error chunk or line mid-stream', async () => {
      await queuedBehindBlockers();
      const message = '"qwen2.5:0.5b" does not support tools';
      const fail = async (jobId: string) => {
        await expect.poll(() => jobStatus(stack, jobId), { timeout: 5_000 }).toBe('queued');
        await scripted.append(jobId, { type: 'error', code: 'model_unsupported', message });
      };
      const jobIdOf = (response: Response) => response.headers.get('x-switchyard-job-id')!;
      const body = (extra: Record<string, unknown>) => JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'scripted' }], tools: [WEATHER], ...extra });

      const openAiWhole = fetch(`${stack.apiUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body({}) });
      const ollamaWhole = fetch(`${stack.apiUrl}/api/chat`, { method: 'POST', body: body({ stream: false }) });
      const openAiStream = await fetch(`${stack.apiUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: body({ stream: true }),
      });
      const ollamaStream = await fetch(`${stack.apiUrl}/api/chat`, { method: 'POST', body: body({}) });
      await fail(jobIdOf(openAiStream));
      await fail(jobIdOf(ollamaStream));
      expect(await openAiStream.text()).toMatch(
        /data: \{"error":\{"message":"\\"qwen2.5:0.5b\\" does not support tools","type":"invalid_request_error","param":null,"code":"model_unsupported"\}\}/,
      );
      expect((await ollamaStream.text()).trim().split('\n').at(-1)).toBe(JSON.stringify({ error: message }));

      // The non-streamed requests answer when their jobs end: find them by their records.
      await expect.poll(async () => (await queuedJobs(stack)).length, { timeout: 5_000 }).toBe(2);
      for (const id of await queuedJobs(stack)) await scripted.append(id, { type: 'error', code: 'model_unsupported', message });
      const [openAi, ollamaAnswer] = await Promise.all([openAiWhole, ollamaWhole]);
      expect(openAi.status).toBe(400);
      expect(openAi.headers.get('x-should-retry')).toBe('false');
      expect(((await openAi.json()) as any).error).toMatchObject({ code: 'model_unsupported', message });
      expect(ollamaAnswer.status).toBe(400);
      expect(await ollamaAnswer.json()).toEqual({ error: message });
    });

    it('streams scripted calls to OpenAI and Ollama clients in their shapes', async () => {
      await queuedBehindBlockers();
      const call = { id: 'call_scripted_0', name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } };
      const usage = { prompt_tokens: 5, completion_tokens: 7 };
      const timings = { queued_ms: 1, load_ms: 0, ttft_ms: 2, total_ms: 3 };
      const script = async (jobId: string) => {
        await scripted.append(jobId, { type: 'started', agent: 'agent-0', cold: false, load_ms: 0 });
        await scripted.append(jobId, { type: 'tool_call', index: 0, ...call });
        await scripted.append(jobId, { type: 'done', finish_reason: 'tool_calls', usage, timings });
      };
      const stream = openai.chat.completions.stream({ model: MODEL, messages: [{ role: 'user', content: 'scripted' }], tools: [WEATHER] });
      const first = await new Promise<OpenAI.Chat.Completions.ChatCompletionChunk>((resolve) => stream.once('chunk', resolve));
      await script(first.id.slice('chatcmpl-'.length));
      const final = await stream.finalChatCompletion();
      expect(final.choices[0]).toMatchObject({
        finish_reason: 'tool_calls',
        message: { role: 'assistant', tool_calls: [{ id: call.id, type: 'function', function: { name: 'get_weather', arguments: JSON.stringify(call.arguments) } }] },
      });

      const response = await fetch(`${stack.apiUrl}/api/chat`, {
        method: 'POST',
        body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'scripted' }], tools: [WEATHER] }),
      });
      await script(response.headers.get('x-switchyard-job-id')!);
      const lines = (await response.text())
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
      expect(lines[0]).toMatchObject({
        done: false,
        message: { role: 'assistant', content: '', tool_calls: [{ function: { index: 0, name: 'get_weather', arguments: call.arguments } }] },
      });
      expect(lines.at(-1)).toMatchObject({ done: true, done_reason: 'stop' });
    });
  });
});

/** Ids of the stack's queued jobs (the ones the scripted tests wait on). */
async function queuedJobs(stack: Stack): Promise<string[]> {
  const redis = new Redis(stack.redisUrl);
  try {
    const keys = redisKeys(stack.prefix);
    const ids: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', keys.job('*'), 'COUNT', 1000);
      cursor = next;
      for (const key of found) {
        const [status, model] = await redis.hmget(key, 'status', 'model');
        const id = /\{([^}]+)\}$/.exec(key)?.[1];
        if (status === 'queued' && model === MODEL && id !== undefined) ids.push(id);
      }
    } while (cursor !== '0');
    return ids;
  } finally {
    redis.disconnect();
  }
}
