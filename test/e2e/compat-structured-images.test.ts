import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { ChatOpenAI } from '@langchain/openai';
import { HumanMessage } from '@langchain/core/messages';
import { Redis } from 'ioredis';
import { redisKeys } from '@switchyard/protocol';
import { getJob, jobStatus, postJob, submitJob } from '../support/client.js';
import { readSse, textOf } from '../support/sse.js';
import { startStack, type Stack } from '../support/stack.js';

/**
 * Structured outputs (`format`, `response_format`) and images through the queue, judged by the
 * official clients, and an embedding request cancelled when its client goes away.
 */

const MODEL = 'qwen2.5:0.5b';
const VISION_MODEL = 'llava:7b';
/** Without call times of its own in the catalog: the config's embed_call_ms applies. */
const EMBED_MODEL = 'nomic-embed-text:latest';
/** A 1×1 PNG. */
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

const CITY = {
  type: 'object',
  properties: { name: { type: 'string' }, population: { type: 'integer', minimum: 0 }, coastal: { type: 'boolean' } },
  required: ['name', 'population', 'coastal'],
  additionalProperties: false,
};

function expectCity(value: unknown): void {
  expect(value).toEqual({ name: expect.any(String), population: expect.any(Number), coastal: expect.any(Boolean) });
  expect(Number.isInteger((value as { population: number }).population)).toBe(true);
}

