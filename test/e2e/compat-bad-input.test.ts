import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { postJob } from '../support/client.js';
import { startStack, type Stack } from '../support/stack.js';

/**
 * Bad input on every field issue 14 added (tools, tool_choice, tool call arguments, embedding
 * input, encoding_format, dimensions, images), on each wire: a 400 that names the field in the
 * wire's own shape, before anything is queued.
 */

const CHAT_MODEL = 'qwen2.5:0.5b';
const TOOL = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } };
/** Over MAX_IMAGE_BYTES (10 MiB decoded) as base64. */
const HUGE_IMAGE = 'A'.repeat(14 * 1024 * 1024);

async function post(stack: Stack, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(`${stack.apiUrl}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, json: await response.json() };
}

describe('bad input on the fields of embeddings, tools and images is a 400 naming the field, on every wire', () => {
  let stack: Stack;
  beforeAll(async () => {
    // A body large enough to carry an image over the image limit.
    stack = await startStack({ api: { bodyLimitBytes: 32 * 1024 * 1024 } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  /** An OpenAI answer: 400, OpenAI's error shape, `param` the field. */
  async function openAiParam(path: string, body: unknown): Promise<string> {
    const { status, json } = await post(stack, path, body);
    expect(status, JSON.stringify(json)).toBe(400);
    expect(json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request' });
    return json.error.param;
  }

  /** An Ollama answer: 400, `{"error": "<message>"}`. */
  async function ollamaError(path: string, body: unknown): Promise<string> {
    const { status, json } = await post(stack, path, body);
    expect(status, JSON.stringify(json)).toBe(400);
    expect(Object.keys(json)).toEqual(['error']);
    return json.error;
  }

  it('OpenAI chat: tools, tool_choice, parallel_tool_calls, history calls, legacy functions, images', async () => {
    const chat = (body: Record<string, unknown>) => openAiParam('/v1/chat/completions', { model: CHAT_MODEL, messages: [{ role: 'user', content: 'hi' }], ...body });
    const history = (args: unknown) => ({
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: args } }] },
        { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
      ],
      tools: [TOOL],
    });
    expect(await chat({ tools: [{ type: 'function', function: { name: 'get weather!' } }] })).toBe('tools[0].function.name');
    expect(await chat({ tools: [{ type: 'custom', custom: { name: 'x' } }] })).toBe('tools[0].type');
    expect(await chat({ tools: [{ type: 'function', function: { name: 'f', parameters: 'an object' } }] })).toBe('tools[0].function.parameters');
    expect(await chat({ tools: { get_weather: {} } })).toBe('tools');
    expect(await chat({ tools: [TOOL], tool_choice: 'always' })).toBe('tool_choice');
    expect(await chat({ tools: [TOOL], tool_choice: { type: 'function', function: { name: 'get_time' } } })).toBe('tool_choice');
    expect(await chat({ tool_choice: 'required' })).toBe('tool_choice');
    expect(await chat({ tools: [TOOL], parallel_tool_calls: 'yes' })).toBe('parallel_tool_calls');
    expect(await chat(history('{"city": "Paris"'))).toBe('messages[1].tool_calls[0].function.arguments');
    expect(await chat(history('["Paris"]'))).toBe('messages[1].tool_calls[0].function.arguments');
    expect(await chat(history({ city: 'Paris' }))).toBe('messages[1].tool_calls[0].function.arguments');
    expect(await chat({ functions: [{ name: 'get_weather' }] })).toBe('functions');
    expect(await chat({ function_call: 'auto' })).toBe('function_call');
    const image = (url: string) => ({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'what is this?' },
            { type: 'image_url', image_url: { url } },
          ],
        },
      ],
    });
    expect(await chat(image('data:image/png;base64,not*base64'))).toBe('messages[0].content[1].image_url');
    expect(await chat(image(`data:image/png;base64,${HUGE_IMAGE}`))).toBe('messages[0].content[1].image_url');
    expect(await chat(image('https://example.com/cat.png'))).toBe('messages[0].content[1].image_url');
  });

  it('OpenAI chat through openai-node: the thrown BadRequestError carries the param', async () => {
    const openai = new OpenAI({ baseURL: `${stack.apiUrl}/v1`, apiKey: 'sk-test', maxRetries: 0 });
    const error = await openai.chat.completions
      .create({
        model: CHAT_MODEL,
        messages: [
          { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: 'Paris' } }] },
          { role: 'user', content: 'and?' },
        ],
      })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('messages[0].tool_calls[0].function.arguments');
    expect((error as Error).message).toMatch(/JSON object encoded as a string/);
  });

  it('OpenAI embeddings: token arrays, empty or missing input, encoding_format, dimensions; an unknown model is a 404', async () => {
    const embed = (body: Record<string, unknown>) => openAiParam('/v1/embeddings', { model: 'nomic-embed-text', input: 'hi', ...body });
    const tokens = await post(stack, '/v1/embeddings', { model: 'nomic-embed-text', input: [101, 2023, 102] });
    expect(tokens.status).toBe(400);
    expect(tokens.json.error).toMatchObject({ param: 'input', type: 'invalid_request_error' });
    expect(tokens.json.error.message).toMatch(/token arrays .*not supported: Ollama embeds text only/);
    expect(await embed({ input: [[101, 2023], [102]] })).toBe('input');
    expect(await embed({ input: ['text', [101]] })).toBe('input[1]');
    expect(await embed({ input: '' })).toBe('input');
    expect(await embed({ input: [] })).toBe('input');
    expect(await embed({ input: undefined })).toBe('input');
    expect(await embed({ input: { text: 'x' } })).toBe('input');
    expect(await embed({ encoding_format: 'int8' })).toBe('encoding_format');
    expect(await embed({ dimensions: 0 })).toBe('dimensions');
    expect(await embed({ dimensions: '256' })).toBe('dimensions');
    expect(await embed({ dimensions: 100_000 })).toBe('dimensions');

    const openai = new OpenAI({ baseURL: `${stack.apiUrl}/v1`, apiKey: 'sk-test', maxRetries: 0 });
    const missing = await openai.embeddings.create({ model: 'no-such-embedder:latest', input: 'hi' }).catch((caught: unknown) => caught);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect(missing).toMatchObject({ status: 404, code: 'model_not_found' });
  });

  it('Ollama chat and generate: tools, tool call arguments, images', async () => {
    const chat = (body: Record<string, unknown>) => ollamaError('/api/chat', { model: CHAT_MODEL, messages: [{ role: 'user', content: 'hi' }], stream: false, ...body });
    expect(await chat({ tools: [{ type: 'function', function: { name: 'get weather!' } }] })).toMatch(/tools\[0\]\.function\.name/);
    expect(await chat({ tools: 'get_weather' })).toMatch(/tools/);
    expect(await chat({ messages: [{ role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] }] })).toMatch(
      /messages\[0\]\.tool_calls\[0\]\.function\.arguments/,
    );
    expect(await chat({ messages: [{ role: 'user', content: 'look', images: ['data:image/png;base64,AAAA'] }] })).toMatch(/messages\[0\]\.images\[0\].*base64/);
    expect(await chat({ messages: [{ role: 'user', content: 'look', images: [HUGE_IMAGE] }] })).toMatch(/messages\[0\]\.images\[0\].*at most 10 MiB/);
    expect(await ollamaError('/api/generate', { model: CHAT_MODEL, prompt: 'look', images: ['AAAA', '#!'], stream: false })).toMatch(/'images\[1\]'/);

    // The ollama client relays the answer's text as its error.
    const ollama = new Ollama({ host: stack.apiUrl });
    const error = await ollama
      .chat({
        model: CHAT_MODEL,
        messages: [{ role: 'user', content: 'hi' }],
        tools: [{ type: 'function', function: { name: 'a b', description: '', parameters: {} } }] as never,
      })
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ status_code: 400 });
    expect((error as Error).message).toMatch(/tools\[0\]\.function\.name/);
  });

  it('Ollama embed and embeddings: input, truncate, dimensions, prompt; an unknown model is a 404 in Ollama words', async () => {
    expect(await ollamaError('/api/embed', { model: 'all-minilm', input: [1, 2, 3] })).toMatch(/input/);
    expect(await ollamaError('/api/embed', { model: 'all-minilm', input: 'x', truncate: 'no' })).toMatch(/truncate/);
    expect(await ollamaError('/api/embed', { model: 'all-minilm', input: 'x', dimensions: 0 })).toMatch(/dimensions/);
    expect(await ollamaError('/api/embed', { model: 'all-minilm', input: Array.from({ length: 2049 }, () => 'x') })).toMatch(/input.*at most 2048/);
    expect(await ollamaError('/api/embeddings', { model: 'all-minilm', prompt: ['x'] })).toMatch(/prompt/);
    for (const [path, body] of [
      ['/api/embed', { model: 'no-such-embedder', input: 'x' }],
      ['/api/embed', { model: 'no-such-embedder' }],
      ['/api/embeddings', { model: 'no-such-embedder', prompt: 'x' }],
    ] as const) {
      const { status, json } = await post(stack, path, body);
      expect(status, path).toBe(404);
      expect(json).toEqual({ error: "model 'no-such-embedder' not found" });
    }
  });

  it('native jobs: embed fields on a generate job, generate fields on an embed job, bad tools and images', async () => {
    const refused = async (body: Record<string, unknown>) => {
      const { status, json } = await postJob(stack, { model: CHAT_MODEL, ...body });
      expect(status, JSON.stringify(json)).toBe(400);
      expect(json.error.code).toBe('invalid_request');
      return json.error.message as string;
    };
    expect(await refused({ kind: 'embed' })).toMatch(/input: an embed job needs input/);
    expect(await refused({ kind: 'embed', input: 'x', messages: [{ role: 'user', content: 'x' }] })).toMatch(/messages: messages does not apply to an embed job/);
    expect(await refused({ kind: 'embed', input: [] })).toMatch(/input/);
    expect(await refused({ kind: 'embed', input: 'x', dimensions: 0 })).toMatch(/dimensions/);
    expect(await refused({ prompt: 'x', input: 'x' })).toMatch(/input: input applies only to an embed job/);
    expect(await refused({ prompt: 'x', tools: [TOOL] })).toMatch(/tools: tools need messages/);
    expect(await refused({ messages: [{ role: 'user', content: 'x' }], tools: [TOOL], tool_choice: { type: 'function', function: { name: 'other' } } })).toMatch(
      /tool_choice/,
    );
    expect(await refused({ messages: [{ role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: '{}' } }] }] })).toMatch(
      /messages\.0\.tool_calls\.0\.function\.arguments/,
    );
    expect(await refused({ messages: [{ role: 'user', content: 'x', images: ['***'] }] })).toMatch(/messages\.0\.images\.0: an image must be base64/);
  });

  it('lists the embedding endpoints among the routes it serves', async () => {
    const response = await fetch(`${stack.apiUrl}/api/nothing`, { method: 'POST' });
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: string }).error).toMatch(/\/api\/embed, \/api\/embeddings/);
  });
});
