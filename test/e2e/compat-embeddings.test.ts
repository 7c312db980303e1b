import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { Redis } from 'ioredis';
import { OpenAIEmbeddings } from '@langchain/openai';
import { OllamaEmbeddings } from '@langchain/ollama';
import { redisKeys, type ModelInfoRecord, type StreamEvent } from '@switchyard/protocol';
import { getJob, postJob, submitJob } from '../support/client.js';
import { readSse } from '../support/sse.js';
import { startStack, type Stack } from '../support/stack.js';

/** Embedding models of the simulator's sample catalog (Ollama library names). */
const EMBED_MODEL = 'nomic-embed-text:latest';
const CHAT_MODEL = 'qwen2.5:0.5b';

async function direct(stack: Stack, path: string, body: unknown): Promise<any> {
  const response = await fetch(`${stack.sims[0]!.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
  expect(response.status, `${path} on the simulator`).toBe(200);
  return response.json();
}

/** Waits for the model info an agent shares (its backend's /api/show), which the API's capability check reads. */
async function sharedModelInfo(stack: Stack, model: string): Promise<ModelInfoRecord['show']> {
  const redis = new Redis(stack.redisUrl);
  try {
    const key = redisKeys(stack.prefix).modelInfo(model);
    await expect.poll(() => redis.exists(key), { timeout: 5_000 }).toBe(1);
    return (JSON.parse((await redis.get(key))!) as ModelInfoRecord).show;
  } finally {
    redis.disconnect();
  }
}

/** What `fn` threw, which must be an openai-node APIError. */
async function apiError(fn: () => Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await fn();
  } catch (error) {
    expect(error).toBeInstanceOf(OpenAI.APIError);
    return error as InstanceType<typeof OpenAI.APIError>;
  }
  throw new Error('expected the request to fail');
}

async function rawPost(stack: Stack, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(`${stack.apiUrl}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, json: await response.json() };
}

const closeTo = (expected: readonly number[]) => expected.map((value) => expect.closeTo(value, 5));

