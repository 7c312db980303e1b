import { describe, expect, it } from 'vitest';
import { BackendError, type EmbedRequest, type EmbedResponse } from '@switchyard/backends';
import { EmbedBatcher, shareTokens } from './embed-batcher.js';

/** A backend whose embed calls resolve (or fail) when the test says; each input's vector is `[its length]`. */
class HeldBackend {
  readonly calls: { request: EmbedRequest; signal: AbortSignal | undefined; release: (tokens?: number) => void; fail: (error: unknown) => void }[] = [];

  embed(request: EmbedRequest, signal?: AbortSignal): Promise<EmbedResponse> {
    return new Promise((resolve, reject) => {
      signal?.addEventListener('abort', () => reject(signal.reason), { once: true });
      this.calls.push({
        request,
        signal,
        release: (tokens = request.input.length * 2) => resolve({ embeddings: request.input.map((text) => [text.length]), prompt_tokens: tokens, total_ms: 12, load_ms: 1 }),
        fail: reject,
      });
    });
  }
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('EmbedBatcher', () => {
  it('sends a lone request at once, alone', async () => {
    const backend = new HeldBackend();
    const batcher = new EmbedBatcher(backend);
    let started = false;
    const part = batcher.embed({ model: 'e', input: ['abc'] }, { onStart: () => (started = true) });
    // Synchronously: nothing waits for company.
    expect(backend.calls).toHaveLength(1);
    expect(started).toBe(true);
    backend.calls[0]!.release(5);
    expect(await part).toEqual({ embeddings: [[3]], prompt_tokens: 5, total_ms: 12, load_ms: 1, batch_inputs: 1 });
    await tick();
    expect(batcher.lanes).toBe(0);
  });

  it('gathers the requests that arrive during a call into the next one, and splits the vectors back in order', async () => {
    const backend = new HeldBackend();
    const batcher = new EmbedBatcher(backend);
    const first = batcher.embed({ model: 'e', input: ['x'] });
    const starts: number[] = [];
    const rest = Array.from({ length: 10 }, (_, i) =>
      batcher.embed({ model: 'e', input: i === 3 ? ['a'.repeat(30), 'b'.repeat(31)] : ['c'.repeat(i + 1)] }, { onStart: () => starts.push(i) }),
    );
    await tick();
    expect(backend.calls).toHaveLength(1);
    expect(starts).toEqual([]);
    backend.calls[0]!.release();
    await first;
    await tick();
    expect(backend.calls).toHaveLength(2);
    expect(starts).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const second = backend.calls[1]!;
    expect(second.request.input).toHaveLength(11);
    second.release(110);
    const parts = await Promise.all(rest);
    parts.forEach((part, i) => {
      expect(part.embeddings).toEqual(i === 3 ? [[30], [31]] : [[i + 1]]);
      expect(part.batch_inputs).toBe(11);
    });
    expect(parts.reduce((sum, part) => sum + part.prompt_tokens, 0)).toBe(110);
    expect(backend.calls).toHaveLength(2);
  });

  it('keeps lanes apart by model, truncate, dimensions and options (options in any key order share)', async () => {
    const backend = new HeldBackend();
    const batcher = new EmbedBatcher(backend);
    const all = [
      batcher.embed({ model: 'e', input: ['1'], options: { a: 1, b: 2 } }),
      batcher.embed({ model: 'e', input: ['2'], options: { b: 2, a: 1 } }),
      batcher.embed({ model: 'f', input: ['3'] }),
      batcher.embed({ model: 'e', input: ['4'], dimensions: 8 }),
      batcher.embed({ model: 'e', input: ['5'], truncate: false }),
    ];
    // Each lane sends its first arrival at once; the second options-sharing one waits for the first.
    expect(backend.calls.map((call) => call.request.input)).toEqual([['1'], ['3'], ['4'], ['5']]);
    backend.calls[0]!.release();
    await tick();
    expect(backend.calls.at(-1)!.request).toEqual({ model: 'e', input: ['2'], options: { b: 2, a: 1 } });
    for (const call of backend.calls.slice(1)) call.release();
    await Promise.all(all);
  });

  it('caps a call at maxInputs inputs; the rest go in the call after', async () => {
    const backend = new HeldBackend();
    const batcher = new EmbedBatcher(backend, { maxInputs: 4 });
    const first = batcher.embed({ model: 'e', input: ['x'] });
    const rest = [batcher.embed({ model: 'e', input: ['a', 'b', 'c'] }), batcher.embed({ model: 'e', input: ['d', 'e'] }), batcher.embed({ model: 'e', input: ['f'] })];
    backend.calls[0]!.release();
    await first;
    await tick();
    expect(backend.calls[1]!.request.input).toEqual(['a', 'b', 'c']);
    backend.calls[1]!.release();
    await tick();
    expect(backend.calls[2]!.request.input).toEqual(['d', 'e', 'f']);
    backend.calls[2]!.release();
    expect((await Promise.all(rest)).map((part) => part.embeddings.length)).toEqual([3, 2, 1]);
  });

  it('a cancelled request waiting leaves its batch; a cancelled one in flight rejects at once, the call goes on for the others', async () => {
    const backend = new HeldBackend();
    const batcher = new EmbedBatcher(backend);
    const inFlight = new AbortController();
    const first = batcher.embed({ model: 'e', input: ['one'] }, { signal: inFlight.signal });
    const other = batcher.embed({ model: 'e', input: ['first-mate'] });
    backend.calls[0]!.release();
    await first;
    await tick();
    // Now `other` is in flight; cancel a waiting one and one riding with it.
    const waiting = new AbortController();
    const riding = new AbortController();
    const third = batcher.embed({ model: 'e', input: ['w'] }, { signal: waiting.signal });
    const fourth = batcher.embed({ model: 'e', input: ['z'] });
    waiting.abort();
    await expect(third).rejects.toMatchObject({ name: 'AbortError' });
    backend.calls[1]!.release();
    await other;
    await tick();
    expect(backend.calls[2]!.request.input).toEqual(['z']);
    backend.calls[2]!.release();
    await fourth;
    await tick();

    const a = batcher.embed({ model: 'e', input: ['aa'] }, { signal: riding.signal });
    riding.abort(new Error('client went away'));
    await expect(a).rejects.toThrow('client went away');
    // Every request in the call gave up: the call itself is aborted.
    expect(backend.calls[3]!.signal?.aborted).toBe(true);
    await tick();
    expect(batcher.lanes).toBe(0);
  });

  it('a cancelled request in flight among others does not abort the call', async () => {
    const backend = new HeldBackend();
    const batcher = new EmbedBatcher(backend);
    const head = batcher.embed({ model: 'e', input: ['h'] });
    const gone = new AbortController();
    const leaving = batcher.embed({ model: 'e', input: ['l'] }, { signal: gone.signal });
    const staying = batcher.embed({ model: 'e', input: ['stay'] });
    backend.calls[0]!.release();
    await head;
    await tick();
    gone.abort();
    await expect(leaving).rejects.toMatchObject({ name: 'AbortError' });
    expect(backend.calls[1]!.signal?.aborted).toBe(false);
    backend.calls[1]!.release();
    expect((await staying).embeddings).toEqual([[4]]);
  });

  it('a failing call fails every request in it; the lane goes on with the next', async () => {
    const backend = new HeldBackend();
    const batcher = new EmbedBatcher(backend);
    const head = batcher.embed({ model: 'e', input: ['h'] });
    const batch = [batcher.embed({ model: 'e', input: ['1'] }), batcher.embed({ model: 'e', input: ['2'] })];
    backend.calls[0]!.release();
    await head;
    await tick();
    const later = batcher.embed({ model: 'e', input: ['3'] });
    backend.calls[1]!.fail(new Error('runner crashed'));
    for (const part of batch) await expect(part).rejects.toThrow('runner crashed');
    await tick();
    backend.calls[2]!.release();
    expect((await later).embeddings).toEqual([[1]]);
  });

  it('a batch refused for its input (4xx) goes again one request at a time, so only the bad one fails', async () => {
    const backend = new HeldBackend();
    const batcher = new EmbedBatcher(backend);
    const head = batcher.embed({ model: 'e', input: ['h'] });
    let starts = 0;
    const good = batcher.embed({ model: 'e', input: ['ok'] }, { onStart: () => starts++ });
    const bad = batcher.embed({ model: 'e', input: ['x'.repeat(100)] });
    const also = batcher.embed({ model: 'e', input: ['fine'] });
    backend.calls[0]!.release();
    await head;
    await tick();
    const refusal = new BackendError('the input length exceeds the context length', 400, 'bad_request');
    backend.calls[1]!.fail(refusal);
    await tick();
    expect(backend.calls[2]!.request.input).toEqual(['ok']);
    backend.calls[2]!.release();
    expect((await good).embeddings).toEqual([[2]]);
    expect(starts).toBe(1);
    await tick();
    expect(backend.calls[3]!.request.input).toEqual(['x'.repeat(100)]);
    backend.calls[3]!.fail(refusal);
    await expect(bad).rejects.toBe(refusal);
    await tick();
    expect(backend.calls[4]!.request.input).toEqual(['fine']);
    backend.calls[4]!.release();
    expect((await also).embeddings).toEqual([[4]]);
  });

  it('with a window, a lone arrival waits that long for company', async () => {
    const backend = new HeldBackend();
    const batcher = new EmbedBatcher(backend, { windowMs: 20 });
    const parts = [batcher.embed({ model: 'e', input: ['a'] }), batcher.embed({ model: 'e', input: ['b'] })];
    expect(backend.calls).toHaveLength(0);
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(backend.calls.map((call) => call.request.input)).toEqual([['a', 'b']]);
    backend.calls[0]!.release();
    await Promise.all(parts);
  });

  it('shares tokens by characters, summing to the total', () => {
    expect(shareTokens(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(shareTokens(7, [0, 0])).toEqual([4, 3]);
    expect(shareTokens(9, [5])).toEqual([9]);
  });
});
