/**
 * The simulator's answers against the shared Ollama wire schemas (@switchyard/protocol): the
 * base response schemas describe what the simulator (and the broker) send, and the client
 * variants must read them. A field renamed or retyped on one side fails here.
 */
import { describe, expect, it } from 'vitest';
import {
  OllamaChatLine,
  OllamaClientModel,
  OllamaClientStreamLine,
  OllamaErrorBody,
  OllamaFinalMetrics,
  OllamaGenerateLine,
  OllamaPsResponse,
  OllamaShowResponse,
  OllamaTagsResponse,
  OllamaVersionResponse,
} from '@switchyard/protocol';
import { getJson, post, readNdjson, startSim } from '../test-support.js';

const MODEL = 'qwen2.5:0.5b';

describe('the simulator speaks the shared Ollama schemas', () => {
  it('for /api/version, /api/tags, /api/ps and /api/show', async () => {
    const sim = await startSim();
    expect(OllamaVersionResponse.safeParse(await getJson(sim, '/api/version')).success).toBe(true);

    const tags = OllamaTagsResponse.parse(await getJson(sim, '/api/tags'));
    expect(tags.models.length).toBeGreaterThan(0);
    for (const entry of tags.models) expect(OllamaClientModel.safeParse(entry).success).toBe(true);

    await post(sim, '/api/generate', { model: MODEL });
    const loaded = OllamaPsResponse.parse(await getJson(sim, '/api/ps'));
    expect(loaded.models.map((entry) => entry.name)).toEqual([MODEL]);

    const show = await (await post(sim, '/api/show', { model: MODEL })).json();
    expect(OllamaShowResponse.safeParse(show).success).toBe(true);
  });

  it('for generate and chat lines, streamed and whole, and their final metrics', async () => {
    const sim = await startSim();
    const cases = [
      ['/api/generate', OllamaGenerateLine, { model: MODEL, prompt: 'hi', options: { num_predict: 3 } }],
      ['/api/chat', OllamaChatLine, { model: MODEL, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 3 } }],
    ] as const;
    for (const [path, schema, body] of cases) {
      const lines = await readNdjson(await post(sim, path, body));
      const whole = await (await post(sim, path, { ...body, stream: false })).json();
      for (const line of [...lines, whole]) {
        expect(schema.safeParse(line).success, `${path} ${JSON.stringify(line)}`).toBe(true);
        expect(OllamaClientStreamLine.safeParse(line).success).toBe(true);
      }
      expect(OllamaFinalMetrics.safeParse(lines.at(-1)).success).toBe(true);
      expect(OllamaFinalMetrics.safeParse(whole).success).toBe(true);
    }
  });

  it('for load and unload answers and for errors', async () => {
    const sim = await startSim();
    const load = await (await post(sim, '/api/chat', { model: MODEL, messages: [] })).json();
    expect(OllamaChatLine.parse(load)).toMatchObject({ done: true, done_reason: 'load' });
    const unload = await (await post(sim, '/api/generate', { model: MODEL, keep_alive: 0 })).json();
    expect(OllamaGenerateLine.parse(unload)).toMatchObject({ done: true, done_reason: 'unload' });
    const missing = await (await post(sim, '/api/generate', { model: 'nope:1b', prompt: 'x' })).json();
    expect(OllamaErrorBody.parse(missing)).toEqual({ error: "model 'nope:1b' not found" });
  });
});