async function post(stack: Stack, path: string, body: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(`${stack.apiUrl}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, json: await response.json() };
}

describe('structured outputs and images on every wire', () => {
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

  it('OpenAI response_format json_schema: openai-node parse() reads a document of the schema, streamed or not; json_object is JSON', async () => {
    const response_format = { type: 'json_schema' as const, json_schema: { name: 'city', schema: CITY, strict: true } };
    const parsed = await openai.chat.completions.parse({ model: MODEL, messages: [{ role: 'user', content: 'Describe Lisbon.' }], response_format });
    expectCity(parsed.choices[0]!.message.parsed);

    const stream = openai.chat.completions.stream({ model: MODEL, messages: [{ role: 'user', content: 'Describe Oslo.' }], response_format });
    // The stream helper fills `parsed` only for its own (zod) response formats: read the text.
    expectCity(JSON.parse((await stream.finalChatCompletion()).choices[0]!.message.content!));

    const object = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Any JSON' }], response_format: { type: 'json_object' } });
    expect(typeof JSON.parse(object.choices[0]!.message.content!)).toBe('object');
  });

  it('LangChain ChatOpenAI.withStructuredOutput (json schema) reads the document', async () => {
    const model = new ChatOpenAI({ model: MODEL, apiKey: 'sk-test', configuration: { baseURL: `${stack.apiUrl}/v1` }, maxRetries: 0 });
    const structured = model.withStructuredOutput({ title: 'city', ...CITY }, { method: 'jsonSchema' });
    expectCity(await structured.invoke([new HumanMessage('Describe Porto.')]));
  });

  it('Ollama format (a schema, or "json") through ollama-js, streamed and not; native format too', async () => {
    const whole = await ollama.chat({ model: MODEL, messages: [{ role: 'user', content: 'Describe Rome.' }], format: CITY, stream: false });
    expectCity(JSON.parse(whole.message.content));
    let text = '';
    for await (const part of await ollama.chat({ model: MODEL, messages: [{ role: 'user', content: 'Describe Rome.' }], format: CITY, stream: true }))
      text += part.message.content;
    expect(JSON.parse(text)).toEqual(JSON.parse(whole.message.content));
    const generated = await ollama.generate({ model: MODEL, prompt: 'Any JSON', format: 'json', stream: false });
    expect(typeof JSON.parse(generated.response ?? '')).toBe('object');

    const job = await submitJob(stack, { model: MODEL, prompt: 'Describe Nice.', format: CITY });
    const { events } = await readSse(`${stack.apiUrl}${job.links.events}`, { stopAfter: (event) => event.type === 'done' || event.type === 'error' });
    expectCity(JSON.parse(textOf(events)));
    await expect.poll(async () => (await getJob(stack, job.id)).status).toBe('completed');
    expectCity(JSON.parse((await getJob(stack, job.id)).result.text));
  });

  it('images reach a vision model: OpenAI image_url data URLs, Ollama chat and generate images, native messages', async () => {
    const viaOpenAi = await openai.chat.completions.create({
      model: VISION_MODEL,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is in this picture?' },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
          ],
        },
      ],
      max_tokens: 20,
    });
    expect(viaOpenAi.choices[0]!.message.content).toMatch(/^The image shows /);

    const chat = await ollama.chat({
      model: VISION_MODEL,
      messages: [{ role: 'user', content: 'What is this?', images: [PNG, PNG] }],
      stream: false,
      options: { num_predict: 20 },
    });
    expect(chat.message.content).toMatch(/^The 2 images show /);
    const generate = await ollama.generate({ model: VISION_MODEL, prompt: 'What is this?', images: [PNG], stream: false, options: { num_predict: 20 } });
    expect(generate.response).toMatch(/^The image shows /);
    // ollama-js turns bytes into base64 itself.
    const bytes = await ollama.generate({ model: VISION_MODEL, prompt: 'What is this?', images: [Buffer.from(PNG, 'base64')], stream: false, options: { num_predict: 20 } });
    expect(bytes.response).toBe(generate.response);

    const job = await submitJob(stack, { model: VISION_MODEL, messages: [{ role: 'user', content: 'What is this?', images: [PNG] }], options: { num_predict: 20 } });
    await expect.poll(async () => (await getJob(stack, job.id)).status, { timeout: 10_000 }).toBe('completed');
    expect((await getJob(stack, job.id)).result.text).toMatch(/^The image shows /);
  });

  it('refuses images for a model without vision: 400 model_unsupported on every wire', async () => {
    const redis = new Redis(stack.redisUrl);
    try {
      await expect.poll(() => redis.exists(redisKeys(stack.prefix).modelInfo(MODEL)), { timeout: 10_000 }).toBe(1);
    } finally {
      redis.disconnect();
    }
    const openAi = await post(stack, '/v1/chat/completions', {
      model: MODEL,
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }],
    });
    expect(openAi.status).toBe(400);
    expect(openAi.json.error).toMatchObject({ code: 'model_unsupported', param: 'messages' });
    expect(openAi.json.error.message).toMatch(/qwen2\.5:0\.5b.*images.*"vision"/);

    const chat = await post(stack, '/api/chat', { model: MODEL, messages: [{ role: 'user', content: 'x', images: [PNG] }], stream: false });
    expect(chat.status).toBe(400);
    expect(chat.json.error).toMatch(/"vision"/);
    const generate = await post(stack, '/api/generate', { model: MODEL, prompt: 'x', images: [PNG] });
    expect(generate.status).toBe(400);
    expect(generate.json.error).toMatch(/"vision"/);
    const native = await postJob(stack, { model: MODEL, messages: [{ role: 'user', content: 'x', images: [PNG] }] });
    expect(native).toMatchObject({ status: 400, json: { error: { code: 'model_unsupported' } } });
  });
});

describe('an embedding request whose client goes away', () => {
  let stack: Stack;
  beforeAll(async () => {
    // One embed job at a time, each call 2 s: a second request waits in the queue.
    stack = await startStack({ nodes: [{ sim: { embed_call_ms: 2_000 / 0.02 }, agent: { embedSlots: 1 } }] });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('cancels its job at once, as a chat request does', async () => {
    const openai = new OpenAI({ baseURL: `${stack.apiUrl}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 30_000 });
    const first = openai.embeddings.create({ model: EMBED_MODEL, input: 'occupies the only embed slot' });
    const redis = new Redis(stack.redisUrl);
    try {
      const keys = redisKeys(stack.prefix);
      const jobsOf = async () => {
        const ids: Array<{ id: string; status: string | null }> = [];
        let cursor = '0';
        do {
          const [next, found] = await redis.scan(cursor, 'MATCH', keys.job('*'), 'COUNT', 1000);
          cursor = next;
          for (const key of found) {
            const id = /\{([^}]+)\}$/.exec(key)?.[1];
            const [status, model] = await redis.hmget(key, 'status', 'model');
            if (id !== undefined && model === EMBED_MODEL) ids.push({ id, status: status ?? null });
          }
        } while (cursor !== '0');
        return ids;
      };
      await expect.poll(async () => (await jobsOf()).some((job) => job.status === 'running' || job.status === 'loading'), { timeout: 10_000 }).toBe(true);
      const running = new Set((await jobsOf()).map((job) => job.id));

      const controller = new AbortController();
      const second = openai.embeddings.create({ model: EMBED_MODEL, input: 'nobody will read this' }, { signal: controller.signal }).catch((error: unknown) => error);
      let queuedId = '';
      await expect
        .poll(
          async () => {
            queuedId = (await jobsOf()).find((job) => !running.has(job.id) && job.status === 'queued')?.id ?? '';
            return queuedId;
          },
          { timeout: 5_000 },
        )
        .not.toBe('');
      controller.abort();
      expect(await second).toBeInstanceOf(OpenAI.APIUserAbortError);
      await expect.poll(() => jobStatus(stack, queuedId), { timeout: 5_000 }).toBe('cancelled');
      expect((await first).data).toHaveLength(1);
    } finally {
      redis.disconnect();
    }
  });
});
