/** `/api/embed` and `/api/embeddings` over real HTTP: vectors, truncation, errors, scheduling and the time model. */
import { describe, expect, it } from 'vitest';
import { OllamaClientEmbedResponse, OllamaEmbeddingsResponse, OllamaEmbedResponse, OllamaErrorBody } from '@switchyard/protocol';
import { post, ps, startSim, stats, waitFor } from '../test-support.js';

interface EmbedAnswer {
  model: string;
  embeddings: number[][];
  total_duration: number;
  load_duration: number;
  prompt_eval_count: number;
}

async function embed(sim: Awaited<ReturnType<typeof startSim>>, body: Record<string, unknown>): Promise<EmbedAnswer> {
  const response = await post(sim, '/api/embed', body);
  const answer = (await response.json()) as EmbedAnswer & { error?: string };
  if (response.status !== 200) throw new Error(`embed answered ${response.status}: ${answer.error}`);
  return answer;
}

const norm = (v: number[]) => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));
const cosine = (a: number[], b: number[]) => a.reduce((sum, x, i) => sum + x * (b[i] as number), 0) / (norm(a) * norm(b));

/** A small embedding model with a fixed footprint, for timing and VRAM tests. */
const VEC = { name: 'vec:1', size_bytes: 1e8, vram_bytes: 2 ** 30, embedding_length: 64, embedding: {} };

