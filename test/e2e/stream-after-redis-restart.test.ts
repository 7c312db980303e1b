/**
 * No stream left hanging (issue 13.3). A chaos run restarted Redis under load and saw streams
 * hang for good: their jobs ended while the API's subscriber was still reconnecting, so their
 * last events, `done` included, were published to nobody, and a stream fills a gap only when
 * a later event arrives; these jobs had none.
 *
 * Here the order a restart leaves to chance is fixed: the stack runs on a redis-server of its
 * own (append-only file, so the restart keeps the jobs), the agent talks to it directly and
 * the API through a gate the test closes. With two jobs held in the simulator mid-answer and
 * their streams open (a native SSE stream and an OpenAI-compatible one), the API is cut off,
 * Redis is restarted, the jobs are released and run to their end on the restarted Redis while
 * no API process listens, and only then is the API let back. Both streams must then deliver
 * every event they missed and end.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { isTerminalEvent, redisKeys } from '@switchyard/protocol';
import { EventLog } from '@switchyard/redis';
import { findOnPath, spawnRedisServer } from '@switchyard/testing';
import { getJob, submitJob } from '../support/client.js';
import { readSse, textOf } from '../support/sse.js';
import { startStack } from '../support/stack.js';
import { startTcpGate } from '../support/tcp-gate.js';

const MODEL = 'qwen2.5:0.5b';

/** An OpenAI-compatible streaming chat completion, read to its end: its job and the text of its chunks. */
async function openAiStream(apiUrl: string, prompt: string): Promise<{ jobId: string; body: Promise<string> }> {
  const response = await fetch(`${apiUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: prompt }], stream: true }),
    signal: AbortSignal.timeout(30_000),
  });
  expect(response.status).toBe(200);
  return { jobId: response.headers.get('x-switchyard-job-id')!, body: response.text() };
}

/** The content of an OpenAI SSE body's chunks, and whether it ended with `[DONE]`. */
function openAiText(body: string): { text: string; finished: boolean; done: boolean } {
  const data = body
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => line.slice('data: '.length));
  const chunks = data
    .filter((line) => line !== '[DONE]')
    .map((line) => JSON.parse(line) as { choices: Array<{ delta?: { content?: string }; finish_reason?: string | null }> });
  return {
    text: chunks.map((chunk) => chunk.choices[0]?.delta?.content ?? '').join(''),
    finished: chunks.some((chunk) => typeof chunk.choices[0]?.finish_reason === 'string'),
    done: data.at(-1) === '[DONE]',
  };
}

describe.skipIf(!findOnPath('redis-server'))('streams across a Redis restart', () => {
  it('deliver the end of jobs that finished while the API was still reconnecting (native SSE and OpenAI wire)', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stream-restart-'));
    const settings = { appendonly: 'yes', appendfsync: 'everysec', dir };
    let server = await spawnRedisServer(undefined, { settings });
    const port = Number(new URL(server.url).port);
    const gate = await startTcpGate(server.url);
    const direct = new Redis(server.url, { maxRetriesPerRequest: null });
    direct.on('error', () => undefined); // down during the restart, on purpose
    let stack: Awaited<ReturnType<typeof startStack>> | undefined;
    try {
      stack = await startStack({
        redisUrl: server.url,
        // No stall re-read within the test: only the re-read after the resubscription can save the streams.
        api: { redisUrl: gate.url, feedStallMs: 600_000 },
        nodes: [{ sim: { time_scale: 1, tokens_per_s: 200, load_overhead_ms: 0, load_bytes_per_s: 1e12 }, agent: { slots: 2 } }],
      });
      const keys = redisKeys(stack.prefix);
      const log = new EventLog(direct, keys);
      const listening = async (jobId: string) => ((await direct.pubsub('SHARDNUMSUB', keys.jobChannel(jobId))) as Array<string | number>)[1];

      // Both generations pause after three tokens: running, and unable to end until released.
      const hold = stack.hold({ afterTokens: 3 });
      const native = await submitJob(stack, { model: MODEL, prompt: 'a native stream through a restart', options: { num_predict: 40 } });
      const sse = readSse(`${stack.apiUrl}${native.links.events}`, { timeoutMs: 30_000 });
      const compat = await openAiStream(stack.apiUrl, 'an OpenAI stream through a restart');
      await hold.reached(2);
      // Both feeds subscribed: from here on, an event is heard live unless the API is away.
      await expect.poll(() => Promise.all([listening(native.id), listening(compat.jobId)])).toEqual([1, 1]);

      // The API loses Redis and stays away; Redis restarts (SHUTDOWN writes the AOF) and the agent reconnects to it.
      gate.close();
      // SHUTDOWN on a connection of its own that never reconnects: ioredis would send an
      // unanswered command again, to the restarted server.
      const admin = new Redis(server.url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
      admin.on('error', () => undefined);
      const exited = once(server.child, 'exit');
      await admin.call('SHUTDOWN').catch(() => undefined);
      admin.disconnect();
      await exited;
      server = await spawnRedisServer(undefined, { port, settings });

      // The jobs run to their end on the restarted Redis, heard by no API process.
      hold.release();
      for (const jobId of [native.id, compat.jobId]) {
        await expect.poll(async () => (await log.last(jobId))?.type, { timeout: 20_000 }).toBe('done');
        expect(await listening(jobId)).toBe(0);
      }

      // The API is back: its subscriber resubscribes and each stream reads what it missed.
      gate.open();
      const streamed = await sse;
      expect(streamed.status).toBe(200);
      expect(streamed.events.map((event) => event.seq)).toEqual(streamed.events.map((_, index) => index + 1));
      expect(isTerminalEvent(streamed.events.at(-1)!)).toBe(true);
      expect(streamed.events.at(-1)!.type).toBe('done');
      const nativeRecord = await getJob(stack, native.id);
      expect(nativeRecord.status).toBe('completed');
      expect(textOf(streamed.events)).toBe(nativeRecord.result.text);

      const answer = openAiText(await compat.body);
      expect(answer.done).toBe(true);
      expect(answer.finished).toBe(true);
      const compatRecord = await getJob(stack, compat.jobId);
      expect(compatRecord.status).toBe('completed');
      expect(answer.text).toBe(compatRecord.result.text);
    } finally {
      await stack?.close().catch(() => undefined);
      direct.disconnect();
      await gate.stop();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
