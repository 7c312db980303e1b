/** Wire format of Ollama's model endpoints, field by field (ollama/ollama docs/api.md, docs/openapi.yaml). */
import { describe, expect, it } from 'vitest';
import { getJson, post, ps, startSim } from '../test-support.js';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const HEX64 = /^[0-9a-f]{64}$/;

function expectDetails(details: unknown) {
  expect(details).toEqual({
    parent_model: '',
    format: 'gguf',
    family: expect.any(String),
    families: expect.any(Array),
    parameter_size: expect.stringMatching(/^\d+(\.\d+)?[KMB]$/),
    quantization_level: expect.any(String),
  });
}

describe('GET / and /api/version', () => {
  it('answers "Ollama is running", also to HEAD', async () => {
    const sim = await startSim();
    const get = await fetch(`${sim.url}/`);
    expect(get.status).toBe(200);
    expect(get.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await get.text()).toBe('Ollama is running');
    const head = await fetch(`${sim.url}/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
  });

  it('reports a version string', async () => {
    const sim = await startSim({ version: '0.9.9' });
    expect(await getJson(sim, '/api/version')).toEqual({ version: '0.9.9' });
  });

  it('answers unknown paths like Ollama (plain 404)', async () => {
    const sim = await startSim();
    const response = await fetch(`${sim.url}/api/nothing`);
    expect(response.status).toBe(404);
    expect(await response.text()).toBe('404 page not found');
  });
});

describe('GET /api/tags', () => {
  it('lists the catalog with every field typed as Ollama does', async () => {
    const sim = await startSim();
    const response = await fetch(`${sim.url}/api/tags`);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await response.json()) as { models: Record<string, unknown>[] };
    expect(Object.keys(body)).toEqual(['models']);
    expect(body.models.map((model) => model.name)).toEqual([
      'qwen2.5:0.5b',
      'llama3.2:3b',
      'llama3.1:8b',
      'llama3.1:70b',
      'llava:7b',
      'nomic-embed-text:latest',
      'mxbai-embed-large:latest',
      'all-minilm:latest',
    ]);
    for (const model of body.models) {
      expect(Object.keys(model).sort()).toEqual(['details', 'digest', 'model', 'modified_at', 'name', 'size']);
      expect(model.model).toBe(model.name);
      expect(model.modified_at).toMatch(RFC3339);
      expect(Number.isInteger(model.size)).toBe(true);
      expect(model.size).toBeGreaterThan(0);
      expect(model.digest).toMatch(HEX64);
      expectDetails(model.details);
    }
    expect(body.models[2]).toMatchObject({ size: 4_920_753_328, details: { family: 'llama', parameter_size: '8.0B' } });
  });
});

describe('GET /api/ps', () => {
  it('is empty until a model is loaded, then lists it with its VRAM and expiry', async () => {
    const sim = await startSim();
    expect(await getJson(sim, '/api/ps')).toEqual({ models: [] });
    const load = await post(sim, '/api/generate', { model: 'llama3.1:8b', keep_alive: '10m' });
    expect(load.status).toBe(200);
    const [entry, ...rest] = await ps(sim);
    expect(rest).toEqual([]);
    expect(Object.keys(entry ?? {}).sort()).toEqual(['context_length', 'details', 'digest', 'expires_at', 'model', 'name', 'size', 'size_vram'].sort());
    expect(entry).toMatchObject({ name: 'llama3.1:8b', model: 'llama3.1:8b', context_length: 4096 });
    expect(entry?.digest).toMatch(HEX64);
    expect(entry?.expires_at).toMatch(RFC3339);
    expectDetails(entry?.details);
    // Weights (4.9 GB) + 128 KiB KV per token × 4096 × 4 slots + 512 MiB overhead.
    expect(entry?.size).toBe(4_920_753_328 + 131_072 * 4096 * 4 + 512 * 2 ** 20);
    expect(entry?.size_vram).toBe(entry?.size);
  });
});

describe('POST /api/show', () => {
  it('describes a model: details, architecture numbers, capabilities', async () => {
    const sim = await startSim();
    const response = await post(sim, '/api/show', { model: 'llama3.1:8b' });
    expect(response.status).toBe(200);
    const body = (await response.json()) as Record<string, unknown>;
    expect(typeof body.modelfile).toBe('string');
    expect(body.modelfile).toContain('FROM ');
    expect(typeof body.parameters).toBe('string');
    expect(typeof body.template).toBe('string');
    expect(typeof body.license).toBe('string');
    expect(body.capabilities).toEqual(['completion', 'tools']);
    expect(body.modified_at).toMatch(RFC3339);
    expectDetails(body.details);
    expect(body.model_info).toMatchObject({
      'general.architecture': 'llama',
      'general.parameter_count': 8_030_261_248,
      'llama.context_length': 131_072,
      'llama.block_count': 32,
      'llama.attention.head_count': 32,
      'llama.attention.head_count_kv': 8,
      'llama.embedding_length': 4096,
    });
  });

  it('reports capabilities as Ollama does: completion plus tools and vision, or embedding alone', async () => {
    const sim = await startSim({
      models: [
        { name: 'plain', size_bytes: 1e8 },
        { name: 'toolish', size_bytes: 1e8, tools: true },
        { name: 'seer', size_bytes: 1e8, vision: true },
        { name: 'both', size_bytes: 1e8, tools: true, vision: true },
        { name: 'vec', size_bytes: 1e8, embedding: { dimensions: 64 } },
      ],
    });
    const capabilities = async (model: string) => ((await (await post(sim, '/api/show', { model })).json()) as { capabilities: string[] }).capabilities;
    expect(await capabilities('plain')).toEqual(['completion']);
    expect(await capabilities('toolish')).toEqual(['completion', 'tools']);
    expect(await capabilities('seer')).toEqual(['completion', 'vision']);
    expect(await capabilities('both')).toEqual(['completion', 'tools', 'vision']);
    expect(await capabilities('vec')).toEqual(['embedding']);
  });

  it('marks the sample catalog: tool-capable chat models, a vision model without tools, embedding models', async () => {
    const sim = await startSim();
    const show = async (model: string) => (await (await post(sim, '/api/show', { model })).json()) as { capabilities: string[]; details: Record<string, unknown> };
    for (const model of ['qwen2.5:0.5b', 'llama3.2:3b', 'llama3.1:8b', 'llama3.1:70b']) expect((await show(model)).capabilities).toEqual(['completion', 'tools']);
    expect((await show('llava:7b')).capabilities).toEqual(['completion', 'vision']);
    for (const [model, family] of [
      ['nomic-embed-text', 'nomic-bert'],
      ['mxbai-embed-large', 'bert'],
      ['all-minilm', 'bert'],
    ] as const) {
      const body = await show(model);
      expect(body.capabilities).toEqual(['embedding']);
      expect(body.details).toMatchObject({ family, quantization_level: 'F16' });
    }
  });

  it('accepts the older "name" field and a name without tag', async () => {
    const sim = await startSim({ models: [{ name: 'solo', size_bytes: 1e9, family: 'qwen2' }] });
    const body = (await (await post(sim, '/api/show', { name: 'solo' })).json()) as { model_info: Record<string, unknown> };
    expect(body.model_info['general.architecture']).toBe('qwen2');
    expect(typeof body.model_info['qwen2.context_length']).toBe('number');
  });

  it('answers 404 for an unknown model and 400 without one', async () => {
    const sim = await startSim();
    const missing = await post(sim, '/api/show', { model: 'nope:1b' });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: "model 'nope:1b' not found" });
    const none = await post(sim, '/api/show', {});
    expect(none.status).toBe(400);
    expect(await none.json()).toEqual({ error: 'model is required' });
  });
});
