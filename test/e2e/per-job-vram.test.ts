import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { formatGB, modelToQueueName, redisKeys, vramNeedAtContext, type JobData } from '@switchyard/protocol';
import { SAMPLE_CATALOG } from '@switchyard/gpu-sim';
import { jobStatus, postJob, submitJob } from '../support/client.js';
import { startStack, type Stack } from '../support/stack.js';

const BIG = 'llama3.1:70b';
const MID = 'llama3.1:8b';
const FULL_CONTEXT = 131_072;
const catalog = (...names: string[]) => SAMPLE_CATALOG.filter((model) => names.includes(model.name));

interface Answer {
  status: number;
  json: any;
}

async function postTo(stack: Stack, path: string, body: unknown): Promise<Answer> {
  const response = await fetch(`${stack.apiUrl}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : undefined };
}

/** The same job on each wire, with the wire's spelling of the context window. */
function onEveryWire(model: string, numCtx: number) {
  return {
    native: ['/v1/jobs', { model, prompt: 'summarise the book', options: { num_ctx: numCtx, num_predict: 4 } }],
    openai: ['/v1/chat/completions', { model, messages: [{ role: 'user', content: 'summarise the book' }], num_ctx: numCtx, max_tokens: 4 }],
    'ollama chat': ['/api/chat', { model, messages: [{ role: 'user', content: 'summarise the book' }], stream: false, options: { num_ctx: numCtx, num_predict: 4 } }],
    'ollama generate': ['/api/generate', { model, prompt: 'summarise the book', stream: false, options: { num_ctx: numCtx, num_predict: 4 } }],
  } as const;
}

/** The refusal's code and message, read from the wire's own error shape. */
function refusalOf(wire: string, answer: Answer): { code: string | undefined; message: string } {
  if (wire === 'native') return { code: answer.json.error.code, message: answer.json.error.message };
  if (wire === 'openai') return { code: answer.json.error.code, message: answer.json.error.message };
  return { code: undefined, message: answer.json.error };
}

describe('per-job VRAM: a job’s own num_ctx is judged at submit, by the rule the agents use', () => {
  let stack: Stack;
  let redis: Redis;
  beforeAll(async () => {
    stack = await startStack({
      nodes: [
        // The default 24 GB node, and one of 80 GB that holds the 70B at its default context.
        { sim: { models: catalog(MID) } },
        { sim: { models: catalog(MID, BIG), vram_bytes: 80 * 2 ** 30 }, agent: { gpuVramBytes: ['80GB'] } },
      ],
    });
    redis = new Redis(stack.redisUrl);
    // Agents read /api/show before their first heartbeat, so the profiles are there from the start.
    const profiles = stack.agents.flatMap((agent) => agent.heartbeat().models_available.filter((model) => model.vram_profile));
    expect(profiles).toHaveLength(3);
  });
  afterAll(async () => {
    redis?.disconnect();
    await stack?.close();
  });

  /** The need the large node's agent computes for a model at a context, as the refusal must word it. */
  function agentNeedGb(model: string, numCtx: number): string {
    const entry = stack.agents[1]!.heartbeat().models_available.find((available) => available.name === model)!;
    expect(entry.vram_profile).toBeDefined();
    return formatGB(vramNeedAtContext(entry.vram_profile!, numCtx));
  }

  /** Keys of the stack other than the fleet-wide note of which models agents list (admission writes it, job or not). */
  async function stackKeys(): Promise<Set<string>> {
    const seen = redisKeys(stack.prefix).admission.seenModels;
    return new Set((await redis.keys(`${stack.prefix}:*`)).filter((key) => key !== seen));
  }

  it.each([BIG, MID])('refuses %s at its full context with 422 model_too_large on every wire, creating no job', async (model) => {
    const before = await stackKeys();
    const need = agentNeedGb(model, FULL_CONTEXT);
    expect(Number(need)).toBeGreaterThan(80);
    for (const [wire, [path, body]] of Object.entries(onEveryWire(model, FULL_CONTEXT))) {
      const answer = await postTo(stack, path, body);
      expect(answer.status, `${wire}: ${JSON.stringify(answer.json)}`).toBe(422);
      const { code, message } = refusalOf(wire, answer);
      if (code !== undefined) expect(code, wire).toBe('model_too_large');
      expect(message, wire).toBe(`model ${model} with num_ctx ${FULL_CONTEXT} needs ${need} GB of VRAM; the largest GPU node that has it offers 80.0 GB`);
    }
    const added = [...(await stackKeys())].filter((key) => !before.has(key));
    expect(added).toEqual([]);
  });

  it('admits and runs a modest num_ctx of the same models on every wire', async () => {
    const native = await submitJob(stack, onEveryWire(BIG, 2048).native[1]);
    for (const [wire, [path, body]] of Object.entries(onEveryWire(MID, 8192))) {
      if (wire === 'native') continue;
      const answer = await postTo(stack, path, body);
      expect(answer.status, `${wire}: ${JSON.stringify(answer.json)}`).toBe(200);
    }
    await expect.poll(() => jobStatus(stack, native.id), { timeout: 15_000 }).toBe('completed');
  });

  it('admits a context only the largest node holds', async () => {
    // ~37 GB for the 8B at 40k context in 4 slots: more than the 24 GB node, less than the 80 GB one.
    const answer = await postJob(stack, { model: MID, prompt: 'x', options: { num_ctx: 40_000, num_predict: 1 } });
    expect(answer.status, JSON.stringify(answer.json)).toBe(202);
    await fetch(`${stack.apiUrl}/v1/jobs/${answer.json.id}`, { method: 'DELETE' });
  });

  it('has the agent refuse, by the same rule, a job that reached its queue without admission', async () => {
    // An older API, or a script writing to the queue: the agent must not hand it to the backend.
    const queue = new Queue(modelToQueueName(BIG), { connection: redis.duplicate(), prefix: redisKeys(stack.prefix).bullPrefix });
    const data: JobData = {
      id: 'ctx-too-big',
      model: BIG,
      tenant: 'default',
      request: { model: BIG, prompt: 'x', options: { num_ctx: FULL_CONTEXT }, priority: 'interactive' },
      submitted_at: Date.now(),
    };
    const job = await queue.add('generate', data, { jobId: data.id });
    await expect.poll(() => job.getState(), { timeout: 15_000 }).toBe('failed');
    const failed = await queue.getJob(data.id);
    expect(failed!.failedReason).toBe(
      `model_too_large: model ${BIG} with num_ctx ${FULL_CONTEXT} needs ${agentNeedGb(BIG, FULL_CONTEXT)} GB of VRAM; agent ${stack.agents[1]!.id} has 80.0 GB`,
    );
    await queue.close();
  });
});
