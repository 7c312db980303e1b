/** Tool calls, structured outputs, images and the "does not support" refusals, over real HTTP. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { OllamaChatLine, OllamaClientStreamLine, OllamaErrorBody, OllamaFinalMetrics, OllamaGenerateLine } from '@switchyard/protocol';
import { post, ps, readNdjson, startSim, stats, type Line } from '../test-support.js';

const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: {
      type: 'object',
      properties: { location: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] }, days: { type: 'integer', minimum: 1, maximum: 5 } },
      required: ['location', 'unit'],
    },
  },
};
const ADD = {
  type: 'function',
  function: {
    name: 'add',
    parameters: {
      type: 'object',
      properties: { a: { type: 'number' }, b: { type: 'number' }, tags: { type: 'array', items: { type: 'string' }, minItems: 2 } },
      required: ['a', 'b', 'tags'],
    },
  },
};
const NO_PARAMS = { type: 'function', function: { name: 'now' } };

const USER = [{ role: 'user', content: 'What is the weather in Paris?' }];

type ToolCall = { function: { index?: number; name: string; arguments: Record<string, unknown> } };
type ChatAnswer = Line & { message: { role: string; content: string; tool_calls?: ToolCall[] } };

function expectValid(schema: unknown, value: unknown) {
  const result = z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]).safeParse(value);
  expect(result.success, `${JSON.stringify(value)}: ${result.error?.message ?? ''}`).toBe(true);
}

async function chat(sim: Awaited<ReturnType<typeof startSim>>, body: Record<string, unknown>): Promise<ChatAnswer> {
  const response = await post(sim, '/api/chat', { stream: false, ...body });
  const answer = (await response.json()) as ChatAnswer;
  if (response.status !== 200) throw new Error(`chat answered ${response.status}: ${JSON.stringify(answer)}`);
  return answer;
}

describe('tool calls on /api/chat', () => {
  it('answers a user turn with a call to the named tool, arguments matching its schema', async () => {
    const sim = await startSim();
    const answer = await chat(sim, {
      model: 'qwen2.5:0.5b',
      messages: USER,
      tools: [WEATHER, ADD],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
    });
    expect(OllamaChatLine.safeParse(answer).success).toBe(true);
    expect(OllamaFinalMetrics.safeParse(answer).success).toBe(true);
    expect(answer).toMatchObject({ done: true, done_reason: 'stop', message: { role: 'assistant', content: '' } });
    const calls = answer.message.tool_calls ?? [];
    expect(calls).toHaveLength(1);
    expect(calls[0]?.function).toMatchObject({ index: 0, name: 'get_weather' });
    expectValid(WEATHER.function.parameters, calls[0]?.function.arguments);
    expect(answer.eval_count as number).toBeGreaterThan(0);
    expect((await stats(sim)).tool_calls_total).toBe(1);
  });

  it('calls two tools when parallel calls are allowed, one when parallel_tool_calls is false; deterministically', async () => {
    const sim = await startSim();
    const request = { model: 'llama3.1:8b', messages: USER, tools: [WEATHER, ADD, NO_PARAMS] };
    const two = await chat(sim, request);
    const names = (two.message.tool_calls ?? []).map((call) => call.function.name);
    expect(names).toHaveLength(2);
    expect(new Set(names).size).toBe(2);
    expect((two.message.tool_calls ?? []).map((call) => call.function.index)).toEqual([0, 1]);
    for (const call of two.message.tool_calls ?? []) {
      const tool = [WEATHER, ADD, NO_PARAMS].find((t) => t.function.name === call.function.name);
      if (tool && 'parameters' in tool.function) expectValid(tool.function.parameters, call.function.arguments);
      else expect(call.function.arguments).toEqual({});
    }
    expect((await chat(sim, request)).message).toEqual(two.message);
    expect((await chat(sim, { ...request, tool_choice: 'required' })).message.tool_calls).toHaveLength(2);
    const one = await chat(sim, { ...request, parallel_tool_calls: false });
    expect((one.message.tool_calls ?? []).map((call) => call.function.name)).toEqual([names[0]]);
    // A lone tool is called alone.
    expect((await chat(sim, { ...request, tools: [ADD] })).message.tool_calls?.map((call) => call.function.name)).toEqual(['add']);
  });

  it('streams a call as one tool_calls line, then the final line', async () => {
    const sim = await startSim();
    const lines = await readNdjson(await post(sim, '/api/chat', { model: 'llama3.2:3b', messages: USER, tools: [WEATHER], parallel_tool_calls: false }));
    expect(lines).toHaveLength(2);
    const [callLine, final] = lines as [ChatAnswer, ChatAnswer];
    expect(Object.keys(callLine)).toEqual(['model', 'created_at', 'message', 'done']);
    expect(callLine).toMatchObject({ model: 'llama3.2:3b', done: false, message: { role: 'assistant', content: '' } });
    expect(callLine.message.tool_calls?.[0]?.function.name).toBe('get_weather');
    expectValid(WEATHER.function.parameters, callLine.message.tool_calls?.[0]?.function.arguments);
    expect(final).toMatchObject({ done: true, done_reason: 'stop', message: { role: 'assistant', content: '' } });
    expect(final.message.tool_calls).toBeUndefined();
    for (const line of lines) {
      expect(OllamaChatLine.safeParse(line).success).toBe(true);
      expect(OllamaClientStreamLine.safeParse(line).success).toBe(true);
    }
    // The same call as the whole answer.
    const whole = await chat(sim, { model: 'llama3.2:3b', messages: USER, tools: [WEATHER], parallel_tool_calls: false });
    expect(whole.message.tool_calls).toEqual(callLine.message.tool_calls);
  });

  it('answers a tool result in text that quotes it', async () => {
    const sim = await startSim();
    const messages = [
      ...USER,
      { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { location: 'Paris', unit: 'celsius' } } }] },
      { role: 'tool', content: '{"temperature": 21, "sky": "clear"}', tool_name: 'get_weather' },
    ];
    const answer = await chat(sim, { model: 'qwen2.5:0.5b', messages, tools: [WEATHER] });
    expect(answer.message.tool_calls).toBeUndefined();
    expect(answer.message.content).toContain('The get_weather tool returned "{"temperature": 21, "sky": "clear"}".');
    expect(answer.done_reason).toBe('stop');
    const streamed = await readNdjson(await post(sim, '/api/chat', { model: 'qwen2.5:0.5b', messages, tools: [WEATHER] }));
    expect(
      streamed
        .slice(0, -1)
        .map((line) => (line as ChatAnswer).message.content)
        .join(''),
    ).toBe(answer.message.content);
    const cut = await chat(sim, { model: 'qwen2.5:0.5b', messages, options: { num_predict: 3 } });
    expect(cut).toMatchObject({ done_reason: 'length', eval_count: 3, message: { content: 'The get_weather tool ' } });
  });

  it('answers in plain text with tool_choice "none", with no tools, or when the last turn is not the user’s', async () => {
    const sim = await startSim();
    const plain = await chat(sim, { model: 'qwen2.5:0.5b', messages: USER });
    for (const body of [
      { model: 'qwen2.5:0.5b', messages: USER, tools: [WEATHER], tool_choice: 'none' },
      { model: 'qwen2.5:0.5b', messages: USER, tools: [] },
    ]) {
      const answer = await chat(sim, body);
      expect(answer.message.tool_calls).toBeUndefined();
      expect(answer.message.content).toBe(plain.message.content);
    }
    expect((await stats(sim)).tool_calls_total).toBe(0);
  });
});

describe('structured outputs (format)', () => {
  const PERSON = {
    type: 'object',
    properties: {
      name: { type: 'string' },
      age: { type: 'integer', minimum: 0, maximum: 120 },
      email: { type: 'string', format: 'email' },
      languages: { type: 'array', items: { type: 'string', enum: ['en', 'fr', 'de'] }, minItems: 1, maxItems: 3 },
      address: { type: 'object', properties: { city: { type: 'string' }, zip: { type: 'string' } }, required: ['city'] },
    },
    required: ['name', 'age', 'languages', 'address'],
  };

  it('"json" answers a JSON object, streamed in pieces that join into it', async () => {
    const sim = await startSim();
    for (const [path, field] of [
      ['/api/generate', 'response'],
      ['/api/chat', 'message'],
    ] as const) {
      const body =
        path === '/api/generate' ? { model: 'llama3.2:3b', prompt: 'List three colours', format: 'json' } : { model: 'llama3.2:3b', messages: USER, format: 'json' };
      const lines = await readNdjson(await post(sim, path, body));
      const pieces = lines.slice(0, -1).map((line) => (field === 'response' ? line.response : (line as ChatAnswer).message.content) as string);
      expect(pieces.length).toBeGreaterThan(5);
      const text = pieces.join('');
      const parsed = JSON.parse(text) as unknown;
      expect(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)).toBe(true);
      expect(lines.at(-1)).toMatchObject({ done: true, done_reason: 'stop', eval_count: pieces.length });
      for (const line of lines) expect((path === '/api/generate' ? OllamaGenerateLine : OllamaChatLine).safeParse(line).success).toBe(true);
    }
  });

  it('a JSON schema answers a document that satisfies it, the same for the same seed', async () => {
    const sim = await startSim();
    const seen = new Set<string>();
    for (let seed = 0; seed < 10; seed++) {
      const answer = (await (
        await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'Describe a person', format: PERSON, stream: false, options: { seed } })
      ).json()) as Line;
      const text = answer.response as string;
      expectValid(PERSON, JSON.parse(text));
      seen.add(text);
      const again = (await (
        await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'Describe a person', format: PERSON, stream: false, options: { seed } })
      ).json()) as Line;
      expect(again.response).toBe(text);
    }
    expect(seen.size).toBeGreaterThan(5);
    const chatted = await chat(sim, { model: 'llama3.1:8b', messages: USER, format: PERSON });
    expectValid(PERSON, JSON.parse(chatted.message.content));
  });

  it('is cut by num_predict like any answer (done_reason "length")', async () => {
    const sim = await startSim();
    const whole = (await (await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'p', format: PERSON, stream: false })).json()) as Line;
    const cut = (await (await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'p', format: PERSON, stream: false, options: { num_predict: 4 } })).json()) as Line;
    expect(cut).toMatchObject({ done_reason: 'length', eval_count: 4 });
    expect((whole.response as string).startsWith(cut.response as string)).toBe(true);
    expect((cut.response as string).length).toBeLessThan((whole.response as string).length);
  });
});

describe('images', () => {
  const PIXEL = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

  it('a vision model answers about the images, on chat and generate, and other images give other text', async () => {
    const sim = await startSim();
    const one = await chat(sim, { model: 'llava:7b', messages: [{ role: 'user', content: 'What is this?', images: [PIXEL] }] });
    expect(one.message.content).toMatch(/^The image shows [a-z]/);
    const other = await chat(sim, { model: 'llava:7b', messages: [{ role: 'user', content: 'What is this?', images: [`${PIXEL.slice(0, -4)}AAA=`] }] });
    expect(other.message.content).not.toBe(one.message.content);
    const generated = (await (await post(sim, '/api/generate', { model: 'llava:7b', prompt: 'Compare', images: [PIXEL, PIXEL], stream: false })).json()) as Line;
    expect(generated.response).toMatch(/^The 2 images show /);
    // Without images a vision model answers as any other.
    expect((await chat(sim, { model: 'llava:7b', messages: USER })).message.content).not.toMatch(/image/);
  });
});

describe('what a model does not support: 400, as Ollama says it', () => {
  it.each([
    ['chat to an embedding model', '/api/chat', { model: 'nomic-embed-text', messages: USER }, '"nomic-embed-text" does not support chat'],
    ['generate to an embedding model', '/api/generate', { model: 'all-minilm:latest', prompt: 'hi' }, '"all-minilm:latest" does not support generate'],
    ['a load-only generate to an embedding model', '/api/generate', { model: 'all-minilm' }, '"all-minilm" does not support generate'],
    ['a load-only chat to an embedding model', '/api/chat', { model: 'all-minilm', messages: [] }, '"all-minilm" does not support chat'],
    ['tools to a model without tools', '/api/chat', { model: 'llava:7b', messages: USER, tools: [WEATHER] }, 'registry.ollama.ai/library/llava:7b does not support tools'],
    [
      'images on chat to a model without vision',
      '/api/chat',
      { model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'see', images: ['aGk='] }] },
      '"qwen2.5:0.5b" does not support vision',
    ],
    ['images on generate to a model without vision', '/api/generate', { model: 'llama3.1:8b', prompt: 'see', images: ['aGk='] }, '"llama3.1:8b" does not support vision'],
  ])('%s', async (_what, path, body, error) => {
    const sim = await startSim();
    for (const stream of [true, false]) {
      const response = await post(sim, path, { ...body, stream });
      expect(response.status).toBe(400);
      expect(OllamaErrorBody.parse(await response.json())).toEqual({ error });
    }
    expect(await ps(sim)).toEqual([]);
    expect((await stats(sim)).loads_total).toBe(0);
  });

  it('names a namespaced model by its registry path', async () => {
    const sim = await startSim({ models: [{ name: 'acme/plain:1', size_bytes: 1e8 }] });
    const response = await post(sim, '/api/chat', { model: 'acme/plain:1', messages: USER, tools: [WEATHER] });
    expect(await response.json()).toEqual({ error: 'registry.ollama.ai/acme/plain:1 does not support tools' });
  });
});