describe('POST /api/embed', () => {
  it('answers one unit vector per input, in order, with Ollama’s fields', async () => {
    const sim = await startSim();
    const inputs = ['Why is the sky blue?', 'Why is grass green?', ''];
    const response = await post(sim, '/api/embed', { model: 'nomic-embed-text', input: inputs });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await response.json()) as EmbedAnswer;
    expect(Object.keys(body)).toEqual(['model', 'embeddings', 'total_duration', 'load_duration', 'prompt_eval_count']);
    expect(body.model).toBe('nomic-embed-text');
    expect(body.embeddings).toHaveLength(3);
    for (const vector of body.embeddings) {
      expect(vector).toHaveLength(768);
      expect(norm(vector)).toBeCloseTo(1, 5);
    }
    expect(body.embeddings[0]).not.toEqual(body.embeddings[1]);
    for (const field of ['total_duration', 'load_duration'] as const) expect(Number.isInteger(body[field]) && body[field] > 0).toBe(true);
    expect(body.prompt_eval_count).toBe(5 + 5 + 1);
    expect(OllamaEmbedResponse.safeParse(body).success).toBe(true);
    expect(OllamaClientEmbedResponse.safeParse(body).success).toBe(true);

    const single = await embed(sim, { model: 'nomic-embed-text:latest', input: 'Why is the sky blue?' });
    expect(single.embeddings).toEqual([body.embeddings[0]]);
    expect((await ps(sim)).map((entry) => entry.name)).toEqual(['nomic-embed-text:latest']);
  });

  it('is deterministic across requests and processes, and model-specific', async () => {
    const sim = await startSim();
    const [a] = (await embed(sim, { model: 'all-minilm', input: 'hello world' })).embeddings as [number[]];
    // Fixed values: the vector depends only on the model and the text (sha256-seeded), never on the run.
    expect(a.slice(0, 3)).toEqual([-0.00804709, 0.007568977, 0.0969452]);
    const other = await startSim();
    expect((await embed(other, { model: 'all-minilm', input: ['hello world'] })).embeddings[0]).toEqual(a);
    expect((await embed(other, { model: 'all-minilm', input: ['hello world!'] })).embeddings[0]).not.toEqual(a);
    const [nomic] = (await embed(sim, { model: 'nomic-embed-text', input: 'hello world' })).embeddings as [number[]];
    expect(nomic.slice(0, 3)).not.toEqual(a.slice(0, 3));
  });

  it('points texts that share words in similar directions', async () => {
    const sim = await startSim();
    const [cat, kitten, bridge] = (
      await embed(sim, {
        model: 'mxbai-embed-large',
        input: ['the cat sat on the warm mat', 'a cat sat on the mat today', 'quarterly revenue grew in asia'],
      })
    ).embeddings as [number[], number[], number[]];
    expect(cat).toHaveLength(1024);
    expect(cosine(cat, kitten)).toBeGreaterThan(0.5);
    expect(Math.abs(cosine(cat, bridge))).toBeLessThan(0.3);
  });

  it('shortens to `dimensions` and normalises again; a larger value changes nothing', async () => {
    const sim = await startSim();
    const [full] = (await embed(sim, { model: 'nomic-embed-text', input: 'matryoshka' })).embeddings as [number[]];
    const [short] = (await embed(sim, { model: 'nomic-embed-text', input: 'matryoshka', dimensions: 256 })).embeddings as [number[]];
    expect(short).toHaveLength(256);
    expect(norm(short)).toBeCloseTo(1, 5);
    const prefix = full.slice(0, 256);
    const scale = norm(prefix);
    short.forEach((x, i) => expect(x).toBeCloseTo((prefix[i] as number) / scale, 5));
    expect((await embed(sim, { model: 'nomic-embed-text', input: 'matryoshka', dimensions: 4096 })).embeddings[0]).toEqual(full);
  });

  it('truncates a too-long input to the context by default, and refuses it with truncate:false', async () => {
    const sim = await startSim();
    const long = 'x'.repeat(100);
    const options = { num_ctx: 8 }; // 8 tokens = 32 characters
    const refused = await post(sim, '/api/embed', { model: 'all-minilm', input: ['short', long], truncate: false, options });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({ error: 'input length exceeds maximum context length' });
    const cut = await embed(sim, { model: 'all-minilm', input: ['short', long], options });
    expect(cut.prompt_eval_count).toBe(2 + 8);
    expect(cut.embeddings[1]).toEqual((await embed(sim, { model: 'all-minilm', input: 'x'.repeat(32), options })).embeddings[0]);
    // The model's own context (512 tokens for all-minilm) bounds it without options.
    const huge = await post(sim, '/api/embed', { model: 'all-minilm', input: 'y'.repeat(4 * 512 + 1), truncate: false });
    expect(huge.status).toBe(400);
    expect((await stats(sim)).embed).toMatchObject({ truncated_inputs: 1 });
  });

  it('only loads the model for no input, "" or [] (how a client loads an embedding model)', async () => {
    const sim = await startSim({ models: [VEC] });
    for (const input of [undefined, '', []]) {
      const response = await post(sim, '/api/embed', { model: 'vec:1', ...(input === undefined ? {} : { input }) });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ model: 'vec:1', embeddings: [] });
    }
    expect((await ps(sim)).map((entry) => entry.name)).toEqual(['vec:1']);
    expect(await stats(sim)).toMatchObject({ loads_total: 1, embed: { requests: 3, calls: 0, inputs: 0 } });
    // keep_alive 0 on a load-only generate unloads it, as for any model.
    const unload = await post(sim, '/api/generate', { model: 'vec:1', keep_alive: 0 });
    expect(await unload.json()).toMatchObject({ done_reason: 'unload' });
    expect(await ps(sim)).toEqual([]);
  });

  it('refuses a chat model, an unknown model and malformed bodies as Ollama does', async () => {
    const sim = await startSim();
    const chat = await post(sim, '/api/embed', { model: 'llama3.2:3b', input: 'x' });
    expect(chat.status).toBe(400);
    expect(OllamaErrorBody.parse(await chat.json())).toEqual({ error: '"llama3.2:3b" does not support embeddings' });
    const legacy = await post(sim, '/api/embeddings', { model: 'qwen2.5:0.5b', prompt: 'x' });
    expect(await legacy.json()).toEqual({ error: '"qwen2.5:0.5b" does not support embeddings' });
    const missing = await post(sim, '/api/embed', { model: 'nope', input: 'x' });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: "model 'nope' not found" });
    expect(await (await post(sim, '/api/embed', { input: 'x' })).json()).toEqual({ error: 'model is required' });
    const wrong = await post(sim, '/api/embed', { model: 'all-minilm', input: [1, 2] });
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as { error: string }).error).toMatch(/input/);
    expect((await stats(sim)).embed.calls).toBe(0);
  });

  it('takes VRAM with one parallel sequence and shows in /api/ps', async () => {
    const sim = await startSim();
    await embed(sim, { model: 'nomic-embed-text', input: 'x' });
    const [entry] = await ps(sim);
    // Weights + KV cache for one sequence of 2048 tokens (its trained context: 12 layers × 12 heads × 64) + overhead.
    expect(entry).toMatchObject({ name: 'nomic-embed-text:latest', context_length: 2048 });
    expect(entry?.size).toBe(274_302_450 + 2 * 64 * 12 * 2 * 12 * 2048 + 512 * 2 ** 20);
    expect((await stats(sim)).loaded).toMatchObject([{ name: 'nomic-embed-text:latest', state: 'ready', in_flight: 0 }]);
  });

  it('serves one call at a time per model, each taking call_ms + input_ms × inputs (times time_scale)', async () => {
    const sim = await startSim({ time_scale: 0.5, load_overhead_ms: 0, embed_call_ms: 60, embed_input_ms: 4, models: [VEC] });
    await embed(sim, { model: 'vec:1' }); // loaded, so only the calls are timed
    const started = performance.now();
    const answers = await Promise.all([1, 2, 3].map((i) => embed(sim, { model: 'vec:1', input: `text ${i}` })));
    const serial = performance.now() - started;
    // Three calls of (60 + 4) ms × 0.5, one after the other.
    expect(serial).toBeGreaterThanOrEqual(3 * 32);
    // Each reports at least its own call's time; durations are nanoseconds.
    for (const answer of answers) expect(answer.total_duration).toBeGreaterThanOrEqual(32e6);

    const batchStarted = performance.now();
    const batch = await embed(sim, { model: 'vec:1', input: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'] });
    const batchMs = performance.now() - batchStarted;
    expect(batch.embeddings).toHaveLength(10);
    expect(batchMs).toBeGreaterThanOrEqual((60 + 40) * 0.5);
    expect(await stats(sim)).toMatchObject({ embed: { requests: 5, calls: 4, inputs: 13, prompt_tokens: 3 * 2 + 10 } });
  });

  it('uses a model’s own call times over the global ones', async () => {
    const sim = await startSim({ time_scale: 1, load_overhead_ms: 0, embed_call_ms: 0, embed_input_ms: 0, models: [{ ...VEC, embedding: { call_ms: 80 } }] });
    await embed(sim, { model: 'vec:1' });
    const started = performance.now();
    await embed(sim, { model: 'vec:1', input: 'x' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(80);
  });

  it('lets a client leave mid-call, giving the slot back; a hold catches embed calls by their inputs', async () => {
    const sim = await startSim({ models: [VEC] });
    const hold = sim.hold({ prompt: 'hold me' });
    const abort = new AbortController();
    const leaving = post(sim, '/api/embed', { model: 'vec:1', input: ['first', 'hold me'] }, { signal: abort.signal }).catch(() => 'aborted');
    await hold.reached();
    const queued = post(sim, '/api/embed', { model: 'vec:1', input: 'next' });
    await waitFor(async () => (await stats(sim)).queued_requests === 1, 'the second call to queue behind the held one');
    abort.abort();
    expect(await leaving).toBe('aborted');
    expect((await queued).status).toBe(200);
    await waitFor(async () => (await stats(sim)).cancelled_total === 1, 'the cancellation to count');
    expect((await stats(sim)).embed).toMatchObject({ calls: 1, inputs: 1 });
    hold.release();
  });
});

describe('POST /api/embeddings (legacy)', () => {
  it('answers {embedding} for one prompt, the same vector /api/embed gives', async () => {
    const sim = await startSim();
    const response = await post(sim, '/api/embeddings', { model: 'all-minilm', prompt: 'hello world' });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { embedding: number[] };
    expect(Object.keys(body)).toEqual(['embedding']);
    expect(OllamaEmbeddingsResponse.safeParse(body).success).toBe(true);
    expect(body.embedding).toEqual((await embed(sim, { model: 'all-minilm', input: 'hello world' })).embeddings[0]);
    expect(await (await post(sim, '/api/embeddings', { model: 'all-minilm' })).json()).toEqual({ embedding: [] });
    expect((await stats(sim)).embed).toMatchObject({ requests: 3, calls: 2, inputs: 2 });
  });
});
