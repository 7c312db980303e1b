/**
 * Holds over real HTTP: a caught generation pauses where told, goes on unchanged when
 * released, and still ends at once when its client leaves or the server shuts down. Every
 * step waits for the hold or for the sim's state, never for a fixed time.
 */
import { describe, expect, it } from 'vitest';
import { ndjsonLines, post, readNdjson, startSim, stats, waitFor, type Line } from './test-support.js';

const MODEL = 'qwen2.5:0.5b';

describe('sim.hold()', () => {
  it('pauses a streamed answer after afterTokens tokens until released, then ends it exactly as without the hold', async () => {
    const sim = await startSim({ time_scale: 0 });
    const body = { model: MODEL, prompt: 'hold me please', options: { seed: 5, num_predict: 12 } };
    const expected = await readNdjson(await post(sim, '/api/generate', body));

    const hold = sim.hold({ prompt: 'hold me', afterTokens: 3 });
    const lines = ndjsonLines(await post(sim, '/api/generate', body));
    const seen: Line[] = [];
    for (let i = 0; i < 3; i++) seen.push((await lines.next()).value as Line);
    await hold.reached();
    expect(hold.paused).toBe(1);
    // Paused: exactly three tokens made, the request still holding its slot.
    expect(await stats(sim)).toMatchObject({ tokens_generated_total: 12 + 3, running_requests: 1 });

    hold.release();
    for await (const line of lines) seen.push(line);
    const text = (all: Line[]) => all.map((line) => line.response).join('');
    expect(text(seen)).toBe(text(expected));
    expect(seen.at(-1)).toMatchObject({ done: true, done_reason: 'length', eval_count: 12 });
  });

  it('holds a non-streamed answer, and one shorter than afterTokens, before its final line', async () => {
    const sim = await startSim({ time_scale: 0 });
    const hold = sim.hold({ afterTokens: 100 });
    const answer = post(sim, '/api/chat', { model: MODEL, messages: [{ role: 'user', content: 'short' }], stream: false, options: { num_predict: 4 } });
    await hold.reached();
    expect(await stats(sim)).toMatchObject({ tokens_generated_total: 4, running_requests: 1 });
    hold.release();
    const final = (await (await answer).json()) as Line;
    expect(final).toMatchObject({ done: true, eval_count: 4 });
  });

  it('catches only matching prompts that start after it is placed, and nothing once released', async () => {
    const sim = await startSim({ time_scale: 0 });
    const hold = sim.hold({ prompt: /^user: keep/ });
    // Chat prompts are matched as "role: content" lines.
    const caught = post(sim, '/api/chat', { model: MODEL, messages: [{ role: 'user', content: 'keep me' }], stream: false, options: { num_predict: 2 } });
    await hold.reached();
    const free = await post(sim, '/api/generate', { model: MODEL, prompt: 'let me through', stream: false, options: { num_predict: 2 } });
    expect(((await free.json()) as Line).eval_count).toBe(2);
    hold.release();
    expect(((await (await caught).json()) as Line).eval_count).toBe(2);
    const after = await post(sim, '/api/chat', { model: MODEL, messages: [{ role: 'user', content: 'keep me' }], stream: false, options: { num_predict: 2 } });
    expect(((await after.json()) as Line).eval_count).toBe(2);
    expect(hold.paused).toBe(1);
  });

  it('lets a held request be cancelled by its client: it leaves, its slot is free, nothing more is generated', async () => {
    const sim = await startSim({ time_scale: 0, num_parallel: 1 });
    const hold = sim.hold({ prompt: 'cancel me', afterTokens: 2 });
    const controller = new AbortController();
    const response = await post(sim, '/api/generate', { model: MODEL, prompt: 'cancel me' }, { signal: controller.signal });
    const lines = ndjsonLines(response);
    await lines.next();
    await hold.reached();
    controller.abort();
    await lines.return(undefined).catch(() => undefined);
    const after = await waitFor(async () => {
      const s = await stats(sim);
      return s.active_requests === 0 ? s : undefined;
    }, 'the held request to leave');
    expect(after).toMatchObject({ cancelled_total: 1, tokens_generated_total: 2 });
    // The one slot is free for the next request (the hold does not catch it).
    const next = await post(sim, '/api/generate', { model: MODEL, prompt: 'next', stream: false, options: { num_predict: 2 } });
    expect(((await next.json()) as Line).eval_count).toBe(2);
  });

  it('ends held streams with an error line when the server shuts down', async () => {
    const sim = await startSim({ time_scale: 0 });
    const hold = sim.hold({ afterTokens: 1 });
    const lines: Line[] = [];
    const reading = (async () => {
      for await (const line of ndjsonLines(await post(sim, '/api/generate', { model: MODEL, prompt: 'x' }))) lines.push(line);
    })();
    await hold.reached();
    await sim.close();
    await reading;
    expect(lines).toHaveLength(2);
    expect(lines.at(-1)).toEqual({ error: 'server is shutting down' });
  });

  it('reports how many generations paused when reached() gives up', async () => {
    const sim = await startSim();
    const hold = sim.hold({ prompt: 'never sent' });
    await expect(hold.reached(2, 50)).rejects.toThrow('hold: 0 of 2 generation(s) paused within 50 ms');
    expect(() => sim.hold({ afterTokens: -1 })).toThrow(RangeError);
  });
});
