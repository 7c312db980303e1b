/**
 * Streams that continue instead of starting over: a job whose backend dies after part of the
 * answer was streamed runs again on the other node, continuing from the text already sent
 * (a chat ending in that partial answer, which Ollama — and the simulator — continue). The
 * client sees `resumed` and no void text; on the OpenAI and Ollama wires, which cannot say
 * `restarted`, the stream goes on without a break. The fault is injected at a known point: the
 * generation is held after three tokens on whichever simulator got it, which is then stopped.
 */
import { Redis } from 'ioredis';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGpuSim, type Hold } from '@switchyard/gpu-sim';
import { redisKeys } from '@switchyard/protocol';
import { EventLog } from '@switchyard/redis';
import { FAST_SIM, startStack, type Stack } from '../support/stack.js';
import { jobStatus, submitJob } from '../support/client.js';

const MODEL = 'llama3.2:3b';
const OPTIONS = { seed: 7, num_predict: 24 };

describe('a job restarted after part of its answer was streamed continues it', () => {
  let stack: Stack;
  let redis: Redis;
  beforeAll(async () => {
    stack = await startStack({ nodes: [{}, {}] });
    redis = new Redis(stack.redisUrl);
  });
  afterAll(async () => {
    redis?.disconnect();
    await stack?.close();
  });

  /** The uninterrupted answer of a chat, straight from a simulator (the answer is the same on every node). */
  async function reference(prompt: string): Promise<string> {
    const response = await fetch(`${stack.sims.find((sim) => sim.url)!.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: prompt }], stream: false, options: OPTIONS }),
    });
    return ((await response.json()) as { message: { content: string } }).message.content;
  }

  /**
   * Holds `prompt` after three tokens on every node; once one node holds it, lets the other
   * run freely and stops the holding node's simulator (the backend dies mid-answer). Then
   * brings a simulator back on the dead one's address, so the next test has two nodes again.
   */
  async function killMidAnswer(prompt: string, run: () => Promise<void>): Promise<void> {
    const holds: Hold[] = stack.sims.map((sim) => sim.hold({ prompt, afterTokens: 3 }));
    const running = run();
    await expect.poll(() => holds.findIndex((hold) => hold.paused > 0), { timeout: 15_000 }).not.toBe(-1);
    const victim = holds.findIndex((hold) => hold.paused > 0);
    holds[1 - victim]!.release();
    const dead = stack.sims[victim]!;
    const port = Number(new URL(dead.url).port);
    await dead.close();
    await running;
    for (const hold of holds) hold.release();
    stack.sims[victim] = await createGpuSim({ ...FAST_SIM, port }, { logger: pino({ level: 'silent' }) });
    await expect.poll(() => stack.agents[victim]!.heartbeat().state, { timeout: 10_000 }).toBe('ready');
  }

  it('native API: `resumed`, no `restarted`, and the tokens read as the uninterrupted answer', async () => {
    const prompt = 'continue me natively';
    let id = '';
    await killMidAnswer(prompt, async () => {
      id = (await submitJob(stack, { model: MODEL, messages: [{ role: 'user', content: prompt }], detach: true, options: OPTIONS })).id;
      await expect.poll(() => jobStatus(stack, id), { timeout: 20_000 }).toBe('completed');
    });
    const events = await new EventLog(redis, redisKeys(stack.prefix)).readAfter(id, 0);
    const types = events.map((event) => event.type);
    expect(types).toContain('resumed');
    expect(types).not.toContain('restarted');
    const resumed = events.find((event) => event.type === 'resumed');
    const before = events.filter((event) => event.seq < resumed!.seq && event.type === 'token');
    expect(before.length).toBeGreaterThan(0);
    expect(resumed).toMatchObject({ attempt: 2, after_seq: resumed!.seq - 1 });
    const text = events.flatMap((event) => (event.type === 'token' ? [event.text] : [])).join('');
    const expected = await reference(prompt);
    expect(text).toBe(expected);
    const record = (await (await fetch(`${stack.apiUrl}/v1/jobs/${id}`)).json()) as { result: { text: string } };
    expect(record.result.text).toBe(expected);
  }, 60_000);

  it('native API, a prompt (generate) job: continued as the chat of its prompt, the text still reads as the uninterrupted answer', async () => {
    const prompt = 'continue my prompt';
    let id = '';
    await killMidAnswer(prompt, async () => {
      id = (await submitJob(stack, { model: MODEL, prompt, detach: true, options: OPTIONS })).id;
      await expect.poll(() => jobStatus(stack, id), { timeout: 20_000 }).toBe('completed');
    });
    const events = await new EventLog(redis, redisKeys(stack.prefix)).readAfter(id, 0);
    expect(events.map((event) => event.type)).toContain('resumed');
    const text = events.flatMap((event) => (event.type === 'token' ? [event.text] : [])).join('');
    const direct = await fetch(`${stack.sims[0]!.url}/api/generate`, { method: 'POST', body: JSON.stringify({ model: MODEL, prompt, stream: false, options: OPTIONS }) });
    expect(text).toBe(((await direct.json()) as { response: string }).response);
  }, 60_000);

  it('OpenAI wire: the stream goes on without a break or an error', async () => {
    const prompt = 'continue me over openai';
    const openai = new OpenAI({ baseURL: `${stack.apiUrl}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 30_000 });
    let text = '';
    await killMidAnswer(prompt, async () => {
      const stream = await openai.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: prompt }],
        stream: true,
        seed: OPTIONS.seed,
        max_tokens: OPTIONS.num_predict,
      });
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    });
    expect(text).toBe(await reference(prompt));
  }, 60_000);

  it('Ollama wire: the stream goes on without a break or an error', async () => {
    const prompt = 'continue me over ollama';
    const ollama = new Ollama({ host: stack.apiUrl });
    let text = '';
    await killMidAnswer(prompt, async () => {
      const stream = await ollama.chat({ model: MODEL, messages: [{ role: 'user', content: prompt }], stream: true, options: OPTIONS });
      for await (const part of stream) text += part.message.content;
    });
    expect(text).toBe(await reference(prompt));
  }, 60_000);
});