describe('embeddings on every wire, judged by the official clients', () => {
  let stack: Stack;
  let openai: OpenAI;
  let ollama: Ollama;
  beforeAll(async () => {
    stack = await startStack();
    openai = new OpenAI({ baseURL: `${stack.apiUrl}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 30_000 });
    ollama = new Ollama({ host: stack.apiUrl });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('openai-node embeddings.create: base64 (its default, decoded by the client) and float give the vectors Ollama gives, in input order', async () => {
    const input = ['The sky is blue because of Rayleigh scattering.', 'Grass is green.'];
    const expected = (await direct(stack, '/api/embed', { model: EMBED_MODEL, input })).embeddings as number[][];
    expect(expected).toHaveLength(2);

    // No encoding_format: openai-node asks for base64 and decodes the little-endian float32s.
    const decoded = await openai.embeddings.create({ model: EMBED_MODEL, input });
    expect(decoded).toMatchObject({ object: 'list', model: EMBED_MODEL });
    expect(decoded.data.map((entry) => entry.index)).toEqual([0, 1]);
    decoded.data.forEach((entry, index) => {
      expect(entry.object).toBe('embedding');
      expect(entry.embedding).toEqual(closeTo(expected[index]!));
    });
    expect(decoded.usage.prompt_tokens).toBeGreaterThan(0);
    expect(decoded.usage.total_tokens).toBe(decoded.usage.prompt_tokens);

    const floats = await openai.embeddings.create({ model: EMBED_MODEL, input, encoding_format: 'float' });
    expect(floats.data.map((entry) => entry.embedding)).toEqual(expected);

    // On the wire, base64 is a string.
    const raw = await rawPost(stack, '/v1/embeddings', { model: EMBED_MODEL, input: input[0], encoding_format: 'base64' });
    expect(raw.status).toBe(200);
    expect(typeof raw.json.data[0].embedding).toBe('string');
    expect(Buffer.from(raw.json.data[0].embedding, 'base64').length).toBe(expected[0]!.length * 4);
  });

  it('one string is one vector; dimensions shortens the vectors', async () => {
    const one = await openai.embeddings.create({ model: EMBED_MODEL, input: 'hello', encoding_format: 'float' });
    expect(one.data).toHaveLength(1);
    const short = await openai.embeddings.create({ model: EMBED_MODEL, input: 'hello', encoding_format: 'float', dimensions: 8 });
    expect(short.data[0]!.embedding).toHaveLength(8);
  });

  it('refuses token arrays and other bad input with a 400 naming the parameter, an unknown model with a 404', async () => {
    for (const input of [
      [1, 2, 3],
      [
        [1, 2],
        [3, 4],
      ],
    ]) {
      const error = await apiError(() => openai.embeddings.create({ model: EMBED_MODEL, input }));
      expect(error.status).toBe(400);
      expect(error.param).toBe('input');
      expect(error.message).toMatch(/token arrays/);
    }
    for (const [body, param] of [
      [{ model: EMBED_MODEL }, 'input'],
      [{ model: EMBED_MODEL, input: '' }, 'input'],
      [{ model: EMBED_MODEL, input: [] }, 'input'],
      [{ model: EMBED_MODEL, input: ['ok', 7, 'x'] }, 'input[1]'],
      [{ model: EMBED_MODEL, input: 'x', encoding_format: 'int8' }, 'encoding_format'],
      [{ model: EMBED_MODEL, input: 'x', dimensions: 0 }, 'dimensions'],
      [{ model: EMBED_MODEL, input: 'x', dimensions: 'many' }, 'dimensions'],
    ] as const) {
      const { status, json } = await rawPost(stack, '/v1/embeddings', body);
      expect(status, JSON.stringify(body)).toBe(400);
      expect(json.error, JSON.stringify(body)).toMatchObject({ type: 'invalid_request_error', param });
    }
    const missing = await apiError(() => openai.embeddings.create({ model: 'no-such-model:1b', input: 'x' }));
    expect(missing.status).toBe(404);
    expect(missing.code).toBe('model_not_found');
  });

  it('refuses to embed with a chat model, and to chat with an embedding model: 400 model_unsupported on each wire', async () => {
    // The check reads the capabilities the agents shared from /api/show.
    expect((await sharedModelInfo(stack, CHAT_MODEL))['capabilities']).not.toContain('embedding');
    expect((await sharedModelInfo(stack, EMBED_MODEL))['capabilities']).not.toContain('completion');

    const viaOpenAi = await apiError(() => openai.embeddings.create({ model: CHAT_MODEL, input: 'x' }));
    expect(viaOpenAi.status).toBe(400);
    expect(viaOpenAi.code).toBe('model_unsupported');
    expect(viaOpenAi.message).toMatch(/embedding/);
    expect(viaOpenAi.message).toContain(CHAT_MODEL);

    const chat = await apiError(() => openai.chat.completions.create({ model: EMBED_MODEL, messages: [{ role: 'user', content: 'hi' }] }));
    expect(chat.status).toBe(400);
    expect(chat.code).toBe('model_unsupported');
    expect(chat.message).toMatch(/completion/);

    const viaOllama = await rawPost(stack, '/api/embed', { model: CHAT_MODEL, input: 'x' });
    expect(viaOllama.status).toBe(400);
    expect(viaOllama.json.error).toMatch(/embedding/);
    const generate = await rawPost(stack, '/api/generate', { model: EMBED_MODEL, prompt: 'hi', stream: false });
    expect(generate.status).toBe(400);
    expect(generate.json.error).toMatch(/completion/);

    const native = await postJob(stack, { kind: 'embed', model: CHAT_MODEL, input: 'x' });
    expect(native.status).toBe(400);
    expect(native.json.error.code).toBe('model_unsupported');
  });

  it('ollama-js embed and the legacy embeddings give what Ollama gives; no input only loads the model', async () => {
    const input = ['first text', 'second text', 'third text'];
    const expected = await direct(stack, '/api/embed', { model: EMBED_MODEL, input });
    const answer = await ollama.embed({ model: EMBED_MODEL, input });
    expect(answer.model).toBe(EMBED_MODEL);
    expect(answer.embeddings).toEqual(expected.embeddings);
    expect(answer.prompt_eval_count).toBeGreaterThan(0);
    for (const field of ['total_duration', 'load_duration'] as const) expect(Number.isInteger(answer[field]), field).toBe(true);

    const truncated = await ollama.embed({ model: EMBED_MODEL, input: 'x', truncate: true, dimensions: 4 });
    expect(truncated.embeddings[0]).toHaveLength(4);

    const legacyExpected = await direct(stack, '/api/embeddings', { model: EMBED_MODEL, prompt: 'first text' });
    const legacy = await ollama.embeddings({ model: EMBED_MODEL, prompt: 'first text' });
    expect(legacy.embedding).toEqual(legacyExpected.embedding);

    // Load-only: an existing model answers an empty list, an unknown one 404s.
    expect(await rawPost(stack, '/api/embed', { model: EMBED_MODEL })).toEqual({ status: 200, json: { model: EMBED_MODEL, embeddings: [] } });
    expect((await rawPost(stack, '/api/embed', { model: EMBED_MODEL, input: [] })).json).toEqual({ model: EMBED_MODEL, embeddings: [] });
    const unknown = await rawPost(stack, '/api/embed', { model: 'no-such-model:1b' });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error).toMatch(/not found/);
    await expect(ollama.embed({ model: 'no-such-model:1b', input: 'x' })).rejects.toMatchObject({ status_code: 404 });

    // Bad fields name themselves in Ollama's {error} shape.
    for (const [body, field] of [
      [{ model: EMBED_MODEL, input: 5 }, 'input'],
      [{ model: EMBED_MODEL, input: 'x', truncate: 'yes' }, 'truncate'],
      [{ model: EMBED_MODEL, input: 'x', dimensions: -1 }, 'dimensions'],
    ] as const) {
      const { status, json } = await rawPost(stack, '/api/embed', body);
      expect(status, JSON.stringify(body)).toBe(400);
      expect(json.error, JSON.stringify(body)).toContain(field);
    }
    const badPrompt = await rawPost(stack, '/api/embeddings', { model: EMBED_MODEL, prompt: 7 });
    expect(badPrompt.status).toBe(400);
    expect(badPrompt.json.error).toContain('prompt');
  });

  it('native /v1/jobs kind "embed": the done event and the job record carry the vectors', async () => {
    const input = ['alpha', 'beta'];
    const expected = (await direct(stack, '/api/embed', { model: EMBED_MODEL, input })).embeddings;
    const accepted = await submitJob(stack, { kind: 'embed', model: EMBED_MODEL, input });
    const { events } = await readSse(`${stack.apiUrl}${accepted.links.events}`, { stopAfter: (event) => event.type === 'done' || event.type === 'error' });
    const done = events.at(-1) as Extract<StreamEvent, { type: 'done' }>;
    expect(done.type).toBe('done');
    expect(done.embeddings).toEqual(expected);
    expect(events.some((event) => event.type === 'token')).toBe(false);
    await expect.poll(async () => (await getJob(stack, accepted.id)).status).toBe('completed');
    const record = await getJob(stack, accepted.id);
    expect(record.result.embeddings).toEqual(expected);
    expect(record.usage.prompt_tokens).toBeGreaterThan(0);

    // Fields of the other kind are refused, naming them.
    for (const [body, field] of [
      [{ kind: 'embed', model: EMBED_MODEL }, 'input'],
      [{ kind: 'embed', model: EMBED_MODEL, input: 'x', messages: [{ role: 'user', content: 'x' }] }, 'messages'],
      [{ model: CHAT_MODEL, prompt: 'x', input: 'x' }, 'input'],
      [{ kind: 'embed', model: EMBED_MODEL, input: 'x', dimensions: 0 }, 'dimensions'],
      [{ kind: 'sing', model: EMBED_MODEL, input: 'x' }, 'kind'],
    ] as const) {
      const { status, json } = await postJob(stack, body);
      expect(status, JSON.stringify(body)).toBe(400);
      expect(JSON.stringify(json.error), JSON.stringify(body)).toContain(field);
    }
  });

  it('LangChain OpenAIEmbeddings and OllamaEmbeddings', async () => {
    const texts = ['one', 'two'];
    const expected = (await direct(stack, '/api/embed', { model: EMBED_MODEL, input: texts })).embeddings as number[][];

    const viaOpenAi = new OpenAIEmbeddings({ model: EMBED_MODEL, apiKey: 'sk-test', configuration: { baseURL: `${stack.apiUrl}/v1` }, maxRetries: 0 });
    const documents = await viaOpenAi.embedDocuments(texts);
    expect(documents).toHaveLength(2);
    documents.forEach((vector, index) => expect(vector).toEqual(closeTo(expected[index]!)));
    expect(await viaOpenAi.embedQuery('one')).toEqual(closeTo(expected[0]!));

    const viaOllama = new OllamaEmbeddings({ model: EMBED_MODEL, baseUrl: stack.apiUrl });
    expect(await viaOllama.embedDocuments(texts)).toEqual(expected);
    expect(await viaOllama.embedQuery('two')).toEqual(expected[1]);
  });
});
